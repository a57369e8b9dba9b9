#!/usr/bin/env python3
"""Write the golden fixtures in test/fixtures/ from the plain-PyTorch reference (bnn_reference.py).

    python3 scripts/golden/generate.py            # all fixtures + scripts/golden/NAMES.md
    python3 scripts/golden/generate.py --check    # then run check.py on the result

Deterministic: fixed seeds, float32, torch.use_deterministic_algorithms(True), one CPU thread.
See scripts/golden/README.md for the key layout of every file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bnn_reference import (  # noqa: E402
    CONFIG_KEYS,
    VARIANT_DEFAULTS,
    BasicBlock,
    BinaryConv2d,
    ClassicBasicBlock,
    ResNet18,
    build_from_config,
    config_dict,
)

REPO = HERE.parent.parent
FIXTURES = REPO / "test" / "fixtures"

# Distance every value that feeds a discontinuity must keep from it (the brief's robustness rule):
#   binary-activation inputs (BN outputs feeding sign): |x| >= 1e-3 and ||x| - 1| >= 1e-3
#   BinaryConv2d weights: |W| >= 1e-3 and ||W| - 1| >= 1e-3
#   ReLU inputs (stem, and the blocks of binaryActivations=false): |x| >= 1e-3
MARGIN = 1e-3
# Nudges aim a little wider so the check above holds after float recomputation.
NUDGE_MARGIN = 1.5e-3
WEIGHT_PUSH = 2e-3
# Kinks that no parameter can move away from 0 directly; a seed is rejected if they come closer:
#   PReLU inputs (input-gradient slope a vs 1): |x| >= KINK_MARGIN
#   stem MaxPool windows (gradient routing): top-1 minus top-2 >= KINK_MARGIN where the top is > 0
#   ReLU inputs after a block's residual add (blockActivation 'relu', recipe order): |x| >= KINK_MARGIN
#   inputs of a binary shortcut's sign in the recipe's order (downsample 'binary'):
#     |x| >= KINK_MARGIN and ||x| - 1| >= KINK_MARGIN (or exactly 0)
KINK_MARGIN = 1e-4

CASES = {
    "small-c1": dict(
        config=dict(numClasses=10, inChannels=1, width=4, stem="small", doubleSkip=True,
                    binaryActivations=True, bnMomentum=0.1),
        input_shape=(2, 1, 12, 12), stages=(1, 2), seed=1000),
    "odd-c3": dict(
        config=dict(numClasses=5, inChannels=3, width=4, stem="small", doubleSkip=True,
                    binaryActivations=True, bnMomentum=0.1),
        input_shape=(3, 3, 9, 9), stages=(1, 2), seed=2000),
    "classic-imagenet": dict(
        config=dict(numClasses=7, inChannels=3, width=4, stem="imagenet", doubleSkip=False,
                    binaryActivations=True, bnMomentum=0.1),
        input_shape=(2, 3, 32, 32), stages=(1, 2), seed=3000),
    "relu-c1": dict(
        config=dict(numClasses=10, inChannels=1, width=4, stem="small", doubleSkip=True,
                    binaryActivations=False, bnMomentum=0.1),
        input_shape=(2, 1, 12, 12), stages=(1,), seed=4000),
    # The tricks ablation's switches (issue 16): Bi-Real Net's order with ReLU after the add and
    # ResNet's strided shortcut; classic blocks with nothing after the add and a binary shortcut.
    "bireal-relu-strided": dict(
        config=dict(numClasses=10, inChannels=1, width=4, stem="small", doubleSkip=True,
                    binaryActivations=True, bnMomentum=0.1, blockOrder="sign-conv-bn",
                    blockActivation="relu", downsample="strided"),
        input_shape=(2, 1, 9, 9), stages=(1, 2), seed=5000),
    "classic-none-binary": dict(
        config=dict(numClasses=10, inChannels=1, width=4, stem="small", doubleSkip=False,
                    binaryActivations=True, bnMomentum=0.1, blockActivation="none", downsample="binary"),
        input_shape=(2, 1, 9, 9), stages=(1, 2), seed=6000),
    "bireal-classic-prelu-binary": dict(
        config=dict(numClasses=10, inChannels=1, width=4, stem="small", doubleSkip=False,
                    binaryActivations=True, bnMomentum=0.1, blockOrder="sign-conv-bn", downsample="binary"),
        input_shape=(2, 1, 9, 9), stages=(1, 2), seed=7000),
}
MAX_TRIES = 200


def save(tensors: dict, path: Path, meta: dict):
    """safetensors.save_file, then rewrite the header canonically (sorted metadata, tensors in data order):
    the Rust writer orders metadata keys at random, and the files should be byte-reproducible."""
    save_file(tensors, str(path), metadata=meta)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    ordered = {"__metadata__": dict(sorted(metadata.items()))}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[0])))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    path.chmod(0o644)


def setup_torch():
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def full_config(case: dict, stage: int) -> dict:
    """The fixture's config: CONFIG_KEYS, then the ablation switches the case sets (none for the recipe's
    cases, whose files predate the switches)."""
    cfg = dict(case["config"])
    cfg["binaryWeights"] = stage == 2
    return {k: cfg[k] for k in (*CONFIG_KEYS, *VARIANT_DEFAULTS) if k in cfg}


# ----------------------------------------------------------------------------------------------
# Which modules feed which discontinuity


def blocks(model: ResNet18):
    return [blk for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for blk in layer]


def activation_bns(model: ResNet18):
    """(bn module, centers) for every BN whose output feeds a sign or ReLU, in forward order (the recipe's
    block order; in Bi-Real's order the BNs feed the residual add, see nudge_points)."""
    ba = model.binary_activations
    block_centers = (-1.0, 0.0, 1.0) if ba else (0.0,)
    out = [(model.bn1, (0.0,))]  # stem ReLU
    for blk in blocks(model):
        if isinstance(blk, BasicBlock):
            out.append((blk.bn, block_centers))
        else:
            out.append((blk.bn1, block_centers))
            out.append((blk.bn2, block_centers))
    return out


def _z_centers(act: nn.Module, feeds: str | None):
    """Per channel, the values of an activation's input z = BN output (+ residual) that must be avoided: the
    activation's own kink, and the z whose output y = act(z) sits on a discontinuity of what y feeds
    (a sign: y in {-1, 0, 1}, exact zeros of ReLU excepted; a ReLU: y = 0)."""
    if isinstance(act, nn.PReLU):
        a = act.weight.detach().double()
        out = []
        for c in range(a.numel()):
            # y = a*z for z < 0, so a margin m in y is m/a in z there (and y = -1 at z = -1/a).
            wide = NUDGE_MARGIN / float(a[c])
            if feeds == "sign":
                out.append(((0.0, wide), 1.0, (float(-1.0 / a[c]), wide)))
            elif feeds == "relu":
                out.append(((0.0, wide),))
            else:
                out.append((0.0,))
        return out
    if isinstance(act, nn.ReLU):
        return ((0.0, 1.0) if feeds == "sign" else (0.0,),)
    if feeds == "sign":
        return ((-1.0, 0.0, 1.0),)
    if feeds == "relu":
        return ((0.0,),)
    return ()


def nudge_points(model: ResNet18):
    """(bn, module, hook, centers) in forward order: shifting `bn`'s bias by d moves the tensor seen at
    `module` (its output for hook 'out', its input for 'pre') by d per channel, which must keep away from
    `centers` (one tuple for every channel, or one per channel).

    Recipe order: every BN feeds a sign directly (as activation_bns). Bi-Real order: a block's BN sits before
    the residual add, so its bias moves the activation's input z, and y = act(z) is what the next sign sees.
    The recipe order's kinks after the add (PReLU, ReLU) and a binary shortcut's sign there have no BN in
    front of them; those are left to reseeding (Guard)."""
    if model.block_order == "bn-sign-conv":
        return [(bn, bn, "out", (c,)) for bn, c in activation_bns(model)]
    ba = model.binary_activations
    feeds = "sign" if ba else "relu"
    out = [(model.bn1, model.bn1, "out", ((0.0, 1.0) if ba else (0.0,),))]  # stem ReLU, then layer1.0's sign
    bl = blocks(model)
    for i, blk in enumerate(bl):
        last = i == len(bl) - 1
        if isinstance(blk, BasicBlock):
            act = getattr(blk, blk.act_name)
            out.append((blk.bn, act, "pre", _z_centers(act, None if last else feeds)))
        else:
            a1, a2 = (getattr(blk, n) for n in blk.act_names)
            out.append((blk.bn1, a1, "pre", _z_centers(a1, feeds)))
            out.append((blk.bn2, a2, "pre", _z_centers(a2, None if last else feeds)))
    return [p for p in out if p[3]]


def prelus(model: ResNet18):
    return [m for m in model.modules() if isinstance(m, nn.PReLU)]


# ----------------------------------------------------------------------------------------------
# Random state


def randomize(model: ResNet18, g: torch.Generator):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):  # BinaryConv2d, stem conv and downsample convs
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.6)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(3)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.3 + 0.1)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()  # default init, drawn from the global RNG seeded per try


