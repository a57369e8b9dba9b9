"""The PyTorch peer of bench/epoch.ts: one full training epoch of Fashion-MNIST, data loading included,
written the obvious way a PyTorch user would: the IDX .gz files read with gzip + torch.frombuffer,
normalised once, a TensorDataset and torch.utils.data.DataLoader(shuffle=True), the same network as
bench/peer/train_step.py (scripts/golden/bnn_reference.py) and torch.optim.Adam.

Prints one JSON line: {"imagesPerSecond", "epochSeconds", "loadSeconds", "images", "maxRssMiB", ...}.
Usage: python3 bench/peer/epoch.py '{"width":16,"stage":1,"batch":128,"threads":2,"batches":0,"root":"/usr/share/datasets/fashion-mnist"}'
(batches 0: the whole epoch; N: only the first N batches, for a quick run)
"""
import gzip
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set statistics of pixel/255


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)

t0 = time.perf_counter()
root = cfg['root']
images = read_idx(os.path.join(root, 'train-images-idx3-ubyte.gz'))
labels = read_idx(os.path.join(root, 'train-labels-idx1-ubyte.gz')).long()
if cfg.get('batches'):
    images, labels = images[:cfg['batches'] * cfg['batch']], labels[:cfg['batches'] * cfg['batch']]
x = ((images.float() / 255 - MEAN) / STD).unsqueeze(1)  # [N, 1, 28, 28]
loader = DataLoader(TensorDataset(x, labels), batch_size=cfg['batch'], shuffle=True)
load_seconds = time.perf_counter() - t0

model = ResNet18(num_classes=10, in_channels=1, width=cfg['width'], binary_weights=cfg['stage'] == 2)
opt = torch.optim.Adam(model.parameters(), lr=2e-3 if cfg['stage'] == 1 else 5e-4,
                       weight_decay=1e-5 if cfg['stage'] == 1 else 0.0)

model.train()
seen = 0
loss_sum = 0.0
segments = []  # images/s per tenth of the epoch
per_segment = max(1, round(len(loader) / 10))
r0 = resource.getrusage(resource.RUSAGE_SELF)
t = mark = time.perf_counter()
mark_seen = 0
for i, (xb, yb) in enumerate(loader, 1):
    opt.zero_grad()
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    loss_sum += loss.item() * yb.numel()  # what a training loop logs; bnn-torch's step returns it too
    seen += yb.numel()
    if i % per_segment == 0 or i == len(loader):
        now = time.perf_counter()
        segments.append(round((seen - mark_seen) / (now - mark)))
        mark, mark_seen = now, seen
epoch_seconds = time.perf_counter() - t
r1 = resource.getrusage(resource.RUSAGE_SELF)

print(json.dumps({
    'imagesPerSecond': seen / epoch_seconds,
    'epochSeconds': epoch_seconds,
    'loadSeconds': load_seconds,
    'images': seen,
    'trainLoss': loss_sum / seen,
    'cpuSeconds': (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
    'segmentImagesPerSecond': segments,
    'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    'torch': torch.__version__,
    'threads': torch.get_num_threads(),
}))
