"""The PyTorch peer of bench/train-step.ts: the same double-skip binary ResNet-18, written the way a
PyTorch user would (autograd Functions for the sign, nn.Modules, torch.optim.Adam; the model is
scripts/golden/bnn_reference.py, the network the golden tests check bnn-torch against).

Prints one JSON line: {"imagesPerSecond", "evalImagesPerSecond", "maxRssMiB", ...}.
Usage: python3 bench/peer/train_step.py '{"width":16,"inChannels":1,"size":28,"stage":1,"batch":128,"steps":10,"warmup":3,"threads":2}'
"""
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)
device = cfg.get('device', 'cpu')
model = ResNet18(num_classes=10, in_channels=cfg['inChannels'], width=cfg['width'], binary_weights=cfg['stage'] == 2).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5 if cfg['stage'] == 1 else 0.0)
x = torch.randn(cfg['batch'], cfg['inChannels'], cfg['size'], cfg['size'], device=device)
y = torch.arange(cfg['batch'], device=device) % 10


def sync():
    if device != 'cpu':
        torch.cuda.synchronize()


def step():
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


model.train()
for _ in range(cfg['warmup']):
    step()
sync()
t = time.perf_counter()
for _ in range(cfg['steps']):
    step()
sync()
train_ips = cfg['steps'] * cfg['batch'] / (time.perf_counter() - t)

model.eval()
with torch.inference_mode():
    for _ in range(2):
        model(x)
    sync()
    t = time.perf_counter()
    for _ in range(cfg['steps']):
        model(x)
    sync()
    eval_ips = cfg['steps'] * cfg['batch'] / (time.perf_counter() - t)

print(json.dumps({
    'imagesPerSecond': train_ips,
    'evalImagesPerSecond': eval_ips,
    'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    'torch': torch.__version__,
    'threads': torch.get_num_threads(),
    'cpuIsa': torch.backends.cpu.get_cpu_capability(),
}))