WEIGHT_GRID = 1024  # BinaryConv2d weights are multiples of 1/1024 (see quantize_binary_weights)


def quantize_binary_weights(model: ResNet18) -> int:
    """Make every BinaryConv2d weight exact-arithmetic friendly and keep it off the discontinuities.

    With binary weights and binary activations a conv output is alpha * k with k an integer sum of +-1
    terms, and k == 0 happens all the time (even fan-in). Where nothing continuous is added to it (the
    first PReLU of a ClassicBasicBlock, or layer1.0 where the stem ReLU leaves exact zeros in the
    residual) the PReLU input is then 0, right on its kink. That is only reproducible by another
    implementation if the arithmetic is exact, so:
      * W is a multiple of 1/1024, with |W| >= 3/1024 and ||W| - 1| >= 3/1024 (sign flip / STE clip edge);
      * per output channel sum(|W| * 1024) is divisible by the fan-in n = Cin*9, so
        alpha = mean|W| = integer / 1024 is exact (sum then divide, as ATen does on CPU);
    hence every partial sum of a conv over +-1 (or 0-padded) inputs is exactly representable in float32,
    any summation order gives the same result, and exact zeros are exact everywhere.
    Returns the number of weights that had to be moved off a band or adjusted for divisibility."""
    q = WEIGHT_GRID
    edge = round(WEIGHT_PUSH * q) + 1  # 3: |W| >= 3/1024
    moved = 0
    with torch.no_grad():
        for m in model.binary_convs():
            k = torch.round(m.weight * q).to(torch.int64)
            sign = torch.where(m.weight >= 0, 1, -1)
            mag = k.abs()
            fixed = torch.where(mag < edge, torch.full_like(mag, edge), mag)
            near_one = (fixed - q).abs() < edge
            fixed = torch.where(near_one, torch.where(fixed >= q, q + edge, q - edge), fixed)
            moved += int((fixed != mag).sum())
            mag = fixed
            n = mag[0].numel()
            flat = mag.view(mag.shape[0], -1)
            for o in range(flat.shape[0]):
                r = int((-flat[o].sum()) % n)
                step, count = (1, r) if r <= n // 2 else (-1, n - r)
                while count > 0:
                    # elements that stay off the bands after a +-1 move, largest first (deterministic)
                    after = flat[o] + step
                    ok = (after >= edge) & ((after - q).abs() >= edge)
                    idx = ok.nonzero().flatten()
                    if idx.numel() == 0:
                        raise RuntimeError("cannot adjust weight sum")
                    take = idx[: count]
                    flat[o, take] += step
                    moved += int(take.numel())
                    count -= int(take.numel())
                assert int(flat[o].sum()) % n == 0
            m.weight.copy_((sign * mag).to(torch.float32) / q)
    return moved


