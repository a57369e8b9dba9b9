#!/usr/bin/env python3
"""Builds a corpus of real photographs cut into ImageNet-like JPEGs, in torchvision's ImageFolder
layout, for the image-folder tests and `npm run bench:images`. Nothing can be downloaded here and
the corpus is not committed, so it is generated from photographs already on disk:

  mate     Debian's mate-backgrounds: the 12 photographs in /usr/share/backgrounds/mate/nature
           (1280x1024 to 2560x1920; the package's other wallpapers are drawings or renders).
  skimage  scikit-image's sample photographs bundled in its wheel (astronaut, chelsea, coffee,
           hubble_deep_field, ihc, motorcycle_left, retina, rocket; 300 to 1411 px). Only the
           bundled files are read, skimage is not imported, so pooch never tries the network.
  --source DIR  any folder of photographs (one class per file).

Each source photograph is one class (`mate-ladybird`, `skimage-coffee`, ...). Every image is a
random crop of its photograph (random position, size and aspect, optional mirror) scaled to an
ImageNet-like size -- mostly 500x375 / 375x500 / 500x333, long side 400-640, 25% portrait -- and
saved as JPEG with quality 75-95, 4:2:0 mostly, some 4:4:4 and 4:2:2, some progressive. The same
--seed and the same sources give byte-identical files, whatever --jobs is.

  out/train/<class>/<index>-<kind>.<ext>
  out/val/<class>/<index>-<kind>.<ext>
  out/corpus.json     seed, sources, and every file with its kind and encoding (written last:
                      its presence means the corpus is complete)

--kinds adds the formats a decoder must handle, each also cut from the photographs; images cycle
through the kinds asked for (`--kinds all` for every one):

  jpeg              the ImageNet-like mix above (the default)
  jpeg-gray         1-channel JPEG (ImageNet has ~2% of these)
  jpeg-cmyk         4-channel Adobe CMYK JPEG with a real black channel (full under-colour
                    removal), stored inverted as Photoshop does; PIL reads it back as
                    R = (255-C)(255-K)/255
  jpeg-progressive  progressive 4:2:0
  png-rgb, png-rgba, png-gray, png-gray-alpha   8-bit PNGs (alpha is a gradient, 0 to 255)
  png-palette-trns  256-colour palette PNG with a tRNS chunk (some entries partly or fully transparent)
  png-rgb16         48-bit RGB PNG with genuine 16-bit samples (PIL cannot write these; written here
                    by hand). PIL decodes it to 8 bits by keeping the high byte.
  png-gray16        16-bit gray PNG. Beware: PIL opens it as mode I;16 and convert('RGB') clamps
                    values above 255 instead of scaling, so torchvision's loader sees it almost white.

Usage:
  python3 scripts/image-corpus.py /tmp/corpus                      # 2000 JPEGs, seed 0
  python3 scripts/image-corpus.py /tmp/small --count 40 --kinds all # a few seconds
Needs pillow and numpy; the sources need `apt-get install mate-backgrounds` and/or
`pip install scikit-image` (scripts/peer-venv's python has both pillow and scikit-image).
"""
import argparse
import importlib.util
import json
import multiprocessing
import os
import random
import shutil
import struct
import sys
import zlib

try:
    import numpy as np
except ImportError:
    sys.exit('image-corpus: the Python package numpy is missing (pip install numpy)')
try:
    from PIL import Image
except ImportError:
    sys.exit('image-corpus: the Python package pillow is missing (pip install pillow)')

MATE_DIR = '/usr/share/backgrounds/mate/nature'
# Colour photographs only: the bundled gray ones (camera, coins, moon) would become gray-content
# RGB JPEGs, and motorcycle_right is motorcycle_left seen from 5 cm away.
SKIMAGE_PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg', 'ihc.png',
                  'motorcycle_left.png', 'retina.jpg', 'rocket.jpg']
PHOTO_EXTS = ('.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.bmp')
KINDS = ['jpeg', 'jpeg-gray', 'jpeg-cmyk', 'jpeg-progressive', 'png-rgb', 'png-rgba',
         'png-palette-trns', 'png-rgb16', 'png-gray', 'png-gray-alpha', 'png-gray16']
SUBSAMPLING = {0: '4:4:4', 1: '4:2:2', 2: '4:2:0'}  # PIL's codes


