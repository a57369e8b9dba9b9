#!/usr/bin/env python3
"""Write test/fixtures/distill.safetensors: the knowledge-distillation loss in plain PyTorch.

    python3 scripts/golden/distill.py

Two parts, both float32, deterministic (see generate.py's setup_torch):

- `loss/<i>/...`: random student and teacher logits [N, C] and labels for a few (T, w, label
  smoothing) cases: `loss` = (1 - w) * F.cross_entropy(s, y, label_smoothing=e)
  + w * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean') * T * T,
  and `grad` = d loss / d s (the teacher's logits are constants). Settings in the `cases` metadata.
- `step/...`: one distilling training step of the golden network. The student is
  model-small-c1-stage1 (binary activations; its input, labels and weights, whose signs keep a
  distance from every discontinuity), the teacher model-relu-c1-stage1 (the same shape with ReLU,
  i.e. binaryActivations false) run in eval mode under no_grad on the student's input. Records the
  teacher's logits, the student's train-mode loss with T, w, e from the `step` metadata, every
  gradient (plain SGD with lr 1, no momentum and no weight decay then makes each parameter
  p - grad, which the script asserts) and the student's running statistics after the step. The teacher's state is not written: the test
  checks it against model-relu-c1-stage1 itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bnn_reference import build_from_config  # noqa: E402
from generate import FIXTURES, save, setup_torch  # noqa: E402

LOSS_CASES = [
    dict(temperature=1.0, weight=0.5, labelSmoothing=0.0),
    dict(temperature=4.0, weight=0.9, labelSmoothing=0.0),
    dict(temperature=2.0, weight=1.0, labelSmoothing=0.0),
    dict(temperature=0.5, weight=0.3, labelSmoothing=0.1),
    dict(temperature=3.0, weight=0.0, labelSmoothing=0.2),
    dict(temperature=1.0, weight=0.5, labelSmoothing=0.1),
]
LOSS_SHAPE = (6, 7)
STEP = dict(temperature=2.0, weight=0.7, labelSmoothing=0.1, lr=1.0)
SEED = 1600


def kd_loss(s, t, y, temperature, weight, labelSmoothing):
    ce = F.cross_entropy(s, y, label_smoothing=labelSmoothing)
    kl = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean")
    return (1 - weight) * ce + weight * kl * temperature * temperature


def loss_part(tensors: dict):
    g = torch.Generator().manual_seed(SEED)
    for i, case in enumerate(LOSS_CASES):
        # Spread logits, so that the soft targets range from near one-hot to flat across the cases.
        s = (torch.randn(LOSS_SHAPE, generator=g) * (1 + i)).requires_grad_(True)
        t = torch.randn(LOSS_SHAPE, generator=g) * 3
        y = torch.randint(0, LOSS_SHAPE[1], (LOSS_SHAPE[0],), generator=g)
        loss = kd_loss(s, t, y, **case)
        loss.backward()
        tensors[f"loss/{i}/student"] = s.detach().clone()
        tensors[f"loss/{i}/teacher"] = t.clone()
        tensors[f"loss/{i}/labels"] = y.clone()
        tensors[f"loss/{i}/loss"] = loss.detach().reshape(1).clone()
        tensors[f"loss/{i}/grad"] = s.grad.detach().clone()


def fixture(name: str):
    path = FIXTURES / f"{name}.safetensors"
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + n])["__metadata__"]
    return load_file(str(path)), json.loads(meta["config"])


def step_part(tensors: dict):
    student_fx, student_cfg = fixture("model-small-c1-stage1")
    teacher_fx, teacher_cfg = fixture("model-relu-c1-stage1")
    assert not teacher_cfg["binaryActivations"] and not teacher_cfg["binaryWeights"]
    student = build_from_config(student_cfg)
    student.load_state_dict({k[6:]: v for k, v in student_fx.items() if k.startswith("state/")}, strict=True)
    teacher = build_from_config(teacher_cfg)
    teacher.load_state_dict({k[6:]: v for k, v in teacher_fx.items() if k.startswith("state/")}, strict=True)
    x, y = student_fx["input"], student_fx["labels"]
    teacher.eval()
    with torch.no_grad():
        t = teacher(x)
    student.train()
    student.zero_grad(set_to_none=True)
    s = student(x)
    loss = kd_loss(s, t, y, STEP["temperature"], STEP["weight"], STEP["labelSmoothing"])
    loss.backward()
    opt = torch.optim.SGD(student.parameters(), lr=STEP["lr"], momentum=0.0, weight_decay=0.0, foreach=False)
    grads = {n: p.grad.detach().clone() for n, p in student.named_parameters()}
    opt.step()
    tensors["step/teacher_logits"] = t.clone()
    tensors["step/loss"] = loss.detach().reshape(1).clone()
    for n, p in student.named_parameters():
        tensors[f"step/grad/{n}"] = grads[n]
        # p - lr * grad, as SGD computed it: asserted, not stored (the test computes it again).
        assert torch.equal(p.detach(), student_fx[f"state/{n}"] - STEP["lr"] * grads[n])
    for n, b in student.named_buffers():
        tensors[f"step/state_after/{n}"] = b.detach().clone()


def main():
    setup_torch()
    tensors: dict = {}
    loss_part(tensors)
    step_part(tensors)
    meta = {
        "cases": json.dumps(LOSS_CASES),
        "step": json.dumps(STEP),
        "student": "model-small-c1-stage1",
        "teacher": "model-relu-c1-stage1",
        "seed": str(SEED),
        "torch": torch.__version__,
        "generator": "scripts/golden/distill.py",
    }
    path = FIXTURES / "distill.safetensors"
    save({k: v.contiguous() for k, v in tensors.items()}, path, meta)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(tensors)} tensors, step loss {tensors['step/loss'].item():.6f})")


if __name__ == "__main__":
    main()
