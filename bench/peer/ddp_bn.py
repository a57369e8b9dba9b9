# The PyTorch peer for data-parallel BatchNorm (issue 18): the quick stage-1 run of
# `bnn train --stage 1 --limit N --epochs1 E [--nproc W]` (fashion-mnist-cpu preset: width 16,
# global batch 128, Adam 2e-3, weight decay 1e-5, no augmentation) under DistributedDataParallel
# with Gloo and broadcast_buffers=True, as DDP runs by default. (torch.nn.SyncBatchNorm refuses CPU
# tensors, so it has no CPU peer for --sync-bn; test/distributed.test.ts checks that against one
# process on the global batch instead.) It reports what the issue measured: test accuracy with the
# running statistics, test accuracy with batch statistics, and how far each BatchNorm's running
# mean sits from the mean of its input over the test set, in standard deviations.
#
#   python3 bench/peer/ddp_bn.py --world 2 --seed 0 [--limit 3000] [--epochs 1]
#   python3 bench/peer/ddp_bn.py --weights runs/x/stage1.safetensors   # judge bnn-torch's result
#
# Prints one JSON line.
import argparse
import gzip
import json
import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

ROOT = '/usr/share/datasets/fashion-mnist'
MEAN, STD = 0.2860, 0.3530  # native/data/dataset.cpp's Fashion-MNIST statistics


def idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split, limit=None):
    prefix = 'train' if split == 'train' else 't10k'
    x = idx(os.path.join(ROOT, f'{prefix}-images-idx3-ubyte.gz'))
    y = idx(os.path.join(ROOT, f'{prefix}-labels-idx1-ubyte.gz'))
    if limit:
        x, y = x[:limit], y[:limit]
    x = (torch.from_numpy(x.astype(np.float32)).unsqueeze(1) / 255 - MEAN) / STD
    return x, torch.from_numpy(y.astype(np.int64))


def make_model():
    return ResNet18(num_classes=10, in_channels=1, width=16)


@torch.no_grad()
def judge(model, x, y):
    """Test accuracy with running and with batch statistics, and the running means' offsets."""
    model.eval()
    sums = {}

    def hook(name):
        def pre(_, inputs):
            t = inputs[0].double()
            s = sums.setdefault(name, [0, 0, 0])
            s[0] += t.sum((0, 2, 3))
            s[1] += (t * t).sum((0, 2, 3))
            s[2] += t.numel() // t.size(1)
        return pre

    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in bns.items()]
    correct = sum((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item() for i in range(0, len(x), 500))
    for h in handles:
        h.remove()
    offsets = {}
    for n, m in bns.items():
        s, ss, c = sums[n]
        mean = s / c
        std = (ss / c - mean * mean).clamp_min(0).sqrt()
        offsets[n] = ((m.running_mean.double() - mean).abs() / (std + 1e-5)).mean().item()
    # Batch statistics: BatchNorm in training mode without touching the saved running statistics.
    saved = {n: (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for n, m in bns.items()}
    model.train()
    batch_correct = sum((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item() for i in range(0, len(x), 500))
    for n, m in bns.items():
        m.running_mean.copy_(saved[n][0])
        m.running_var.copy_(saved[n][1])
        m.num_batches_tracked.copy_(saved[n][2])
    model.eval()
    names = list(offsets)
    return {
        'testAccuracy': correct / len(x),
        'testAccuracyBatchStats': batch_correct / len(x),
        # mean |running mean - test-time mean| / test-time std over channels, averaged over the
        # BatchNorms from layer1.1 on (the measure), and the largest layer's.
        'runningMeanOffset': float(np.mean([offsets[n] for n in names if not n.startswith(('bn1', 'layer1.0'))])),
        'runningMeanOffsetMax': max(offsets.values()),
    }


def worker(rank, world, args, port, out):
    torch.set_num_threads(max(1, args.threads // world))
    if world > 1:
        os.environ['MASTER_ADDR'] = '127.0.0.1'
        os.environ['MASTER_PORT'] = str(port)
        dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(args.seed)
    model = make_model()
    net = nn.parallel.DistributedDataParallel(model, broadcast_buffers=True) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    x, y = load('train', args.limit)
    batch = args.batch // world
    steps = 0
    for epoch in range(args.epochs):
        model.train()
        # DistributedSampler's order: one seeded permutation, padded with its beginning, strided.
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(x), generator=g)
        per = -(-len(x) // world)
        order = torch.cat([order, order[:per * world - len(x)]])[rank::world]
        for i in range(0, len(order), batch):
            b = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[b]), y[b]).backward()
            opt.step()
            steps += 1
    if rank == 0:
        tx, ty = load('test')
        out.put({'world': world, 'seed': args.seed, 'steps': steps, **judge(model, tx, ty)})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--world', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--limit', type=int, default=3000)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--weights', help='judge a bnn-torch stage-1 .safetensors instead of training')
    args = p.parse_args()
    if args.weights:
        from safetensors.torch import load_file
        model = make_model()
        model.load_state_dict(load_file(args.weights))
        tx, ty = load('test')
        print(json.dumps({'weights': args.weights, **judge(model, tx, ty)}))
        return
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    out = ctx.SimpleQueue()
    if args.world == 1:
        worker(0, 1, args, port, out)
    else:
        mp.spawn(worker, args=(args.world, args, port, out), nprocs=args.world)
    print(json.dumps(out.get()))


if __name__ == '__main__':
    main()
