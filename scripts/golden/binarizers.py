"""Golden fixtures of the alternative binarisers (issue 16): ApproxSign, RSign, RPReLU.

Writes test/fixtures/binarizers/*.safetensors from the plain-PyTorch reference (bnn_reference.py), for
test/binarizers.test.ts:

  approx-sign-values   the ApproxSign op alone: inputs x (edge values and random), an upstream gradient g,
                       the forward and the input gradient autograd derives for Bi-Real Net's polynomial
                       (bnn_reference.approx_sign: no hand-written backward)
  <case>               a tiny network (width 2, one input channel, 5 classes, input [2, 1, 8, 8]) with the
                       option(s) on and every new parameter away from its initial 0: the same record as the
                       model fixtures of generate.py (state/*, input, labels, logits_eval, logits_train, loss,
                       grad/* of every parameter, state_after/* of every buffer)

A case's seed is searched until every sign input is at least MARGIN away from 0 (and, with the clipped
straight-through gradient, from +-1), and every PReLU and ReLU input away from 0 (MARGIN), so float32 rounding
differences between LibTorch and PyTorch cannot flip a sign or a gradient branch.

    python3 scripts/golden/binarizers.py

Generated with torch 2.13.0+cpu on one thread, deterministic; byte-reproducible (generate.save).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bnn_reference  # noqa: E402
from bnn_reference import BinaryConv2d, RPReLU, approx_sign, build_from_config  # noqa: E402
from generate import run_case, save, setup_torch  # noqa: E402

OUT = HERE.parent.parent / "test" / "fixtures" / "binarizers"
# LibTorch and PyTorch agree on these activations to ~1e-7 (same ops, float32); 5e-5 is 500 times that.
# (generate.py nudges BatchNorm biases to get 1e-3; with ~5,000 sign and PReLU inputs of order 1 a seed
# search alone reaches a few 1e-5.)
MARGIN = 5e-5
MAX_TRIES = 200

BASE = {"numClasses": 5, "inChannels": 1, "width": 2, "stem": "small", "doubleSkip": True, "binaryActivations": True,
        "binaryWeights": False, "bnMomentum": 0.1}
# name: (config switches, first seed). The last two combine the options with the other switches: classic
# blocks (sign_threshold1/2, prelu1/2 RPReLUs) in stage 2, and ApproxSign on the binary shortcut's sign in
# Bi-Real's order.
CASES = {
    "approx-sign": ({"signGradient": "approx-sign"}, 100),
    "rsign": ({"learnableThresholds": True}, 200),
    "rprelu": ({"blockActivation": "rprelu"}, 300),
    "all-classic-stage2": ({"doubleSkip": False, "binaryWeights": True, "signGradient": "approx-sign",
                            "learnableThresholds": True, "blockActivation": "rprelu"}, 400),
    "approx-sign-bireal-binary": ({"signGradient": "approx-sign", "blockOrder": "sign-conv-bn",
                                   "downsample": "binary"}, 500),
}
INPUT_SHAPE = (2, 1, 8, 8)


def randomize(model: torch.nn.Module, g: torch.Generator):
    """Every parameter and BatchNorm statistic away from its initial value, the new ones included."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.startswith("sign_threshold") or leaf in ("shift_in", "shift_out"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("prelu.weight") or name.endswith("prelu1.weight") or name.endswith("prelu2.weight"):
                p.copy_(0.05 + 0.4 * torch.rand(p.shape, generator=g))  # positive slopes, as trained ones are
            elif p.dim() == 1 and name.endswith(".weight"):  # BatchNorm scales
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif p.dim() == 1:  # BatchNorm and fc biases
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(p * (0.8 + 0.4 * torch.rand(p.shape, generator=g)))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


