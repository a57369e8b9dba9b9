#!/usr/bin/env python3
"""LibTorch (PyTorch) float reference for a bnn-torch float safetensors model, for comparing the
packed engine against it: runs the network with PyTorch's own ops (conv2d, batch_norm in eval,
sign with 0 -> +1, sign(W) * mean|W| weights, PReLU, avg_pool2d ceil_mode) in float32.

  torch_reference.py MODEL.safetensors OUT_PREFIX [--fashion N | --random N C H W]

Writes OUT_PREFIX.input.f32 (NCHW float32), OUT_PREFIX.logits.f32, OUT_PREFIX.labels.u8 (Fashion-MNIST)
and OUT_PREFIX.json (shape)."""
import gzip, json, struct, sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def main():
    path, prefix = sys.argv[1], sys.argv[2]
    sd = load_file(path)
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        cfg = json.loads(json.loads(f.read(n))['__metadata__']['bnn_torch.config'])
    if sys.argv[3] == '--fashion':
        count = int(sys.argv[4])
        with gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz') as f:
            raw = f.read()[16:]
        with gzip.open('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz') as f:
            labels = f.read()[8:][:count]
        x = torch.frombuffer(bytearray(raw), dtype=torch.uint8)[: count * 784].reshape(count, 1, 28, 28).float() / 255
        x = (x - 0.2860) / 0.3530
        open(prefix + '.labels.u8', 'wb').write(labels)
    else:
        count, c, h, w = map(int, sys.argv[4:8])
        torch.manual_seed(0)
        x = torch.randn(count, c, h, w)
    x = x.contiguous()

    def bn(t, p):
        return F.batch_norm(t, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'], False, 0.0, 1e-5)

    def sign(t):
        return torch.where(t >= 0, torch.ones_like(t), -torch.ones_like(t))

    def bconv(t, p, stride):
        w = sd[p + '.weight']
        alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(t, torch.where(w >= 0, alpha, -alpha), None, stride, 1)

    def shortcut(t, p, stride, cin, cout):
        if stride == 1 and cin == cout:
            return t
        s = bn(F.conv2d(t, sd[p + '.downsample.0.weight']), p + '.downsample.1')
        if stride != 1:
            s = F.avg_pool2d(s, stride, stride, 0, ceil_mode=True, count_include_pad=False)
        return s

    width = cfg['width']
    outs = []
    with torch.inference_mode():
        for i in range(0, count, 500):
            t = x[i:i + 500]
            if cfg['stem'] == 'imagenet':
                t = F.max_pool2d(F.relu(bn(F.conv2d(t, sd['conv1.weight'], None, 2, 3), 'bn1')), 3, 2, 1)
            else:
                t = F.relu(bn(F.conv2d(t, sd['conv1.weight'], None, 1, 1), 'bn1'))
            cin = width
            for layer in range(1, 5):
                planes, stride = width << (layer - 1), (1 if layer == 1 else 2)
                for b in range(4 if cfg['doubleSkip'] else 2):
                    p = f'layer{layer}.{b}'
                    s = stride if b == 0 else 1
                    if cfg['doubleSkip']:
                        y = bconv(sign(bn(t, p + '.bn')), p + '.conv', s) + shortcut(t, p, s, cin, planes)
                        t = F.prelu(y, sd[p + '.prelu.weight'])
                    else:
                        m = F.prelu(bconv(sign(bn(t, p + '.bn1')), p + '.conv1', s), sd[p + '.prelu1.weight'])
                        y = bconv(sign(bn(m, p + '.bn2')), p + '.conv2', 1) + shortcut(t, p, s, cin, planes)
                        t = F.prelu(y, sd[p + '.prelu2.weight'])
                    cin = planes
            t = F.adaptive_avg_pool2d(t, 1).flatten(1)
            outs.append(F.linear(t, sd['fc.weight'], sd['fc.bias']))
    logits = torch.cat(outs)
    open(prefix + '.input.f32', 'wb').write(x.numpy().tobytes())
    open(prefix + '.logits.f32', 'wb').write(logits.numpy().tobytes())
    json.dump({'shape': list(x.shape), 'classes': logits.shape[1]}, open(prefix + '.json', 'w'))


main()
