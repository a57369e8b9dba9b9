"""The PyTorch peers of bench/gpu-step.ts on a GPU: the same double-skip binary ResNet-18
(scripts/golden/bnn_reference.py), trained the ways a PyTorch user would:

  eager   float32, NCHW, torch.optim.Adam (its default foreach path), cuDNN defaults: peer (a)
  tuned   bf16 autocast + channels-last + Adam(fused=True) + cudnn.benchmark: peer (b), the best
          eager setup a careful user writes
  compile tuned + torch.compile(model): peer (c)

No step reads the loss back (a careful user logs every N steps), so no peer waits for the host.
The modes run in turn in one process, each with its own model and a fresh peak-memory counter.
Prints one JSON line: per mode, images/s of the training step and peak GPU memory allocated.
Usage: python3 bench/peer/gpu_step.py '{"modes":["eager","tuned"],"size":224,"stem":"imagenet","classes":1000,"stage":1,"batch":256,"steps":12,"warmup":4}'
"""
import gc
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

cfg = json.loads(sys.argv[1])
dev = 'cuda'


def measure(mode):
    torch.manual_seed(0)
    tuned = mode in ('tuned', 'compile')
    torch.backends.cudnn.benchmark = tuned
    model = ResNet18(num_classes=cfg['classes'], in_channels=3, width=cfg.get('width', 64), stem=cfg['stem'],
                     binary_weights=cfg['stage'] == 2).to(dev)
    x = torch.randn(cfg['batch'], 3, cfg['size'], cfg['size'], device=dev)
    y = torch.arange(cfg['batch'], device=dev) % cfg['classes']
    if tuned:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5 if cfg['stage'] == 1 else 0.0,
                           fused=True if tuned else None)
    net = torch.compile(model) if mode == 'compile' else model

    def step():
        opt.zero_grad(set_to_none=True)
        if tuned:
            with torch.autocast('cuda', dtype=torch.bfloat16):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
        else:
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    model.train()
    t0 = time.perf_counter()
    for _ in range(cfg['warmup']):
        step()
    torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(cfg['steps']):
        loss = step()
    torch.cuda.synchronize()
    ips = cfg['steps'] * cfg['batch'] / (time.perf_counter() - t)
    out = {'imagesPerSecond': ips, 'peakMiB': torch.cuda.max_memory_allocated() / 2**20, 'warmupSeconds': warm_s,
           'loss': float(loss)}
    del net, model, opt, x, y, loss
    gc.collect()
    torch.cuda.empty_cache()
    return out


result = {'torch': torch.__version__, 'gpu': torch.cuda.get_device_name()}
for mode in cfg['modes']:
    try:
        result[mode] = measure(mode)
    except Exception as e:  # report, keep the other modes
        result[mode] = f'failed: {type(e).__name__}: {str(e)[:200]}'
print(json.dumps(result))