class Recorder:
    """Closest approach of every sign, PReLU and ReLU input to its discontinuities, over one run_case."""

    def __init__(self, model, ste: bool):
        self.worst = {"sign": float("inf"), "prelu": float("inf"), "relu": float("inf")}
        self.ste = ste
        self._act, self._prelu = bnn_reference._act, F.prelu
        recorder = self

        def act(x, binary, sign_gradient="ste"):
            if binary:
                # Exact zeros (the stem's ReLU output, signed directly in Bi-Real's order) are exact in
                # LibTorch too, and both gradients are continuous at 0: only near-zeros could flip.
                d = x.detach().abs()
                d = d[d != 0]
                if sign_gradient == "ste":
                    d = torch.minimum(d, (d - 1).abs())
                recorder.worst["sign"] = min(recorder.worst["sign"], float(d.min()))
            return recorder._act(x, binary, sign_gradient)

        def prelu(x, w):
            recorder.worst["prelu"] = min(recorder.worst["prelu"], float(x.detach().abs().min()))
            return recorder._prelu(x, w)

        bnn_reference._act = act
        F.prelu = prelu
        self.hook = model.bn1.register_forward_hook(
            lambda _m, _i, y: recorder.worst.__setitem__("relu", min(recorder.worst["relu"], float(y.detach().abs().min()))))

    def remove(self):
        bnn_reference._act, F.prelu = self._act, self._prelu
        self.hook.remove()


def make_case(name: str, switches: dict, first_seed: int):
    cfg = {**BASE, **switches}
    for seed in range(first_seed, first_seed + MAX_TRIES):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = build_from_config(cfg)
        randomize(model, g)
        x = torch.randn(INPUT_SHAPE, generator=g)
        labels = torch.randint(0, cfg["numClasses"], (INPUT_SHAPE[0],), generator=g)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        rec = Recorder(model, cfg.get("signGradient", "ste") == "ste")
        try:
            out = run_case(model, x, labels)
        finally:
            rec.remove()
        if min(rec.worst.values()) >= MARGIN:
            print(f"{name}: seed {seed}; closest approach " + ", ".join(f"{k} {v:.2e}" for k, v in rec.worst.items()))
            return cfg, seed, state, x, labels, out
    raise RuntimeError(f"{name}: no usable seed in {MAX_TRIES} tries")


def write_case(name: str, switches: dict, first_seed: int):
    cfg, seed, state, x, labels, out = make_case(name, switches, first_seed)
    tensors = {f"state/{k}": v.contiguous() for k, v in state.items()}
    tensors.update({"input": x, "labels": labels})
    tensors.update({k: v.contiguous() for k, v in out.items()})
    save(tensors, OUT / f"{name}.safetensors",
         {"config": json.dumps(cfg), "case": name, "seed": str(seed), "torch": torch.__version__})


def write_approx_sign_values():
    """x: the breaks (-1, 0, 1), their float neighbours and values beyond the clip; then random values.
    (No infinite x: autograd of the polynomial gives 0 * inf = NaN there, the kernel 0.)"""
    edges = torch.tensor([-3.0, -1.0000001, -1.0, -0.99999994, -0.5, -1e-7, -0.0, 0.0, 1e-7, 0.25, 0.5,
                          0.99999994, 1.0, 1.0000001, 2.5])
    g = torch.Generator().manual_seed(16)
    rand = 1.5 * torch.randn(239, generator=g)
    x = torch.cat([edges, rand]).requires_grad_(True)
    upstream = torch.randn(x.shape, generator=g)
    upstream[:3] = torch.tensor([float("inf"), float("nan"), 5.0])  # cut where |x| >= 1: exactly 0 even so
    y = approx_sign(x)
    (dx,) = torch.autograd.grad(y, x, upstream)
    save({"x": x.detach(), "grad_output": upstream, "output": y.detach(), "grad_input": dx},
         OUT / "approx-sign-values.safetensors", {"torch": torch.__version__})


def main():
    setup_torch()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}")
    write_approx_sign_values()
    for name, (switches, seed) in CASES.items():
        write_case(name, switches, seed)
    total = sum(p.stat().st_size for p in OUT.glob("*.safetensors"))
    print(f"test/fixtures/binarizers: {len(list(OUT.glob('*.safetensors')))} files, {total} bytes")


if __name__ == "__main__":
    main()
