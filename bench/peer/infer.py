# The PyTorch (LibTorch) peer of bench/infer.ts: what a user without the packed engine runs at
# inference. Each case prints one JSON line with seconds per call (fastest of repeated runs).
#   conv:  one float 3x3 convolution (padding 1, no bias) on a +-1 channels-last input with +-1
#          weights, under inference_mode, the shapes of the binary convolution it is compared with;
#   model: the whole network (scripts/golden/bnn_reference.py) loaded from the same float
#          safetensors the packed file was made from, eval mode, channels-last, inference_mode.
#
#   python3 bench/peer/infer.py '{"threads":2,"cases":[{"kind":"conv","inChannels":64,...},{"kind":"model","weights":"x.safetensors","batch":1,"size":224}]}'
import json
import os
import resource
import sys
import time

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)


def timed(fn, iterations, repeats=9):
    fn()
    fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iterations):
            fn()
        runs.append((time.perf_counter() - t) / iterations)
    return min(runs)  # the fastest run, as the engine's side of bench/infer.ts


def sign(t):
    return torch.where(t >= 0, 1.0, -1.0)


for case in cfg['cases']:
    with torch.inference_mode():
        if case['kind'] == 'conv':
            n, c, o, h, w, s = case['batch'], case['inChannels'], case['outChannels'], case['height'], case['width'], case['stride']
            x = sign(torch.randn(n, c, h, w)).contiguous(memory_format=torch.channels_last)
            k = sign(torch.randn(o, c, 3, 3)).contiguous(memory_format=torch.channels_last)
            seconds = timed(lambda: torch.nn.functional.conv2d(x, k, stride=s, padding=1), case['iterations'])
        else:
            with safe_open(case['weights'], 'pt') as f:
                conf = json.loads(f.metadata()['bnn_torch.config'])
            model = ResNet18(num_classes=conf['numClasses'], in_channels=conf['inChannels'], width=conf['width'], stem=conf['stem'],
                             double_skip=conf['doubleSkip'], binary_weights=True)
            model.load_state_dict(load_file(case['weights']), strict=True)
            model.eval().to(memory_format=torch.channels_last)
            x = torch.randn(case['batch'], conf['inChannels'], case['size'], case['size']).contiguous(memory_format=torch.channels_last)
            seconds = timed(lambda: model(x), case['iterations'])
    print(json.dumps({**case, 'seconds': seconds, 'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cpuIsa': torch.backends.cpu.get_cpu_capability()}), flush=True)