def exact_alpha_ok(model: ResNet18) -> bool:
    """alpha (and every |W|) is an exact multiple of 1/1024 with few significant bits."""
    q = WEIGHT_GRID
    for m in model.binary_convs():
        w = m.weight.detach()
        alpha = w.abs().mean(dim=(1, 2, 3))
        for t in (w * q, alpha * q):
            if not torch.equal(t, torch.round(t)) or t.abs().max() >= 2 ** 13:
                return False
    return True


def capture(module: nn.Module, fn, kind: str = "out"):
    """Run fn() and return the output of `module` (kind 'out') or its input ('pre'), last call."""
    box = {}

    def hook(_m, _inp, out):
        box["out"] = out.detach().clone()

    def pre_hook(_m, inp):
        box["out"] = inp[0].detach().clone()

    h = module.register_forward_hook(hook) if kind == "out" else module.register_forward_pre_hook(pre_hook)
    try:
        fn()
    finally:
        h.remove()
    return box["out"]


def smallest_safe_shift(values: torch.Tensor, centers) -> float:
    """Smallest |delta| such that every value + delta stays NUDGE_MARGIN away from every center."""
    v = values.double().flatten()
    # A center is a value (kept NUDGE_MARGIN away) or (value, margin): a margin in the space of the shifted
    # tensor z for a discontinuity of act(z), e.g. y = -1 at z = -1/a behind a PReLU of slope a.
    c = torch.tensor([x[0] if isinstance(x, tuple) else x for x in centers], dtype=torch.float64)
    m = torch.tensor([x[1] if isinstance(x, tuple) else NUDGE_MARGIN for x in centers], dtype=torch.float64)
    lo = (c[:, None] - v[None, :] - m[:, None]).flatten()  # forbidden open intervals (lo, hi)
    hi = (c[:, None] - v[None, :] + m[:, None]).flatten()
    eps = 1e-5
    cand = torch.cat([torch.zeros(1, dtype=torch.float64), lo - eps, hi + eps])
    cand = cand[cand.abs().argsort()]
    chunk = 2048
    for s in range(0, cand.numel(), chunk):
        cs = cand[s:s + chunk]
        inside = ((cs[:, None] > lo[None, :]) & (cs[:, None] < hi[None, :])).any(dim=1)
        ok = (~inside).nonzero()
        if ok.numel():
            return float(cs[ok[0, 0]])
    raise RuntimeError("no safe shift")


def nudge_bn_biases(model: ResNet18, x: torch.Tensor, stages) -> float:
    """Shift the bias of each activation-feeding BN (per channel, in forward order) so that its output
    (Bi-Real order: the activation input it adds to) keeps away from the discontinuities in every pass the
    fixtures run (eval and train, each stage). That tensor depends only on the BN's own parameters and on
    modules upstream, so fixing them in forward order never undoes an earlier fix."""
    largest = 0.0
    for bn, target, kind, centers in nudge_points(model):
        outs = []
        name = next(n for n, mm in model.named_modules() if mm is target)
        for stage in stages:
            model.set_binary_weights(stage == 2)
            model.eval()
            with torch.no_grad():
                outs.append(capture(target, lambda: model(x), kind))
            m2 = copy.deepcopy(model).train()  # a copy: a train forward updates running stats
            t2 = dict(m2.named_modules())[name]
            with torch.no_grad():
                outs.append(capture(t2, lambda: m2(x), kind))
        model.set_binary_weights(False)
        vals = torch.cat([o.transpose(0, 1).reshape(o.shape[1], -1) for o in outs], dim=1)  # [C, N]
        with torch.no_grad():
            for ch in range(vals.shape[0]):
                delta = smallest_safe_shift(vals[ch], centers[ch] if len(centers) > 1 else centers[0])
                if delta != 0.0:
                    bn.bias[ch] += delta
                    largest = max(largest, abs(delta))
    model.eval()
    return largest


