#!/usr/bin/env python3
"""Re-verify every golden fixture in test/fixtures/ (self-consistency of the files).

    python3 scripts/golden/check.py

For each model fixture: rebuild bnn_reference.ResNet18 from the metadata config, load `state/*` with
load_state_dict(strict=True), check the key set and dtypes, re-run eval forward / train forward /
backward and compare every stored tensor; re-check the distance to every discontinuity; and recompute
logits, loss, gradients and running stats a second, independent way (a functional forward written from
the state-dict names with stock ops: hardtanh/clamp straight-through tricks instead of the custom
autograd Functions). Parameter counts are checked against a closed-form count. Optimizer fixtures are
re-run with torch.optim and with a hand-written Adam/AdamW. Exit status 1 on any failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bnn_reference import CONFIG_KEYS, VARIANT_DEFAULTS, ResNet18, build_from_config  # noqa: E402
from generate import (  # noqa: E402
    CASES,
    FIXTURES,
    Guard,
    exact_alpha_ok,
    full_config,
    run_case,
    setup_torch,
    ste_values,
)

failures = []


def fail(msg):
    failures.append(msg)
    print("  FAIL " + msg)


def load(path):
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def compare(label, got, want, rtol=0.0, atol=0.0):
    if got.dtype != want.dtype or got.shape != want.shape:
        fail(f"{label}: {got.dtype}{tuple(got.shape)} vs stored {want.dtype}{tuple(want.shape)}")
        return float("inf")
    if want.is_floating_point():
        diff = float((got.double() - want.double()).abs().max()) if got.numel() else 0.0
        if not torch.allclose(got, want, rtol=rtol, atol=atol):
            fail(f"{label}: max abs diff {diff:.3e} (rtol {rtol}, atol {atol})")
        return diff
    if not torch.equal(got, want):
        fail(f"{label}: integer tensors differ")
    return 0.0


# ------------------------------------------------------------------------------------------------
# Closed-form parameter count


def expected_param_count(cfg):
    w, cin, nc = cfg["width"], cfg["inChannels"], cfg["numClasses"]
    v = {**VARIANT_DEFAULTS, **cfg}
    k = 3 if cfg["stem"] == "small" else 7
    act = 1 if v["blockActivation"] == "prelu" else 0  # PReLU slopes per channel; ReLU / none have none
    total = cin * w * k * k + 2 * w
    inp = w
    for li, planes in enumerate((w, 2 * w, 4 * w, 8 * w)):
        stride = 1 if li == 0 else 2
        ds = (inp * planes + 2 * planes) if (stride != 1 or inp != planes) else 0
        # the first BN has the block's input channels in the recipe's order, the conv's output in Bi-Real's
        bn0 = 2 * (planes if v["blockOrder"] == "sign-conv-bn" else inp)
        if cfg["doubleSkip"]:
            total += bn0 + inp * planes * 9 + act * planes + ds
            total += 3 * (2 * planes + planes * planes * 9 + act * planes)
        else:
            total += bn0 + inp * planes * 9 + act * planes + 2 * planes + planes * planes * 9 + act * planes + ds
            total += 2 * (2 * planes + planes * planes * 9 + act * planes)
        inp = planes
    return total + 8 * w * nc + nc


# ------------------------------------------------------------------------------------------------
# Independent functional forward, driven by the state-dict names


def sign_plus(t):
    return torch.where(torch.isnan(t), t, torch.where(t >= 0, 1.0, -1.0))


def ste_act(t):  # hardtanh backward passes grad only where -1 < x < 1
    h = F.hardtanh(t)
    return h + (sign_plus(t) - h).detach()


def ste_weight(wt):  # clamp backward passes grad where -1 <= W <= 1
    c = wt.clamp(-1, 1)
    alpha = wt.detach().abs().mean(dim=(1, 2, 3), keepdim=True)
    return (c + (sign_plus(wt) - c).detach()) * alpha


def functional_forward(cfg, P, B, x, train):
    mom = cfg["bnMomentum"]
    v = {**VARIANT_DEFAULTS, **cfg}
    bi_real = v["blockOrder"] == "sign-conv-bn"

    def bn(prefix, t):
        if train:
            B[prefix + ".num_batches_tracked"] += 1
        return F.batch_norm(t, B[prefix + ".running_mean"], B[prefix + ".running_var"], P[prefix + ".weight"],
                            P[prefix + ".bias"], training=train, momentum=mom, eps=1e-5)

    def act(t):
        return ste_act(t) if cfg["binaryActivations"] else F.relu(t)

    def bconv(prefix, t, stride, padding=1):
        wt = P[prefix + ".weight"]
        wt = ste_weight(wt) if cfg["binaryWeights"] else wt
        return F.conv2d(t, wt, stride=stride, padding=padding)

    def unit(p, conv, bn_name, t, stride):
        """One binary conv with its BN: bn -> sign -> conv (recipe) or sign -> conv -> bn (Bi-Real)."""
        if bi_real:
            return bn(p + "." + bn_name, bconv(p + "." + conv, act(t), stride))
        return bconv(p + "." + conv, act(bn(p + "." + bn_name, t)), stride)

    def block_act(t, prelu_name):
        if v["blockActivation"] == "prelu":
            return F.prelu(t, P[prelu_name + ".weight"])
        return F.relu(t) if v["blockActivation"] == "relu" else t

    def shortcut(prefix, t, stride, inp, planes):
        has = prefix + ".downsample.0.weight" in P
        if has != (stride != 1 or inp != planes):
            fail(f"downsample presence at {prefix}")
        if not has:
            return t
        ds = v["downsample"]
        if ds == "strided":
            return bn(prefix + ".downsample.1", F.conv2d(t, P[prefix + ".downsample.0.weight"], stride=stride))
        if ds == "binary":
            t = bconv(prefix + ".downsample.0", act(t), 1, padding=0)
        else:
            t = F.conv2d(t, P[prefix + ".downsample.0.weight"])
        t = bn(prefix + ".downsample.1", t)
        return F.avg_pool2d(t, 2, 2, ceil_mode=True, count_include_pad=False) if stride == 2 else t

    if cfg["stem"] == "small":
        h = F.conv2d(x, P["conv1.weight"], stride=1, padding=1)
    else:
        h = F.conv2d(x, P["conv1.weight"], stride=2, padding=3)
    h = F.relu(bn("bn1", h))
    if cfg["stem"] == "imagenet":
        h = F.max_pool2d(h, 3, 2, 1)
    w = cfg["width"]
    inp = w
    for li, planes in enumerate((w, 2 * w, 4 * w, 8 * w)):
        for bi in range(4 if cfg["doubleSkip"] else 2):
            p = f"layer{li + 1}.{bi}"
            stride = (1 if li == 0 else 2) if bi == 0 else 1
            if cfg["doubleSkip"]:
                out = unit(p, "conv", "bn", h, stride)
                out = block_act(out + shortcut(p, h, stride, inp, planes), p + ".prelu")
            else:
                out = block_act(unit(p, "conv1", "bn1", h, stride), p + ".prelu1")
                out = unit(p, "conv2", "bn2", out, 1)
                out = block_act(out + shortcut(p, h, stride, inp, planes), p + ".prelu2")
            h, inp = out, planes
    return F.linear(h.mean(dim=(2, 3)), P["fc.weight"], P["fc.bias"])


# ------------------------------------------------------------------------------------------------


def check_model(path):
    t, meta = load(path)
    cfg = json.loads(meta["config"])
    print(f"{path.name}: case {meta.get('case')} stage {meta.get('stage')} seed {meta.get('seed')} "
          f"(torch {meta.get('torch')})")
    if tuple(cfg) != (*CONFIG_KEYS, *(k for k in VARIANT_DEFAULTS if k in cfg)):
        fail(f"config keys {list(cfg)}")
    case = CASES[meta["case"]]
    if cfg != full_config(case, int(meta["stage"])):
        fail("config differs from generate.CASES")
    model = build_from_config(cfg)
    state = {k[len("state/"):]: v for k, v in t.items() if k.startswith("state/")}
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected name or shape

    # key set and dtypes
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    want = {f"state/{n}" for n in model.state_dict()} | {"input", "labels", "logits_eval", "logits_train", "loss"}
    want |= {f"grad/{n}" for n in params} | {f"state_after/{n}" for n in buffers}
    if set(t) != want:
        fail(f"key set: missing {sorted(want - set(t))[:5]}, unexpected {sorted(set(t) - want)[:5]}")
    for k, v in t.items():
        wdt = torch.int64 if (k == "labels" or k.endswith("num_batches_tracked")) else torch.float32
        if v.dtype != wdt:
            fail(f"{k} dtype {v.dtype}")
    if t["loss"].shape != (1,):
        fail(f"loss shape {tuple(t['loss'].shape)}")
    n_params = sum(p.numel() for p in params.values())
    n_expected = expected_param_count(cfg)
    print(f"  parameters {n_params} (closed form {n_expected}), {len(params)} tensors; "
          f"buffers {len(buffers)}; file keys {len(t)}")
    if n_params != n_expected:
        fail(f"parameter count {n_params} != {n_expected}")
    if not exact_alpha_ok(model):
        fail("binary conv weights / alpha not exact multiples of 1/1024")

    # 1) re-run the reference module (same code, so bit-identical)
    x, labels = t["input"], t["labels"]
    guard = Guard(model)
    got = run_case(model, x, labels)
    bad = guard.violations()
    guard.remove()
    if bad:
        fail(f"too close to a discontinuity: {bad}")
    worst = 0.0
    for k, v in got.items():
        worst = max(worst, compare(f"rerun {k}", v, t[k]))
    print(f"  rerun of the module: max abs diff {worst:.1e}; closest approach "
          + ", ".join(f"{k} {v:.1e}" for k, v in sorted(guard.worst.items()))
          + f"; exact-zero PReLU inputs {guard.prelu_zeros}")

    # 2) independent functional forward from the names
    diffs = {}
    P = {n: t[f"state/{n}"].clone().requires_grad_(True) for n in params}
    B = {n: t[f"state/{n}"].clone() for n in buffers}
    with torch.no_grad():
        le = functional_forward(cfg, P, B, x, train=False)
    diffs["logits_eval"] = compare("functional logits_eval", le, t["logits_eval"], 1e-4, 1e-4)
    lt = functional_forward(cfg, P, B, x, train=True)
    loss = F.cross_entropy(lt, labels)
    loss.backward()
    diffs["logits_train"] = compare("functional logits_train", lt.detach(), t["logits_train"], 1e-4, 1e-5)
    diffs["loss"] = compare("functional loss", loss.detach().reshape(1), t["loss"], 1e-5, 1e-6)
    g = 0.0
    for n in params:
        g = max(g, compare(f"functional grad/{n}", P[n].grad, t[f"grad/{n}"], 1e-3, 1e-5))
    diffs["grads"] = g
    s = 0.0
    for n in buffers:
        s = max(s, compare(f"functional state_after/{n}", B[n], t[f"state_after/{n}"], 1e-5, 1e-6))
    diffs["state_after"] = s
    print("  independent functional model: max abs diff " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))

    # 3) robustness: the same functional model in float64 (different rounding everywhere). A value that
    #    sat on a discontinuity would flip here and show up as a large difference.
    P64 = {n: t[f"state/{n}"].double().requires_grad_(True) for n in params}
    B64 = {n: (t[f"state/{n}"].double() if t[f"state/{n}"].is_floating_point() else t[f"state/{n}"].clone())
           for n in buffers}
    x64 = x.double()
    with torch.no_grad():
        le64 = functional_forward(cfg, P64, B64, x64, train=False)
    lt64 = functional_forward(cfg, P64, B64, x64, train=True)
    loss64 = F.cross_entropy(lt64, labels)
    loss64.backward()

    def rel(a, b):
        return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))

    r = {"logits_eval": rel(le64, t["logits_eval"]), "logits_train": rel(lt64.detach(), t["logits_train"]),
         "loss": rel(loss64.detach().reshape(1), t["loss"]),
         "grads": max(float((P64[n].grad - t[f"grad/{n}"].double()).abs().max()) for n in params)
         / max(float(t[f"grad/{n}"].abs().max()) for n in params),
         "state_after": max(rel(B64[n], t[f"state_after/{n}"]) for n in buffers if B64[n].is_floating_point())}
    per_tensor = max((rel(P64[n].grad, t[f"grad/{n}"]), n) for n in params)
    print("  float64 recompute: max diff / max |value| " + ", ".join(f"{k} {v:.1e}" for k, v in r.items())
          + f" (grads: relative to the largest gradient in the file, others per tensor; worst single grad relative to its own "
          f"max: {per_tensor[1]} {per_tensor[0]:.1e})")
    for k, v in r.items():
        if v > 1e-4:
            fail(f"float64 recompute {k} differs by {v:.1e} (relative to max)")

    # 4) the fixture exercises what it should
    for n in buffers:
        if n.endswith("num_batches_tracked"):
            if int(t[f"state/{n}"]) != 3 or int(t[f"state_after/{n}"]) != 4:
                fail(f"{n} not 3 -> 4")
        elif torch.equal(t[f"state/{n}"], t[f"state_after/{n}"]):
            fail(f"{n} unchanged by the train forward")
    bconvs = [n for n, m in model.named_modules() if m.__class__.__name__ == "BinaryConv2d"]
    big = sum(int((t[f"state/{n}.weight"].abs() > 1).sum()) for n in bconvs)
    if cfg["binaryWeights"]:
        leak = sum(int(((t[f"state/{n}.weight"].abs() > 1) & (t[f"grad/{n}.weight"] != 0)).sum()) for n in bconvs)
        if leak:
            fail(f"{leak} binary-conv weights with |W| > 1 got a gradient")
    print(f"  binary-conv weights with |W| > 1: {big}; loss {float(t['loss']):.6f}; "
          f"|logits_eval| max {float(t['logits_eval'].abs().max()):.2f}")
    return meta["case"], state


def manual_adam(cfg, params, grads_per_step):
    lr, (b1, b2), eps, wd = cfg["lr"], cfg["betas"], cfg["eps"], cfg["weightDecay"]
    p = [x.double().clone() for x in params]
    m = [torch.zeros_like(x) for x in p]
    v = [torch.zeros_like(x) for x in p]
    out = []
    for step, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = g.double()
            if cfg["decoupledWeightDecay"]:
                p[i] = p[i] * (1 - lr * wd)
            else:
                g = g + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat = m[i] / (1 - b1 ** step)
            vhat = v[i] / (1 - b2 ** step)
            p[i] = p[i] - lr * mhat / (vhat.sqrt() + eps)
        out.append([x.clone() for x in p])
    return out


def check_adam(path):
    t, meta = load(path)
    cfg = json.loads(meta["config"])
    n, steps = len(cfg["shapes"]), cfg["steps"]
    print(f"{path.name}: {cfg['optimizer']} lr {cfg['lr']} betas {cfg['betas']} eps {cfg['eps']} "
          f"weight_decay {cfg['weightDecay']} decoupled {cfg['decoupledWeightDecay']}, {steps} steps")
    want = {f"param/{i}" for i in range(n)}
    for s in range(1, steps + 1):
        want |= {f"{k}/{s}/{i}" for k in ("grad", "after", "exp_avg", "exp_avg_sq") for i in range(n)}
    if set(t) != want:
        fail(f"{path.name} key set: missing {sorted(want - set(t))}, unexpected {sorted(set(t) - want)}")
    init = [t[f"param/{i}"] for i in range(n)]
    grads = [[t[f"grad/{s}/{i}"] for i in range(n)] for s in range(1, steps + 1)]
    ps = [torch.nn.Parameter(x.clone()) for x in init]
    cls = torch.optim.AdamW if cfg["decoupledWeightDecay"] else torch.optim.Adam
    opt = cls(ps, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=cfg["weightDecay"],
              foreach=False)
    manual = manual_adam(cfg, init, grads)
    worst = 0.0
    for s in range(1, steps + 1):
        for i, p in enumerate(ps):
            p.grad = grads[s - 1][i].clone()
        opt.step()
        for i, p in enumerate(ps):
            compare(f"torch.optim after/{s}/{i}", p.detach(), t[f"after/{s}/{i}"])
            compare(f"exp_avg/{s}/{i}", opt.state[p]["exp_avg"], t[f"exp_avg/{s}/{i}"])
            compare(f"exp_avg_sq/{s}/{i}", opt.state[p]["exp_avg_sq"], t[f"exp_avg_sq/{s}/{i}"])
            worst = max(worst, compare(f"manual after/{s}/{i}", manual[s - 1][i].float(), t[f"after/{s}/{i}"],
                                       1e-6, 1e-7))
    moved = max(float((t[f"after/{steps}/{i}"] - init[i]).abs().max()) for i in range(n))
    print(f"  torch.optim rerun identical; hand-written update max abs diff {worst:.1e}; "
          f"largest total move {moved:.4f}")


def check_sgd(path):
    t, meta = load(path)
    cfg = json.loads(meta["config"])
    n, steps, lr, wd = len(cfg["shapes"]), cfg["steps"], cfg["lr"], cfg["weightDecay"]
    init = [t[f"param/{i}"] for i in range(n)]
    grads = [[t[f"grad/{s}/{i}"] for i in range(n)] for s in range(1, steps + 1)]
    worst = 0.0
    for case, hp in cfg["cases"].items():
        ps = [torch.nn.Parameter(x.clone()) for x in init]
        groups = [{"params": [p], "weight_decay": wd if decay else 0.0} for p, decay in zip(ps, cfg["decayGroups"])]
        opt = torch.optim.SGD(groups, lr=lr, momentum=hp["momentum"], dampening=0, nesterov=hp["nesterov"], foreach=False)
        # Hand-written, in float64: g += wd p; buf = m buf + g (buf = g at the first step); p -= lr (g + m buf | buf).
        p64 = [x.double().clone() for x in init]
        bufs = [None] * n
        for s in range(1, steps + 1):
            for i, p in enumerate(ps):
                p.grad = grads[s - 1][i].clone()
            opt.step()
            for i in range(n):
                g = grads[s - 1][i].double() + (wd if cfg["decayGroups"][i] else 0.0) * p64[i]
                if hp["momentum"]:
                    bufs[i] = g.clone() if bufs[i] is None else hp["momentum"] * bufs[i] + g
                    g = g + hp["momentum"] * bufs[i] if hp["nesterov"] else bufs[i]
                p64[i] = p64[i] - lr * g
                compare(f"{case} torch.optim after/{s}/{i}", ps[i].detach(), t[f"{case}/after/{s}/{i}"])
                if hp["momentum"]:
                    compare(f"{case} momentum_buffer/{s}/{i}", opt.state[ps[i]]["momentum_buffer"], t[f"{case}/momentum_buffer/{s}/{i}"])
                worst = max(worst, compare(f"{case} manual after/{s}/{i}", p64[i].float(), t[f"{case}/after/{s}/{i}"], 1e-6, 1e-7))
    print(f"{path.name}: SGD lr {lr} weight_decay {wd} on group 0, cases {list(cfg['cases'])}, {steps} steps; "
          f"torch.optim rerun identical; hand-written update max abs diff {worst:.1e}")


def check_schedules(path):
    import math

    _, meta = load(path)
    cfg = json.loads(meta["config"])
    for case in cfg["cosine"]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=case["lr"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=case["epochs"], eta_min=0)
        for e, want in enumerate(case["lrs"]):
            if opt.param_groups[0]["lr"] != want:
                fail(f"{path.name}: CosineAnnealingLR rerun differs at epoch {e} of {case}")
            closed = case["lr"] * (1 + math.cos(math.pi * e / case["epochs"])) / 2
            if abs(closed - want) > 1e-12 * case["lr"]:
                fail(f"{path.name}: closed form {closed} vs {want} at epoch {e}")
            opt.step()
            sched.step()
    print(f"{path.name}: {len(cfg['cosine'])} CosineAnnealingLR cases rerun identical, closed form within 1e-12")


def check_warmup(path):
    import math

    from generate import warmup_lrs

    _, meta = load(path)
    cfg = json.loads(meta["config"])
    for case in cfg["warmup"]:
        want = case["lrs"]
        if warmup_lrs(case) != want:
            fail(f"{path.name}: LinearLR x {case['schedule']} rerun differs for {case}")
        # The closed form the Trainer uses: the epoch's rate times 1/T + (1 - 1/T) i / T during the warm-up.
        total = case["warmupEpochs"] * case["steps"]
        for i, lr in enumerate(want):
            e = i // case["steps"]
            if case["schedule"] == "cosine":
                base = case["lr"] * (1 + math.cos(math.pi * e / case["epochs"])) / 2
            else:
                base = case["lr"] * case["gamma"] ** sum(e >= m for m in case["milestones"])
            factor = 1 / total + (1 - 1 / total) * i / total if i < total else 1.0
            if abs(base * factor - lr) > 1e-12 * case["lr"]:
                fail(f"{path.name}: closed form {base * factor} vs {lr} at step {i} of {case}")
    print(f"{path.name}: {len(cfg['warmup'])} LinearLR warm-up cases rerun identical, closed form within 1e-12")


def check_ste(path):
    t, _ = load(path)
    x, go = t["input"], t["grad_output"]
    if not torch.equal(x, ste_values()) and not torch.equal(x.isnan(), ste_values().isnan()):
        fail("ste input changed")
    want_out = torch.where(x.isnan(), x, torch.where(x >= 0, 1.0, -1.0))
    rules = {"activation": (x > -1) & (x < 1), "weight": x.abs() <= 1}
    for key, keep in rules.items():
        out, gi = t[f"{key}/output"], t[f"{key}/grad_input"]
        same = (out == want_out) | (out.isnan() & want_out.isnan())
        if not bool(same.all()):
            fail(f"ste {key}/output")
        if not torch.equal(gi, torch.where(keep, go, torch.zeros_like(go))):
            fail(f"ste {key}/grad_input")
    print(f"{path.name}: sign(+-0) = {t['activation/output'][5:7].tolist()}, "
          f"activation grad mask {((t['activation/grad_input'] != 0).int()).tolist()}, "
          f"weight grad mask {((t['weight/grad_input'] != 0).int()).tolist()} over {x.tolist()}")


def check_distill(path):
    """distill.py's loss cases, recomputed from their stored logits with F.cross_entropy and F.kl_div."""
    t, meta = load(path)
    cases = json.loads(meta["cases"])
    worst = 0.0
    for i, c in enumerate(cases):
        s = t[f"loss/{i}/student"].clone().requires_grad_(True)
        temp, w, e = c["temperature"], c["weight"], c["labelSmoothing"]
        loss = (1 - w) * F.cross_entropy(s, t[f"loss/{i}/labels"], label_smoothing=e) + w * F.kl_div(
            F.log_softmax(s / temp, 1), F.softmax(t[f"loss/{i}/teacher"] / temp, 1), reduction="batchmean") * temp * temp
        loss.backward()
        worst = max(worst, (loss.detach() - t[f"loss/{i}/loss"]).abs().max().item(), (s.grad - t[f"loss/{i}/grad"]).abs().max().item())
    if worst > 1e-6:
        fail(f"distill: the loss cases differ from F.cross_entropy + F.kl_div by {worst:.1e}")
    print(f"{path.name}: {len(cases)} loss cases recomputed, max abs diff {worst:.1e} (the step part: test/distill.test.ts)")


