#!/usr/bin/env python3
"""LibTorch float eval latency of a bnn-torch float model (PyTorch ops, channels-last, inference
mode), for comparison with the packed engine on the same machine and thread count.
  torch_speed.py MODEL.safetensors BATCH SIZE [THREADS] [ITERATIONS]"""
import json, struct, sys, time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

path, batch, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
iters = int(sys.argv[5]) if len(sys.argv) > 5 else 5
torch.set_num_threads(threads)
sd = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v) for k, v in load_file(path).items()}
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    cfg = json.loads(json.loads(f.read(n))['__metadata__']['bnn_torch.config'])
W = cfg['width']
# Binary weights materialised once, as an eval-mode model holds them.
for k in list(sd):
    if k.endswith('.weight') and sd[k].dim() == 4 and '.conv' in k:
        w = sd[k]
        a = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        sd[k] = torch.where(w >= 0, a, -a).contiguous(memory_format=torch.channels_last)

def bn(t, p):
    return F.batch_norm(t, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'], False, 0.0, 1e-5)

def sign(t):
    return torch.where(t >= 0, 1.0, -1.0)

def forward(t):
    if cfg['stem'] == 'imagenet':
        t = F.max_pool2d(F.relu(bn(F.conv2d(t, sd['conv1.weight'], None, 2, 3), 'bn1')), 3, 2, 1)
    else:
        t = F.relu(bn(F.conv2d(t, sd['conv1.weight'], None, 1, 1), 'bn1'))
    cin = W
    for layer in range(1, 5):
        planes, stride = W << (layer - 1), (1 if layer == 1 else 2)
        for b in range(4 if cfg['doubleSkip'] else 2):
            p = f'layer{layer}.{b}'
            s = stride if b == 0 else 1
            sc = t
            if s != 1 or cin != planes:
                sc = bn(F.conv2d(t, sd[p + '.downsample.0.weight']), p + '.downsample.1')
                if s != 1:
                    sc = F.avg_pool2d(sc, s, s, 0, ceil_mode=True, count_include_pad=False)
            if cfg['doubleSkip']:
                t = F.prelu(F.conv2d(sign(bn(t, p + '.bn')), sd[p + '.conv.weight'], None, s, 1) + sc, sd[p + '.prelu.weight'])
            else:
                m = F.prelu(F.conv2d(sign(bn(t, p + '.bn1')), sd[p + '.conv1.weight'], None, s, 1), sd[p + '.prelu1.weight'])
                t = F.prelu(F.conv2d(sign(bn(m, p + '.bn2')), sd[p + '.conv2.weight'], None, 1, 1) + sc, sd[p + '.prelu2.weight'])
            cin = planes
    return F.linear(F.adaptive_avg_pool2d(t, 1).flatten(1), sd['fc.weight'], sd['fc.bias'])

x = torch.randn(batch, cfg['inChannels'], size, size).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    for _ in range(2):
        forward(x)
    t0 = time.perf_counter()
    for _ in range(iters):
        forward(x)
    dt = (time.perf_counter() - t0) / iters
print(f'torch eval: {dt * 1e3:.3f} ms per call (batch {batch}, {size}x{size}, {threads} threads)')