# ----------------------------------------------------------------------------------------------
# Verification hooks (used by generate and by check.py)


class Guard:
    """Forward hooks that record how close any value comes to a discontinuity."""

    def __init__(self, model: ResNet18):
        self.model = model
        self.worst = {}  # kind -> smallest distance seen
        self.prelu_zeros = 0  # PReLU inputs that are exactly 0 (counted over every forward)
        self.handles = []
        ba = model.binary_activations
        sign_centers = (-1.0, 0.0, 1.0) if ba else (0.0,)
        sign_kind = "act" if ba else "relu"
        if model.block_order == "bn-sign-conv":
            for bn, centers in activation_bns(model):
                kind = "act" if centers != (0.0,) else "relu"
                self.handles.append(bn.register_forward_hook(self._bn_hook(kind, centers)))
        else:
            # Bi-Real order: each conv's sign sees the conv's own input (a block's input, a classic block's
            # first activation's output); exact zeros (from ReLU) are exact everywhere, and sign(0) = +1.
            self.handles.append(model.bn1.register_forward_hook(self._bn_hook("relu", (0.0,))))
            for blk in blocks(model):
                self.handles.append(blk.register_forward_pre_hook(self._pre_hook(sign_kind, sign_centers)))
                if isinstance(blk, ClassicBasicBlock):
                    act1 = getattr(blk, blk.act_names[0])
                    self.handles.append(act1.register_forward_hook(self._bn_hook(sign_kind, sign_centers, True)))
        for conv in model.binary_convs():
            self.handles.append(conv.register_forward_pre_hook(self._weight_hook))
            if conv.input_activation is not None:  # the binary shortcut's own sign
                self.handles.append(conv.register_forward_pre_hook(self._pre_hook("shortcut-sign", sign_centers)))
        for p in prelus(model):
            self.handles.append(p.register_forward_pre_hook(self._prelu_hook))
        for blk in blocks(model):
            for m in blk.children():
                if isinstance(m, nn.ReLU):  # blockActivation 'relu': a kink like PReLU's
                    self.handles.append(m.register_forward_pre_hook(self._prelu_hook))
        if model.maxpool is not None:
            self.handles.append(model.maxpool.register_forward_pre_hook(self._maxpool_hook))

    def _note(self, kind, dist):
        dist = float(dist)
        self.worst[kind] = min(self.worst.get(kind, float("inf")), dist)

    def _bn_hook(self, kind, centers, zeros_ok=False):
        def hook(_m, _inp, out):
            self._check(kind, out.detach(), centers, zeros_ok)
        return hook

    def _pre_hook(self, kind, centers):
        def hook(_m, inp):
            self._check(kind, inp[0].detach(), centers, True)
        return hook

    def _check(self, kind, o, centers, zeros_ok):
        if not torch.isfinite(o).all():
            self._note(kind, float("-inf"))
        if zeros_ok:
            o = o[o != 0]
            if o.numel() == 0:
                return
        d = torch.stack([(o - c).abs() for c in centers]).amin()
        self._note(kind, d)

    def _weight_hook(self, m, _inp):
        w = m.weight.detach()
        d = torch.minimum(w.abs(), (w.abs() - 1).abs()).amin()
        self._note("weight", d)

    def _prelu_hook(self, _m, inp):
        # Exact zeros are allowed: they come from exactly computed sums (see quantize_binary_weights),
        # so every implementation gets exactly 0 and takes PyTorch's branch (slope a, since 0 > 0 is false).
        x = inp[0].detach()
        if not torch.isfinite(x).all():
            self._note("prelu", float("-inf"))
        zero = x == 0
        self.prelu_zeros += int(zero.sum())
        nz = x.abs()[~zero]
        if nz.numel():
            self._note("prelu", nz.amin())

    def _maxpool_hook(self, m, inp):
        x = inp[0].detach()
        cols = F.unfold(x, m.kernel_size, padding=m.padding, stride=m.stride)  # zero padding: x >= 0 here
        cols = cols.view(x.shape[0], x.shape[1], -1, cols.shape[-1])
        top = cols.topk(2, dim=2).values
        gap = top[:, :, 0] - top[:, :, 1]
        gap = torch.where(top[:, :, 0] > 0, gap, torch.full_like(gap, float("inf")))
        self._note("maxpool", gap.amin())

    def violations(self):
        need = {"act": MARGIN, "relu": MARGIN, "weight": MARGIN, "prelu": KINK_MARGIN,
                "maxpool": KINK_MARGIN, "shortcut-sign": KINK_MARGIN}
        return {k: v for k, v in self.worst.items() if not v >= need[k]}

    def remove(self):
        for h in self.handles:
            h.remove()