def main():
    setup_torch()
    files = sorted(FIXTURES.glob("*.safetensors"))
    states = {}
    for path in files:
        if path.name.startswith("model-"):
            case, state = check_model(path)
            if case in states:  # both stages of a case start from the same state
                if states[case].keys() != state.keys() or not all(torch.equal(states[case][k], state[k]) for k in state):
                    fail(f"{case}: stage files start from different states")
            states[case] = state
        elif path.name.startswith("adam-"):
            check_adam(path)
        elif path.name == "sgd.safetensors":
            check_sgd(path)
        elif path.name == "lr-schedules.safetensors":
            check_schedules(path)
        elif path.name == "lr-warmup.safetensors":
            check_warmup(path)
        elif path.name == "ste.safetensors":
            check_ste(path)
        elif path.name == "distill.safetensors":
            check_distill(path)
        else:
            fail(f"unknown fixture {path.name}")
    expected = {f"model-{c}-stage{s}.safetensors" for c, case in CASES.items() for s in case["stages"]}
    expected |= {"adam-coupled.safetensors", "adam-decoupled.safetensors", "sgd.safetensors", "lr-schedules.safetensors",
                 "lr-warmup.safetensors", "ste.safetensors", "distill.safetensors"}
    if {p.name for p in files} != expected:
        fail(f"fixture set differs: missing {sorted(expected - {p.name for p in files})}")
    std = ResNet18(num_classes=10, in_channels=3, width=64)
    print(f"(standard config, width 64 / 10 classes / 3 channels / small stem / doubleSkip: "
          f"{sum(p.numel() for p in std.parameters())} parameters, closed form "
          f"{expected_param_count(dict(width=64, inChannels=3, numClasses=10, stem='small', doubleSkip=True))})")
    total = sum(p.stat().st_size for p in files)
    print(f"{len(files)} files, {total} bytes")
    if failures:
        print(f"{len(failures)} FAILURES")
        sys.exit(1)
    print("all fixtures OK")


if __name__ == "__main__":
    main()
