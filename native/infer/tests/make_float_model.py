#!/usr/bin/env python3
"""Writes a random float bnn-torch model (the parameter names and __metadata__ training writes),
for size and speed measurements of the packed format when no trained model of that shape exists.

  make_float_model.py OUT.safetensors --width 64 --in-channels 3 --classes 1000 --stem imagenet [--classic]"""
import argparse, json

import torch
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--width', type=int, default=64)
ap.add_argument('--in-channels', type=int, default=3)
ap.add_argument('--classes', type=int, default=1000)
ap.add_argument('--stem', default='imagenet')
ap.add_argument('--classic', action='store_true')
a = ap.parse_args()
torch.manual_seed(0)
sd = {}
def bn(p, n):
    sd[p + '.weight'] = torch.rand(n) + 0.5
    sd[p + '.bias'] = torch.randn(n) * 0.1
    sd[p + '.running_mean'] = torch.randn(n) * 0.1
    sd[p + '.running_var'] = torch.rand(n) + 0.5
    sd[p + '.num_batches_tracked'] = torch.tensor(1000, dtype=torch.int64)
k = 7 if a.stem == 'imagenet' else 3
W = a.width
sd['conv1.weight'] = torch.randn(W, a.in_channels, k, k) * 0.1
bn('bn1', W)
cin = W
for layer in range(1, 5):
    planes, stride = W << (layer - 1), 1 if layer == 1 else 2
    for b in range(2 if a.classic else 4):
        p = f'layer{layer}.{b}'
        s = stride if b == 0 else 1
        i = cin if b == 0 else planes
        convs = [('1', i), ('2', planes)] if a.classic else [('', i)]
        for sfx, cin_ in convs:
            bn(f'{p}.bn{sfx}', cin_)
            sd[f'{p}.conv{sfx}.weight'] = torch.randn(planes, cin_, 3, 3) * 0.05
            sd[f'{p}.prelu{sfx}.weight'] = torch.full((planes,), 0.25)
        if s != 1 or i != planes:
            sd[f'{p}.downsample.0.weight'] = torch.randn(planes, i, 1, 1) * 0.1
            bn(f'{p}.downsample.1', planes)
    cin = planes
sd['fc.weight'] = torch.randn(a.classes, 8 * W) * 0.05
sd['fc.bias'] = torch.zeros(a.classes)
cfg = {'arch': 'resnet18', 'numClasses': a.classes, 'inChannels': a.in_channels, 'width': W, 'stem': a.stem,
       'doubleSkip': not a.classic, 'binaryActivations': True, 'binaryWeights': True, 'bnMomentum': 0.1}
save_file({k: v.contiguous() for k, v in sd.items()}, a.out, metadata={'bnn_torch.config': json.dumps(cfg), 'format': 'pt'})