# ----------------------------------------------------------------------------------------------
# Model fixtures


def run_case(model: ResNet18, x: torch.Tensor, labels: torch.Tensor):
    """The exact sequence the fixtures record. Mutates model (running stats, grads)."""
    out = {}
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(x).detach().clone()
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out["logits_train"] = logits.detach().clone()
    out["loss"] = loss.detach().reshape(1).clone()
    for n, p in model.named_parameters():
        if p.grad is None:
            raise RuntimeError(f"no gradient for {n}")
        out[f"grad/{n}"] = p.grad.detach().clone()
    for n, b in model.named_buffers():
        out[f"state_after/{n}"] = b.detach().clone()
    return out


def make_case(name: str, case: dict):
    """Find a seed whose state keeps every discontinuity at a distance; return (seed, state, x, labels)."""
    cfg = full_config(case, 1)
    for seed in range(case["seed"], case["seed"] + MAX_TRIES):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model = build_from_config(cfg)
        randomize(model, g)
        x = torch.randn(case["input_shape"], generator=g)
        labels = torch.randint(0, cfg["numClasses"], (case["input_shape"][0],), generator=g)
        moved = quantize_binary_weights(model)
        shift = nudge_bn_biases(model, x, case["stages"])
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bad = {} if exact_alpha_ok(model) else {"alpha": "not exact"}
        worst, zeros = {}, []
        for stage in case["stages"]:
            m = build_from_config(full_config(case, stage))
            m.load_state_dict(state, strict=True)
            guard = Guard(m)
            run_case(m, x, labels)
            bad.update({f"stage{stage}:{k}": v for k, v in guard.violations().items()})
            for k, v in guard.worst.items():
                worst[k] = min(worst.get(k, float("inf")), v)
            zeros.append(f"stage{stage} {guard.prelu_zeros}")
            guard.remove()
        if not bad:
            print(f"{name}: seed {seed} (adjusted {moved} weights, largest BN bias shift {shift:.2e}); "
                  f"closest approach " + ", ".join(f"{k} {v:.2e}" for k, v in sorted(worst.items()))
                  + f"; exact-zero PReLU inputs {', '.join(zeros)}")
            return seed, state, x, labels
        print(f"{name}: seed {seed} rejected: {bad}")
    raise RuntimeError(f"{name}: no usable seed in {MAX_TRIES} tries")


def write_model_fixtures(only=None):
    seeds = {}
    for name, case in CASES.items():
        if only and name not in only:
            continue
        seed, state, x, labels = make_case(name, case)
        seeds[name] = seed
        for stage in case["stages"]:
            cfg = full_config(case, stage)
            model = build_from_config(cfg)
            model.load_state_dict(state, strict=True)
            assert config_dict(model) == cfg
            tensors = {f"state/{k}": v.clone().contiguous() for k, v in state.items()}
            tensors["input"] = x.clone()
            tensors["labels"] = labels.clone()
            tensors.update({k: v.contiguous() for k, v in run_case(model, x, labels).items()})
            meta = {
                "config": json.dumps(cfg),
                "case": name,
                "stage": str(stage),
                "seed": str(seed),
                "torch": torch.__version__,
                "generator": "scripts/golden/generate.py",
            }
            path = FIXTURES / f"model-{name}-stage{stage}.safetensors"
            save(tensors, path, meta)
            print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes, {len(tensors)} tensors, "
                  f"loss {tensors['loss'].item():.6f})")
    return seeds


# ----------------------------------------------------------------------------------------------
# Optimizer fixtures

ADAM_HP = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
ADAM_SHAPES = ([3, 4], [5])
ADAM_STEPS = 3
ADAM_SEED = 77


def write_adam_fixtures():
    for decoupled in (False, True):
        g = torch.Generator().manual_seed(ADAM_SEED)
        init = [torch.randn(s, generator=g) for s in ADAM_SHAPES]
        grads = [[torch.randn(s, generator=g) for s in ADAM_SHAPES] for _ in range(ADAM_STEPS)]
        params = [nn.Parameter(p.clone()) for p in init]
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        opt = cls(params, lr=ADAM_HP["lr"], betas=ADAM_HP["betas"], eps=ADAM_HP["eps"],
                  weight_decay=ADAM_HP["weight_decay"], amsgrad=False, foreach=False, maximize=False)
        tensors = {f"param/{i}": p.clone() for i, p in enumerate(init)}
        for step in range(1, ADAM_STEPS + 1):
            for i, p in enumerate(params):
                p.grad = grads[step - 1][i].clone()
                tensors[f"grad/{step}/{i}"] = grads[step - 1][i].clone()
            opt.step()
            for i, p in enumerate(params):
                tensors[f"after/{step}/{i}"] = p.detach().clone()
                st = opt.state[p]
                tensors[f"exp_avg/{step}/{i}"] = st["exp_avg"].clone()
                tensors[f"exp_avg_sq/{step}/{i}"] = st["exp_avg_sq"].clone()
        cfg = {
            "optimizer": cls.__name__,
            "decoupledWeightDecay": decoupled,
            "lr": ADAM_HP["lr"],
            "betas": list(ADAM_HP["betas"]),
            "eps": ADAM_HP["eps"],
            "weightDecay": ADAM_HP["weight_decay"],
            "amsgrad": False,
            "steps": ADAM_STEPS,
            "firstStep": 1,
            "shapes": [list(s) for s in ADAM_SHAPES],
        }
        meta = {"config": json.dumps(cfg), "seed": str(ADAM_SEED), "torch": torch.__version__,
                "generator": "scripts/golden/generate.py"}
        path = FIXTURES / f"adam-{'decoupled' if decoupled else 'coupled'}.safetensors"
        save(tensors, path, meta)
        print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


