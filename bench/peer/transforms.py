"""torchvision's side of bench/transforms.ts: its eval transform and ImageFolder order on the files
bnn-torch rendered, compared byte for byte. Run with the peer venv's python (scripts/peer-venv).

    transforms.py --root <ImageFolder split> --ours <dir of .raw files> --size 224 --resize 256
"""
import argparse
import json
import os

import numpy as np
from PIL import Image
from torchvision import datasets, transforms


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--ours", required=True)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--resize", type=int, default=256)
    a = p.parse_args()
    folder = datasets.ImageFolder(a.root)
    with open(os.path.join(a.ours, "order.json")) as f:
        ours = json.load(f)
    eval_t = transforms.Compose([transforms.Resize(a.resize), transforms.CenterCrop(a.size)])
    diffs, exact = [], 0
    for i, (path, _label) in enumerate(folder.samples[: len(ours["rendered"])]):
        theirs = np.asarray(eval_t(Image.open(path).convert("RGB")), dtype=np.int16)
        mine = np.fromfile(os.path.join(a.ours, f"{i}.raw"), dtype=np.uint8).reshape(theirs.shape).astype(np.int16)
        d = np.abs(theirs - mine)
        diffs.append(float(d.mean()))
        exact += int(d.max() == 0)
    print(json.dumps({
        "classes_match": folder.classes == ours["classNames"],
        "labels_match": [t for _, t in folder.samples] == ours["labels"],
        "images": len(diffs),
        "exact": exact,
        "mean_abs_diff_mean": float(np.mean(diffs)),
        "mean_abs_diff_max": float(np.max(diffs)),
    }))


if __name__ == "__main__":
    main()
