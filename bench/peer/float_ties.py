# How far float32 rounding alone moves a binary network's logits: the PyTorch reference network
# (scripts/golden/bnn_reference.py) with a run's weights, in float32 and in float64, on every
# Fashion-MNIST test image. A sign whose input sits within rounding of its threshold flips between
# the two, as it can between LibTorch and the packed engine (whose binary sums are exact integers).
#   python3 bench/peer/float_ties.py runs/<run>/final.safetensors [image,image,...]
import gzip
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'scripts', 'golden'))
from bnn_reference import ResNet18  # noqa: E402

weights = sys.argv[1]
with safe_open(weights, 'pt') as f:
    conf = json.loads(f.metadata()['bnn_torch.config'])
with gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz') as f:
    data = f.read()
images = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 1, 28, 28)
x = (torch.from_numpy(images.copy()).float() / 255 - 0.2860) / 0.3530
logits = {}
for dtype in (torch.float32, torch.float64):
    model = ResNet18(num_classes=conf['numClasses'], in_channels=conf['inChannels'], width=conf['width'], stem=conf['stem'],
                     double_skip=conf['doubleSkip'], binary_weights=True)
    model.load_state_dict(load_file(weights))
    model = model.to(dtype).eval()
    with torch.inference_mode():
        logits[dtype] = torch.cat([model(x[i:i + 500].to(dtype)) for i in range(0, len(x), 500)]).double()
a, b = logits[torch.float32], logits[torch.float64]
rel = ((a - b).abs().amax(1) / b.abs().amax(1).clamp(min=1))
print(json.dumps({'images': len(x), 'sameClass': int((a.argmax(1) == b.argmax(1)).sum()), 'over1e-4': int((rel > 1e-4).sum()), 'maxRel': float(rel.max())}))
if len(sys.argv) > 2:
    # The classes of the listed images in float32 and float64, with float64's top-two margin.
    for i in map(int, sys.argv[2].split(',')):
        top = b[i].topk(2).values
        print(json.dumps({'image': i, 'float32Class': int(a[i].argmax()), 'float64Class': int(b[i].argmax()), 'float64Margin': float(top[0] - top[1])}))