# SGD with momentum (the tricks ablation's alternative to Adam): torch.optim.SGD with dampening 0,
# coupled weight decay on the first parameter's group and none on the second's (as noDecayOn makes).
SGD_HP = dict(lr=0.05, weight_decay=0.1)
SGD_CASES = {
    "momentum": dict(momentum=0.9, nesterov=False),
    "nesterov": dict(momentum=0.9, nesterov=True),
    "plain": dict(momentum=0.0, nesterov=False),
}
SGD_STEPS = 4


def write_sgd_fixture():
    g = torch.Generator().manual_seed(ADAM_SEED)
    init = [torch.randn(s, generator=g) for s in ADAM_SHAPES]
    grads = [[torch.randn(s, generator=g) for s in ADAM_SHAPES] for _ in range(SGD_STEPS)]
    tensors = {f"param/{i}": p.clone() for i, p in enumerate(init)}
    for step in range(1, SGD_STEPS + 1):
        for i in range(len(init)):
            tensors[f"grad/{step}/{i}"] = grads[step - 1][i].clone()
    for case, hp in SGD_CASES.items():
        params = [nn.Parameter(p.clone()) for p in init]
        opt = torch.optim.SGD([{"params": [params[0]], "weight_decay": SGD_HP["weight_decay"]},
                               {"params": [params[1]], "weight_decay": 0.0}],
                              lr=SGD_HP["lr"], momentum=hp["momentum"], dampening=0, nesterov=hp["nesterov"],
                              foreach=False, maximize=False)
        for step in range(1, SGD_STEPS + 1):
            for i, p in enumerate(params):
                p.grad = grads[step - 1][i].clone()
            opt.step()
            for i, p in enumerate(params):
                tensors[f"{case}/after/{step}/{i}"] = p.detach().clone()
                if hp["momentum"]:
                    tensors[f"{case}/momentum_buffer/{step}/{i}"] = opt.state[p]["momentum_buffer"].clone()
    cfg = {
        "optimizer": "SGD",
        "lr": SGD_HP["lr"],
        "weightDecay": SGD_HP["weight_decay"],
        "decayGroups": [True, False],
        "dampening": 0,
        "cases": SGD_CASES,
        "steps": SGD_STEPS,
        "shapes": [list(s) for s in ADAM_SHAPES],
    }
    meta = {"config": json.dumps(cfg), "seed": str(ADAM_SEED), "torch": torch.__version__,
            "generator": "scripts/golden/generate.py"}
    path = FIXTURES / "sgd.safetensors"
    save(tensors, path, meta)
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


# CosineAnnealingLR(T_max, eta_min=0) stepped once per epoch, as the Trainer asks for a rate per epoch.
COSINE_CASES = [dict(lr=2e-3, epochs=6), dict(lr=0.1, epochs=7), dict(lr=5e-4, epochs=2), dict(lr=1e-3, epochs=75)]


def cosine_lrs(lr, epochs):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def write_schedule_fixture():
    cases = [dict(c, lrs=cosine_lrs(c["lr"], c["epochs"])) for c in COSINE_CASES]
    # The rates are Python floats (doubles) in the metadata: JSON keeps them exact. The tensor is
    # there because a safetensors file holds tensors; it repeats the epoch counts.
    tensors = {"cosine/epochs": torch.tensor([c["epochs"] for c in COSINE_CASES], dtype=torch.int64)}
    meta = {"config": json.dumps({"scheduler": "CosineAnnealingLR", "etaMin": 0, "cosine": cases}), "torch": torch.__version__,
            "generator": "scripts/golden/generate.py"}
    path = FIXTURES / "lr-schedules.safetensors"
    save(tensors, path, meta)
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