def find_sources(names, extra_dirs):
    """[(class name, path)] sorted by class, from the built-in sources asked for plus extra folders."""
    found, missing = [], []
    if 'mate' in names:
        if os.path.isdir(MATE_DIR):
            found += [('mate-' + os.path.splitext(f)[0].lower(), os.path.join(MATE_DIR, f))
                      for f in sorted(os.listdir(MATE_DIR)) if f.lower().endswith(PHOTO_EXTS)]
        else:
            missing.append(f'mate ({MATE_DIR} is absent: apt-get install mate-backgrounds)')
    if 'skimage' in names:
        spec = importlib.util.find_spec('skimage')
        data = spec and os.path.join(spec.submodule_search_locations[0], 'data')
        if data and os.path.isdir(data):
            found += [('skimage-' + os.path.splitext(f)[0].replace('_', '-'), os.path.join(data, f))
                      for f in SKIMAGE_PHOTOS if os.path.isfile(os.path.join(data, f))]
        else:
            missing.append('skimage (scikit-image is not installed for this python: pip install scikit-image)')
    for d in extra_dirs:
        files = sorted(f for f in os.listdir(d) if f.lower().endswith(PHOTO_EXTS))
        if not files:
            sys.exit(f'image-corpus: --source {d} holds no {"/".join(PHOTO_EXTS)} files')
        found += [(os.path.splitext(f)[0].lower().replace(' ', '-'), os.path.join(d, f)) for f in files]
    return sorted(found), missing


def output_size(rng):
    """An ImageNet-like (width, height): the long side is usually 500, the aspect usually 4:3."""
    aspect = rng.choices([4 / 3, 3 / 2, 1.0, 16 / 9, rng.uniform(1.1, 1.9)], [0.5, 0.2, 0.1, 0.05, 0.15])[0]
    long_side = 500 if rng.random() < 0.6 else rng.randint(400, 640)
    short_side = max(280, round(long_side / aspect))
    return (short_side, long_side) if rng.random() < 0.25 else (long_side, short_side)


def crop_box(rng, src_w, src_h, out_w, out_h):
    """A random region of the source with the output's aspect. At least 20% of the largest such
    region, and never blown up more than 1.67x, so small sources are not turned into blur."""
    aspect = out_w / out_h
    w_max = min(src_w, src_h * aspect)
    lo = min(1.0, max(0.2, 0.6 * out_w / w_max))
    w = w_max * lo ** rng.random()  # log-uniform in [lo, 1] of the largest
    h = w / aspect
    x = rng.uniform(0, src_w - w)
    y = rng.uniform(0, src_h - h)
    return (x, y, x + w, y + h)


def write_png16(path, planes):
    """A 16-bit PNG from uint16 planes (1 = gray, 3 = RGB): PIL has no mode to write 48-bit RGB."""
    h, w = planes[0].shape
    pixels = np.stack(planes, axis=-1).astype('>u2').reshape(h, w * len(planes))
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.view(np.uint8)], axis=1)  # filter 0 per row

    def chunk(tag, body):
        return struct.pack('>I', len(body)) + tag + body + struct.pack('>I', zlib.crc32(tag + body))
    color_type = {1: 0, 3: 2}[len(planes)]
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, color_type, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw.tobytes(), 6)) + chunk(b'IEND', b''))


def resize16(src, box, size, flip):
    """uint16 planes of the crop, resized in float so the low byte carries real interpolated detail."""
    planes = []
    for band in src.split():
        f = band.convert('F').resize(size, Image.Resampling.BICUBIC, box=box)
        if flip:
            f = f.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        planes.append(np.clip(np.asarray(f) * 257.0 + 0.5, 0, 65535).astype(np.uint16))
    return planes


