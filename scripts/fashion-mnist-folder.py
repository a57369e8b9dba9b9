#!/usr/bin/env python3
"""Writes real Fashion-MNIST out as an image folder in torchvision's ImageFolder layout, so that
training from a folder can be checked against training from the IDX files: same images, same
labels, so the same test accuracy is expected.

  out/train/<class>/<index>.png    60,000 images, 28x28 8-bit grayscale
  out/test/<class>/<index>.png     10,000 images
  out/fashion-mnist.json           classes and counts (written last: its presence means complete)

Class folders are `0-t-shirt`, `1-trouser`, ... `9-ankle-boot`: torchvision numbers the classes in
sorted() order of their folder names, and a one-digit prefix makes that order the label order.
<index> is the image's position in its IDX file, zero-padded so that sorted file names keep the
IDX order too.

Usage:
  python3 scripts/fashion-mnist-folder.py /tmp/fmnist-png
  python3 scripts/fashion-mnist-folder.py /tmp/fmnist-jpg --format jpeg --quality 95
  python3 scripts/fashion-mnist-folder.py /tmp/fmnist-small --limit 500   # first 500 of each split
Reads Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, or --root). Needs numpy
and pillow.
"""
import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import sys

try:
    import numpy as np
except ImportError:
    sys.exit('fashion-mnist-folder: the Python package numpy is missing (pip install numpy)')
try:
    from PIL import Image
except ImportError:
    sys.exit('fashion-mnist-folder: the Python package pillow is missing (pip install pillow)')

DEFAULT_ROOT = '/usr/share/datasets/fashion-mnist'
CLASSES = ['0-t-shirt', '1-trouser', '2-pullover', '3-dress', '4-coat',
           '5-sandal', '6-shirt', '7-sneaker', '8-bag', '9-ankle-boot']
SPLITS = {'train': 'train', 'test': 't10k'}  # folder -> IDX file prefix

# Set in the parent before the pool forks, so workers share the arrays instead of receiving copies.
_images = {}
_labels = {}


def read_idx(path, ndim):
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        sys.exit(f'fashion-mnist-folder: {path} not found (apt-get install dataset-fashion-mnist, or pass --root)')
    except (OSError, EOFError) as e:
        sys.exit(f'fashion-mnist-folder: {path} is not a readable gzip file: {e}')
    if len(data) < 4 + 4 * ndim or data[:3] != b'\0\0\x08' or data[3] != ndim:
        sys.exit(f'fashion-mnist-folder: {path} is not a {ndim}-dimensional uint8 IDX file')
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        sys.exit(f'fashion-mnist-folder: {path} holds {body.size} bytes of data, its header says {shape}')
    return body.reshape(shape)


def write_range(task):
    split, start, stop, out, fmt, quality = task
    images, labels = _images[split], _labels[split]
    ext = 'png' if fmt == 'png' else 'jpg'
    width = max(5, len(str(len(labels) - 1)))
    for i in range(start, stop):
        img = Image.fromarray(images[i], 'L')
        path = os.path.join(out, split, CLASSES[labels[i]], f'{i:0{width}d}.{ext}')
        if fmt == 'png':
            img.save(path, 'PNG')
        else:
            img.save(path, 'JPEG', quality=quality)
    return stop - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out', help='output folder (created; must be empty or absent unless --force)')
    ap.add_argument('--format', choices=['png', 'jpeg'], default='png')
    ap.add_argument('--quality', type=int, default=95, help='JPEG quality (default 95)')
    ap.add_argument('--limit', type=int, default=0, help='only the first N images of each split')
    ap.add_argument('--root', default=DEFAULT_ROOT, help=f'folder of the IDX .gz files (default {DEFAULT_ROOT})')
    ap.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1), help='processes (default 2)')
    ap.add_argument('--force', action='store_true', help='replace train/, test/ and the manifest in an existing out')
    args = ap.parse_args()
    if not 1 <= args.quality <= 100:
        ap.error('--quality must be in 1..100')
    if args.limit < 0:
        ap.error('--limit must be >= 0')

    for split, prefix in SPLITS.items():
        images = read_idx(os.path.join(args.root, f'{prefix}-images-idx3-ubyte.gz'), 3)
        labels = read_idx(os.path.join(args.root, f'{prefix}-labels-idx1-ubyte.gz'), 1)
        if len(images) != len(labels) or labels.max() >= len(CLASSES):
            sys.exit(f'fashion-mnist-folder: {split}: {len(images)} images but {len(labels)} labels '
                     f'(largest {labels.max()}); not Fashion-MNIST?')
        n = min(len(labels), args.limit) if args.limit else len(labels)
        _images[split], _labels[split] = images[:n], labels[:n]

    manifest_path = os.path.join(args.out, 'fashion-mnist.json')
    if os.path.isdir(args.out) and os.listdir(args.out):
        if not args.force:
            sys.exit(f'fashion-mnist-folder: {args.out} is not empty (pass --force to replace it)')
        # The manifest goes first: a folder without it reads as incomplete if we are interrupted.
        if os.path.exists(manifest_path):
            os.remove(manifest_path)
        for split in SPLITS:
            shutil.rmtree(os.path.join(args.out, split), ignore_errors=True)
    for split in SPLITS:
        for c in CLASSES:
            os.makedirs(os.path.join(args.out, split, c), exist_ok=True)

    # Contiguous ranges, a few per process, so each worker's writes stay in order within a class folder.
    tasks = []
    for split, labels in _labels.items():
        step = max(1, -(-len(labels) // (4 * args.jobs)))
        tasks += [(split, s, min(s + step, len(labels)), args.out, args.format, args.quality)
                  for s in range(0, len(labels), step)]
    if args.jobs > 1:
        with multiprocessing.get_context('fork').Pool(args.jobs) as pool:
            written = sum(pool.imap_unordered(write_range, tasks))
    else:
        written = sum(map(write_range, tasks))

    counts = {split: {c: int((labels == k).sum()) for k, c in enumerate(CLASSES)} for split, labels in _labels.items()}
    manifest = {'format': args.format, 'quality': args.quality if args.format == 'jpeg' else None,
                'classes': CLASSES, 'counts': counts, 'root': os.path.abspath(args.root)}
    with open(manifest_path + '.tmp', 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + '.tmp', manifest_path)
    print(f'fashion-mnist-folder: {written} {args.format.upper()} files '
          f'({", ".join(f"{s} {len(l)}" for s, l in _labels.items())}) in {args.out}', file=sys.stderr)


if __name__ == '__main__':
    main()