# A linear warm-up stepped every batch on top of the stage's schedule stepped every epoch: LinearLR
# (start_factor=1/T, end_factor=1, total_iters=T, T = warmup epochs x batches per epoch) and
# MultiStepLR or CosineAnnealingLR on one optimizer. Their chainable forms multiply the current
# rate, so the rate is the product of the two (milestones count from epoch 0, warm-up included).
WARMUP_CASES = [
    dict(lr=2e-3, epochs=6, steps=5, warmupEpochs=1, schedule="step", milestones=[3, 5], gamma=0.1),
    dict(lr=0.1, epochs=4, steps=3, warmupEpochs=2, schedule="step", milestones=[1, 3], gamma=0.5),
    dict(lr=1e-3, epochs=5, steps=4, warmupEpochs=2, schedule="cosine"),
    dict(lr=5e-4, epochs=3, steps=7, warmupEpochs=3, schedule="cosine"),
    dict(lr=0.05, epochs=3, steps=1, warmupEpochs=1, schedule="step", milestones=[2], gamma=0.2),
]


def warmup_lrs(case):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=case["lr"])
    total = case["warmupEpochs"] * case["steps"]
    if case["schedule"] == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=case["epochs"], eta_min=0)
    else:
        main = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=case["milestones"], gamma=case["gamma"])
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / total, end_factor=1.0, total_iters=total)
    out = []
    for _ in range(case["epochs"]):
        for _ in range(case["steps"]):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            warm.step()
        main.step()
    return out


def write_warmup_fixture():
    cases = [dict(c, lrs=warmup_lrs(c)) for c in WARMUP_CASES]
    tensors = {"warmup/steps": torch.tensor([c["steps"] for c in WARMUP_CASES], dtype=torch.int64)}
    meta = {"config": json.dumps({"scheduler": "LinearLR per batch x MultiStepLR/CosineAnnealingLR per epoch", "warmup": cases}),
            "torch": torch.__version__, "generator": "scripts/golden/generate.py"}
    path = FIXTURES / "lr-warmup.safetensors"
    save(tensors, path, meta)
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


# ----------------------------------------------------------------------------------------------
# Straight-through estimator edge cases (the model fixtures keep away from these on purpose)


def ste_values():
    return torch.tensor([-3.0, -1.0, -0.9999999, -0.5, -1e-30, -0.0, 0.0, 1e-30, 0.5, 0.9999999, 1.0,
                         3.0, float("nan"), float("inf"), float("-inf")], dtype=torch.float32)


def write_ste_fixture():
    from bnn_reference import binary_activation, binary_weight

    x = ste_values()
    go = torch.arange(1, x.numel() + 1, dtype=torch.float32)
    tensors = {"input": x.clone(), "grad_output": go.clone()}
    for key, fn in (("activation", binary_activation), ("weight", binary_weight)):
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        y.backward(go)
        tensors[f"{key}/output"] = y.detach().clone()
        tensors[f"{key}/grad_input"] = xi.grad.detach().clone()
    meta = {"torch": torch.__version__, "generator": "scripts/golden/generate.py",
            "rule": json.dumps({"activation": "fwd x>=0 -> +1, x<0 -> -1, NaN -> NaN; bwd g where -1<x<1",
                                "weight": "fwd x>=0 -> +1, x<0 -> -1, NaN -> NaN; bwd g where |x|<=1"})}
    path = FIXTURES / "ste.safetensors"
    save(tensors, path, meta)
    print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


# ----------------------------------------------------------------------------------------------
# NAMES.md