def alpha_gradient(rng, w, h):
    """A linear ramp from opaque to transparent in a random direction: every alpha value occurs."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = (t - t.min()) / max(1e-9, t.max() - t.min())
    return Image.fromarray(np.round(t * 255).astype(np.uint8), 'L')


def to_cmyk(rgb):
    """RGB to CMYK with full under-colour removal, so the K channel carries the darkness the way a
    prepress conversion does (PIL's own convert('CMYK') leaves K at 0)."""
    a = 255 - np.asarray(rgb, dtype=np.int16)
    k = a.min(axis=-1, keepdims=True)
    return Image.fromarray(np.concatenate([a - k, k], axis=-1).astype(np.uint8), 'CMYK')


def make_image(src, rng, kind, path_stem):
    """Cuts one image out of `src` and writes it; returns its manifest record."""
    out_w, out_h = output_size(rng)
    box = crop_box(rng, src.width, src.height, out_w, out_h)
    flip = rng.random() < 0.5
    rec = {'kind': kind, 'width': out_w, 'height': out_h}
    if kind in ('png-rgb16', 'png-gray16'):
        planes = resize16(src if kind == 'png-rgb16' else src.convert('L'), box, (out_w, out_h), flip)
        path = path_stem + '.png'
        write_png16(path, planes)
        return path, rec
    img = src.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if kind.startswith('jpeg'):
        quality = rng.randint(75, 95)
        progressive = kind == 'jpeg-progressive' or (kind == 'jpeg' and rng.random() < 0.1)
        subsampling = rng.choices([2, 0, 1], [0.75, 0.2, 0.05])[0] if kind == 'jpeg' else 2
        if kind == 'jpeg-gray':
            img = img.convert('L')
        elif kind == 'jpeg-cmyk':
            img = to_cmyk(img)
        path = path_stem + '.jpg'
        img.save(path, 'JPEG', quality=quality, progressive=progressive, subsampling=subsampling)
        rec.update(quality=quality, progressive=progressive,
                   subsampling=None if kind == 'jpeg-gray' else SUBSAMPLING[subsampling])
        return path, rec
    path = path_stem + '.png'
    extra = {}
    if kind == 'png-rgba':
        img.putalpha(alpha_gradient(rng, out_w, out_h))
    elif kind == 'png-gray':
        img = img.convert('L')
    elif kind == 'png-gray-alpha':
        img = img.convert('L')
        img.putalpha(alpha_gradient(rng, out_w, out_h))
    elif kind == 'png-palette-trns':
        img = img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
        # A tRNS shorter than the palette, with fully and partly transparent entries: the cases a
        # decoder's palette expansion gets wrong.
        extra['transparency'] = bytes([0, 64, 128, 192] + [rng.randrange(256) for _ in range(12)])
    elif kind != 'png-rgb':
        raise ValueError(kind)
    img.save(path, 'PNG', compress_level=6, **extra)
    return path, rec


def build_class(task):
    """Writes every image of one class; runs in a worker so each process holds one source at a time."""
    out, seed, cls, src_path, items = task
    try:
        with Image.open(src_path) as f:
            src = f.convert('RGB')
    except OSError as e:
        raise SystemExit(f'image-corpus: cannot read source photograph {src_path}: {e}')
    records = []
    for index, j, split, kind in items:
        # Seeded per image, not per process, so the files do not depend on --jobs.
        rng = random.Random(f'{seed}/{cls}/{j}')
        stem = os.path.join(out, split, cls, f'{index:06d}-{kind}')
        path, rec = make_image(src, rng, kind, stem)
        rec.update(path=os.path.relpath(path, out), split=split, **{'class': cls})
        records.append((index, rec))
    return records


def plan(count, classes, kinds, val_fraction):
    """(class -> [(index, j, split, kind)]). Classes are balanced; each class has at least one val
    image and one train image, because torchvision's ImageFolder numbers the classes it finds in
    each split on its own, so a class missing from val would shift every later label."""
    per_class = {c: [] for c in classes}
    for i in range(count):
        per_class[classes[i % len(classes)]].append(i)
    result = {}
    for c_idx, c in enumerate(classes):
        idxs = per_class[c]
        n_val = min(len(idxs) - 1, max(1, round(len(idxs) * val_fraction))) if val_fraction > 0 else 0
        n_train = len(idxs) - n_val
        # Kinds start at a class-dependent offset so that small corpora still cover every kind in both splits.
        result[c] = [(i, j, 'train' if j < n_train else 'val', kinds[(j + c_idx) % len(kinds)])
                     for j, i in enumerate(idxs)]
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('out', help='output folder (created; must be empty or absent unless --force)')
    ap.add_argument('--count', type=int, default=2000, help='images in all (default 2000)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--kinds', nargs='+', default=['jpeg'],
                    help=f'formats to cycle through, or "all": {", ".join(KINDS)} (default jpeg)')
    ap.add_argument('--sources', default='mate,skimage',
                    help='built-in photograph sources, comma-separated: mate, skimage; "none" for only --source')
    ap.add_argument('--source', action='append', default=[], metavar='DIR',
                    help='also use the photographs in DIR (one class each); repeatable')
    ap.add_argument('--classes', type=int, default=0,
                    help='use only the first N sources as classes (default: all, but no more than count/2)')
    ap.add_argument('--val-fraction', type=float, default=0.2, help='share of each class put in val/ (default 0.2)')
    ap.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1), help='processes (default 2)')
    ap.add_argument('--force', action='store_true', help='replace train/, val/ and corpus.json in an existing out')
    args = ap.parse_args()

    kinds = [k for arg in args.kinds for k in arg.split(',') if k]
    kinds = KINDS if kinds == ['all'] else kinds
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f'unknown kind(s) {", ".join(unknown)}; known: {", ".join(KINDS)}, all')
    if args.count < 2:
        ap.error('--count must be at least 2 (one train and one val image)')
    if not 0 <= args.val_fraction < 1:
        ap.error('--val-fraction must be in [0, 1)')
    for d in args.source:
        if not os.path.isdir(d):
            ap.error(f'--source {d} is not a folder')

    names = {s.strip() for s in args.sources.split(',')} - {'none', ''}
    if names - {'mate', 'skimage'}:
        ap.error(f'unknown source(s) {", ".join(sorted(names - {"mate", "skimage"}))}; known: mate, skimage')
    sources, missing = find_sources(names, args.source)
    for m in missing:
        print(f'image-corpus: source skipped: {m}', file=sys.stderr)
    if not sources:
        sys.exit('image-corpus: no source photographs found. Install some (apt-get install mate-backgrounds; '
                 'pip install scikit-image) or pass --source DIR')
    # With few images, fewer classes: every class needs a train and a val image (see plan()).
    n_classes = min(len(sources), args.classes or len(sources), max(1, args.count // 2))
    sources = sources[:n_classes]
    classes = [c for c, _ in sources]
    if len(set(classes)) != len(classes):
        sys.exit('image-corpus: two source photographs give the same class name; rename one')

    if os.path.isdir(args.out) and os.listdir(args.out):
        if not args.force:
            sys.exit(f'image-corpus: {args.out} is not empty (pass --force to replace its corpus)')
        # The manifest goes first: a corpus without it reads as incomplete if we are interrupted.
        for name in ('corpus.json', 'train', 'val'):
            p = os.path.join(args.out, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
    for split in ('train', 'val') if args.val_fraction > 0 else ('train',):
        for c in classes:
            os.makedirs(os.path.join(args.out, split, c), exist_ok=True)

    layout = plan(args.count, classes, kinds, args.val_fraction)
    tasks = [(args.out, args.seed, c, p, layout[c]) for c, p in sources]
    # Big classes first, so the last process is not left alone with the slowest one.
    tasks.sort(key=lambda t: -len(t[4]))
    if args.jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context('fork').Pool(min(args.jobs, len(tasks))) as pool:
            results = pool.map(build_class, tasks, chunksize=1)
    else:
        results = [build_class(t) for t in tasks]
    records = [rec for _, rec in sorted(r for res in results for r in res)]

    counts = {}
    for r in records:
        counts.setdefault(r['split'], {}).setdefault(r['kind'], 0)
        counts[r['split']][r['kind']] += 1
    manifest = {
        'seed': args.seed, 'count': len(records), 'kinds': kinds, 'valFraction': args.val_fraction,
        'classes': classes, 'sources': {c: p for c, p in sources}, 'counts': counts,
        'pillow': Image.__version__, 'files': records,
    }
    tmp = os.path.join(args.out, 'corpus.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(args.out, 'corpus.json'))
    size = sum(os.path.getsize(os.path.join(args.out, r['path'])) for r in records)
    print(f'image-corpus: {len(records)} images ({", ".join(f"{s} {sum(k.values())}" for s, k in counts.items())}), '
          f'{len(classes)} classes, {size / 2**20:.1f} MiB in {args.out}', file=sys.stderr)


if __name__ == '__main__':
    main()
