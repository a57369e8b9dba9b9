# The PyTorch peer of bench/distributed-worker.ts: the same network (bench/peer/train_step.py's,
# from scripts/golden/bnn_reference.py) under DistributedDataParallel with Gloo, started with the
# same torchrun variables. Rank 0 prints one JSON line.
import json
import os
import resource
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

job = json.loads(sys.argv[1])
torch.set_num_threads(job['threads'])
torch.manual_seed(0)
world = int(os.environ.get('WORLD_SIZE', '1'))
if world > 1:
    dist.init_process_group('gloo')
batch = job['globalBatch'] // world
model = ResNet18(num_classes=10, in_channels=job['inChannels'], width=job['width'], binary_weights=job['stage'] == 2)
if world > 1:
    model = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5 if job['stage'] == 1 else 0.0)
x = torch.randn(batch, job['inChannels'], job['size'], job['size'])
y = torch.arange(batch) % 10


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


model.train()
for _ in range(job['warmup']):
    step()
if world > 1:
    dist.barrier()
t = time.perf_counter()
for _ in range(job['steps']):
    step()
if world > 1:
    dist.barrier()
seconds = time.perf_counter() - t
if world == 1 or dist.get_rank() == 0:
    print(json.dumps({'imagesPerSecond': job['steps'] * job['globalBatch'] / seconds,
                      'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
if world > 1:
    dist.destroy_process_group()