def write_names():
    case = CASES["small-c1"]
    model = build_from_config(full_config(case, 1))
    params = dict(model.named_parameters())
    lines = []
    for n, t in model.state_dict().items():
        kind = "param" if n in params else "buffer"
        shape = "[" + ", ".join(str(s) for s in t.shape) + "]"
        dtype = str(t.dtype).replace("torch.", "")
        lines.append(f"| {len(lines)} | `{n}` | {shape} | {dtype} | {kind} |")
    classic = build_from_config(full_config(CASES["classic-imagenet"], 1))
    classic_names = [n for n in classic.state_dict() if n.startswith("layer2.0.")]

    def layer2_0(**switches):
        m = build_from_config({**full_config(case, 1), **switches})
        return ", ".join(f"`{n}`" for n in m.state_dict() if n.startswith("layer2.0.") and not n.endswith(
            ("running_mean", "running_var", "num_batches_tracked", ".bias")))

    def binary_convs(**switches):
        m = build_from_config({**full_config(case, 1), **switches})
        return [n + ".weight" for n, x in m.named_modules() if isinstance(x, BinaryConv2d)]

    ds_binary = [n for n in binary_convs(downsample="binary") if "downsample" in n]
    ds_binary_classic = [n for n in binary_convs(downsample="binary", doubleSkip=False) if "downsample" in n]
    n_params = sum(p.numel() for p in model.parameters())
    text = f"""# State-dict naming scheme (bnn_reference.ResNet18)

Generated by `scripts/golden/generate.py` from `scripts/golden/bnn_reference.py`; the native model must
expose exactly these names (its `namedParameters` / `namedBuffers` / checkpoint keys).

Names are PyTorch `state_dict` paths: module attribute names joined by dots, `nn.Sequential` children by
index. The stem is `conv1` (no bias) and `bn1`; the four stages are `layer1`..`layer4`, each an
`nn.Sequential` of blocks. With `doubleSkip=true` every ResNet-18 basic block is split into two
single-conv blocks, so each layer holds blocks `0..3`, and a block holds `bn` (BatchNorm2d over its
input channels), `conv` (the binary 3x3 conv, no bias) and `prelu` (one slope per output channel).
Block 0 of layers 2..4 changes stride and width and so also has `downsample`: `downsample.0` is the
full-precision 1x1 conv (stride 1) and `downsample.1` its BatchNorm2d (`downsample.2`, the 2x2 average
pool, has no state). The head is `fc` (weight and bias). Every BatchNorm2d has the five entries
`weight`, `bias` (parameters), `running_mean`, `running_var` (float32 buffers) and `num_batches_tracked`
(int64 scalar buffer). Order below is registration order (stem, layers, fc; inside a block bn, conv,
prelu, downsample). Stateless modules (ReLU, MaxPool, AdaptiveAvgPool) have no names.

The `stem='imagenet'` variant has the same names (only the `conv1.weight` shape changes: 7x7).
With `doubleSkip=false` a layer holds two `ClassicBasicBlock`s `0..1`, each with
`bn1, conv1, prelu1, bn2, conv2, prelu2` (+ `downsample` in block 0 of layers 2..4), e.g. `layer2.0`:
{", ".join(f"`{n}`" for n in classic_names)}.

## The tricks ablation's switches (`blockOrder`, `blockActivation`, `downsample`)

The defaults (`bn-sign-conv`, `prelu`, `avgpool`) give exactly the names above. The others keep every name
and change only what exists and its order (weights and per-channel parameters of `layer2.0` shown):

- `blockOrder='sign-conv-bn'` (Bi-Real Net): the block's BatchNorm follows its conv, so it is registered after
  it and has the conv's output channels: {layer2_0(blockOrder="sign-conv-bn")}; classic blocks likewise
  (`conv1, bn1, prelu1, conv2, bn2, prelu2`): {layer2_0(blockOrder="sign-conv-bn", doubleSkip=False)}.
- `blockActivation='relu'` or `'none'`: no `prelu` / `prelu1` / `prelu2` entries (ReLU and identity have no
  state): {layer2_0(blockActivation="relu")}.
- `downsample='strided'`: the same names as `avgpool` (`downsample.0` the 1x1 conv, now stride 2, `downsample.1`
  its BatchNorm; no pool).
- `downsample='binary'`: the same names again; `downsample.0` is a `BinaryConv2d` (1x1, it applies the sign to its
  own input, and has 1-bit weights in stage 2), `downsample.2` the pool. The binary convolutions' weights are
  then the blocks' `layerL.B.conv.weight` (`conv1`/`conv2` in classic blocks) and
  {", ".join(f"`{n}`" for n in ds_binary)} (the same names with classic blocks: {", ".join(f"`{n}`" for n in ds_binary_classic)}).

## The alternative binarisers (`signGradient`, `learnableThresholds`, `blockActivation='rprelu'`; issue 16)

Fixtures: `scripts/golden/binarizers.py` (test/fixtures/binarizers/). All new parameters are per channel.

- `signGradient='approx-sign'` (Bi-Real Net's ApproxSign gradient) changes the backward only: no new names.
- `learnableThresholds=true` (ReActNet's RSign) adds one parameter to each block itself, the threshold its sign
  subtracts (over the sign's input channels, so `in_planes`), first in the block's entries as PyTorch orders a
  module's own parameters before its children's: {layer2_0(learnableThresholds=True)}; classic blocks have
  `sign_threshold1` (input channels) and `sign_threshold2`: {layer2_0(learnableThresholds=True, doubleSkip=False)}.
- `blockActivation='rprelu'` (ReActNet's RPReLU) keeps the module name `prelu` (`prelu1`, `prelu2`) and adds two
  shifts around the slopes, in the order they apply (`shift_in` is the paper's gamma, `shift_out` its zeta):
  {layer2_0(blockActivation="rprelu")}.

## Full list for `small-c1` (numClasses 10, inChannels 1, width 4, stem small, doubleSkip true)

{len(lines)} entries, {n_params} trainable parameters.

| # | name | shape | dtype | kind |
|---|------|-------|-------|------|
""" + "\n".join(lines) + "\n"
    (HERE / "NAMES.md").write_text(text)
    print(f"  wrote scripts/golden/NAMES.md ({len(lines)} names)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", help="only this model case (repeatable)")
    ap.add_argument("--check", action="store_true", help="run check.py afterwards")
    args = ap.parse_args()
    setup_torch()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}")
    seeds = write_model_fixtures(args.case)
    if not args.case:
        write_adam_fixtures()
        write_sgd_fixture()
        write_schedule_fixture()
        write_warmup_fixture()
        write_ste_fixture()
        write_names()
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.safetensors"))
    print(f"seeds: {json.dumps(seeds)}; test/fixtures/*.safetensors total {total} bytes")
    if args.check:
        sys.exit(subprocess.call([sys.executable, str(HERE / "check.py")]))


if __name__ == "__main__":
    main()
