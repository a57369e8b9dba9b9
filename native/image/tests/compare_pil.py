#!/usr/bin/env python3
"""Compares the image core (through image_tool) with PIL, which is what torchvision's transforms
run on. torchvision itself is not imported (it does not load beside this machine's torch); its
PIL code paths are re-stated here from torchvision 0.29's functional_pil / transforms.

usage: compare_pil.py IMAGE_TOOL WORKDIR [--bench]
Needs pillow, numpy and scikit-image (real photographs from skimage.data).
"""
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageEnhance

TOOL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
failures = []


def tool(*args, env=None):
    out = subprocess.run([TOOL, *map(str, args)], check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw(path, shape):
    return np.fromfile(path, dtype=np.uint8).reshape(shape)


def diff(a, b):
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


def check(label, a, b, max_mean=0.0, max_max=0):
    mean, mx = diff(a, b)
    ok = mean <= max_mean and mx <= max_max
    print(f"{'ok  ' if ok else 'FAIL'} {label}: mean abs diff {mean:.4f}, max {mx}")
    if not ok:
        failures.append(label)
    return mean, mx


# ---- corpus --------------------------------------------------------------------------------
import skimage.data as sk  # noqa: E402

photos = {n: getattr(sk, n)() for n in ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"]}
files = {}


def save(name, im, **kw):
    path = os.path.join(WORK, name)
    im.save(path, **kw)
    files[name] = path


for n, a in photos.items():
    im = Image.fromarray(a)
    save(f"{n}_q75.jpg", im, quality=75)
    save(f"{n}_q95_444.jpg", im, quality=95, subsampling=0)
    save(f"{n}_q90_prog.jpg", im, quality=90, progressive=True)
    save(f"{n}_q90_422.jpg", im, quality=90, subsampling=1)
im = Image.fromarray(photos["astronaut"])
save("gray.jpg", Image.fromarray(sk.camera()), quality=90)
save("gray_prog.jpg", Image.fromarray(sk.camera()), quality=85, progressive=True)
save("cmyk.jpg", im.convert("CMYK"), quality=90)
save("odd_size.jpg", Image.fromarray(photos["coffee"][:397, :593]), quality=88)
save("rgb.png", im)
save("rgb_interlaced.png", Image.fromarray(photos["chelsea"]), optimize=False)
logo = Image.fromarray(sk.logo())
save("rgba.png", logo)
pal = Image.fromarray(photos["coffee"]).convert("P", palette=Image.ADAPTIVE, colors=64)
save("palette_trns.png", pal, transparency=3)
save("gray.png", Image.fromarray(sk.camera()))
save("gray_alpha.png", Image.fromarray(np.dstack([sk.camera(), sk.camera()[::-1]])).convert("LA"))
save("gray_4bit.png", Image.fromarray(sk.camera() & 0xF0), bits=4)
# 16-bit RGB via raw PNG writing through PIL is not supported; write it with numpy + zlib.


def write_png16(path, arr, color_type):
    import struct
    import zlib
    h, w = arr.shape[:2]
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
    files[os.path.basename(path)] = path


a16 = photos["rocket"].astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, photos["rocket"].shape).astype(np.uint16)
write_png16(os.path.join(WORK, "rgb16.png"), a16, 2)
write_png16(os.path.join(WORK, "rgba16.png"), np.dstack([a16, a16[..., :1]]), 6)
write_png16(os.path.join(WORK, "gray16.png"), a16[..., 0], 0)

# ---- 1. decoding ---------------------------------------------------------------------------
print("== decode vs PIL convert('RGB') / convert('L')")
for name, path in files.items():
    for mode, channels in (("RGB", 3), ("L", 1)):
        ref = Image.open(path)
        if name == "gray16.png":
            # PIL clamps 16-bit grey to 255 instead of scaling; we keep the high byte.
            ref = Image.fromarray((np.array(ref).astype(np.uint16) >> 8).astype(np.uint8))
        ref = np.array(ref.convert(mode))
        meta = tool("decode", path, channels, f"{WORK}/out.raw")
        got = raw(f"{WORK}/out.raw", ref.shape)
        check(f"decode {name} {mode}", got, ref)

# ---- 2. region decoding equals full decoding -----------------------------------------------
print("== region decode (scale 8 and scaled) vs whole decode at the same scale")
rng = np.random.default_rng(1)
for name in ["astronaut_q75.jpg", "coffee_q90_prog.jpg", "chelsea_q95_444.jpg", "rocket_q90_422.jpg",
             "gray.jpg", "cmyk.jpg", "odd_size.jpg", "hubble_deep_field_q75.jpg"]:
    path = files[name]
    W, H = Image.open(path).size
    for scale in (8, 4, 2, 1):
        meta = tool("decode", path, 3, f"{WORK}/whole.raw", 0, 0, W, H, scale)
        whole = raw(f"{WORK}/whole.raw", (meta["height"], meta["width"], 3))
        worst = 0
        for _ in range(12):
            w = int(rng.integers(16, W + 1)); h = int(rng.integers(16, H + 1))
            x = int(rng.integers(0, W - w + 1)); y = int(rng.integers(0, H - h + 1))
            m = tool("decode", path, 3, f"{WORK}/region.raw", x, y, w, h, scale)
            region = raw(f"{WORK}/region.raw", (m["height"], m["width"], 3))
            x0, y0, x1, y1 = m["crop"]
            ix0, iy0 = math.floor(x0), math.floor(y0)
            ix1, iy1 = min(math.ceil(x1), m["width"]), min(math.ceil(y1), m["height"])
            a = region[iy0:iy1, ix0:ix1]
            b = whole[m["y"] + iy0:m["y"] + iy1, m["x"] + ix0:m["x"] + ix1]
            worst = max(worst, diff(a, b)[1])
        ok = worst == 0
        print(f"{'ok  ' if ok else 'FAIL'} region {name} scale {scale}/8: max diff over 12 random crops {worst}")
        if not ok:
            failures.append(f"region {name} {scale}")


# ---- 3. eval transform ---------------------------------------------------------------------
def tv_resize_size(w, h, size):
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def tv_eval(path, mode, resize=256, crop=224):
    img = Image.open(path).convert(mode)
    if path.endswith("gray16.png"):
        img = Image.fromarray((np.array(Image.open(path)).astype(np.uint16) >> 8).astype(np.uint8)).convert(mode)
    nw, nh = tv_resize_size(*img.size, resize)
    if (nw, nh) != img.size:
        img = img.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return np.array(img.crop((left, top, left + crop, top + crop)))


print("== eval transform (Resize 256 + CenterCrop 224) vs torchvision-on-PIL")
eval_stats = {0: [], 1: []}
for name, path in files.items():
    for dct in (0, 1):
        for mode, channels in (("RGB", 3), ("L", 1)):
            if mode == "L" and dct == 1 and not name.endswith(".jpg"):
                continue
            ref = tv_eval(path, mode)
            tool("eval", path, channels, 224, 256, dct, f"{WORK}/out.raw")
            got = raw(f"{WORK}/out.raw", ref.shape)
            mean, mx = check(f"eval {name} {mode} dct={dct}", got, ref, 0.0 if dct == 0 else 1.0,
                             0 if dct == 0 else 255)
            eval_stats[dct].append(mean)
# The hubble image (1000x872) is the one large enough for DCT scaling at 256; also check a
# smaller eval size, where more images get scaled.
print("== eval transform at Resize 128 + CenterCrop 112 (DCT scaling engages on most images)")
for name in [n for n in files if n.endswith(".jpg")]:
    ref = tv_eval(files[name], "RGB", 128, 112)
    tool("eval", files[name], 3, 112, 128, 1, f"{WORK}/out.raw")
    mean, mx = check(f"eval128 {name} dct=1", raw(f"{WORK}/out.raw", ref.shape), ref, 1.0, 255)
    eval_stats.setdefault("128", []).append(mean)

# ---- 4. train transform --------------------------------------------------------------------
print("== train transform (RandomResizedCrop + flip) vs PIL crop+resize+flip with the same crop")
train_stats = {0: [], 1: []}
for name in [n for n in files if n.endswith(".jpg")] + ["rgb.png", "palette_trns.png"]:
    for sample in range(6):
        for dct in (0, 1):
            meta = tool("train", files[name], 3, 224, 7, 0, sample, dct, f"{WORK}/out.raw")
            x, y, w, h = meta["crop"]
            ref = Image.open(files[name]).convert("RGB").crop((x, y, x + w, y + h)).resize((224, 224), Image.BILINEAR)
            if meta["flip"]:
                ref = ref.transpose(Image.FLIP_LEFT_RIGHT)
            ref = np.array(ref)
            got = raw(f"{WORK}/out.raw", ref.shape)
            mean, mx = diff(got, ref)
            train_stats[dct].append(mean)
            if dct == 0 and mx != 0:
                failures.append(f"train {name} {sample}")
                print(f"FAIL train {name} sample {sample}: mean {mean:.4f} max {mx}")
for dct in (0, 1):
    s = train_stats[dct]
    print(f"train dct={dct}: {len(s)} samples, mean abs diff avg {np.mean(s):.4f}, worst {np.max(s):.4f}")

# ---- 5. pixel operations -------------------------------------------------------------------
print("== pixel operations vs PIL / torchvision functional_pil")
base = np.array(Image.fromarray(photos["chelsea"]).resize((224, 224), Image.BILINEAR))
colors = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
for label, arr in (("photo", base), ("random colours", colors)):
    arr.tofile(f"{WORK}/in.raw")
    h, w = arr.shape[:2]
    pil = Image.fromarray(arr)

    def op(name, value, channels=3):
        tool("op", name, value, f"{WORK}/in.raw", w, h, channels, f"{WORK}/op.raw")
        return raw(f"{WORK}/op.raw", arr.shape)

    for f in (0.6, 1.0, 1.37):
        check(f"brightness {f} {label}", op("brightness", f), np.array(ImageEnhance.Brightness(pil).enhance(f)))
        check(f"contrast {f} {label}", op("contrast", f), np.array(ImageEnhance.Contrast(pil).enhance(f)))
        check(f"saturation {f} {label}", op("saturation", f), np.array(ImageEnhance.Color(pil).enhance(f)))
    for f in (-0.4, -0.1, 0.05, 0.33):
        hh, ss, vv = pil.convert("HSV").split()
        np_h = np.array(hh, dtype=np.uint8)
        np_h += np.int32(f * 255).astype(np.uint8)
        ref = np.array(Image.merge("HSV", (Image.fromarray(np_h, "L"), ss, vv)).convert("RGB"))
        check(f"hue {f} {label}", op("hue", f), ref)
    for deg in (13.7, -9.25, 90.0, 180.0, 33.0):
        check(f"rotate nearest {deg} {label}", op("rotate-nearest", deg), np.array(pil.rotate(deg, Image.NEAREST, fillcolor=0)))
        check(f"rotate bilinear {deg} {label}", op("rotate-bilinear", deg), np.array(pil.rotate(deg, Image.BILINEAR, fillcolor=0)))
    for size, box in (((97, 131), None), ((300, 41), None), ((60, 60), (10.25, 3.5, 200.75, 150.0))):
        ref = np.array(pil.resize(size, Image.BILINEAR, box=box))
        spec = ",".join(map(str, size + (box or ())))
        for simd in ("1", "0"):
            tool("op", "resize", spec, f"{WORK}/in.raw", w, h, 3, f"{WORK}/op.raw", env={"BNN_IMAGE_SIMD": simd})
            check(f"resize {size} box {box} {label} simd={simd}", raw(f"{WORK}/op.raw", ref.shape), ref)
    # Lighting: the "tricks" class on [0, 1] floats, rounded back to uint8 here.
    alpha = np.array([0.05, -0.12, 0.2])
    eigval = np.array([0.2175, 0.0188, 0.0045])
    eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    rgb = (eigvec * alpha[None, :] * eigval[None, :]).sum(1)
    ref = np.clip(np.floor(arr + 255 * rgb + 0.5), 0, 255).astype(np.uint8)
    check(f"lighting {label}", op("lighting", ",".join(map(str, alpha))), ref, 0.0, 1)

# ---- 6. SIMD switch gives identical transforms ---------------------------------------------
print("== BNN_IMAGE_SIMD=0 vs default on the eval and train transforms")
for name in ["astronaut_q75.jpg", "coffee_q90_prog.jpg", "gray.jpg"]:
    outs = []
    for simd in ("1", "0"):
        tool("train", files[name], 3, 224, 3, 1, 5, 1, f"{WORK}/simd{simd}.raw", "jitter", 0.4, 0.4, 0.4, 0.1,
             env={"BNN_IMAGE_SIMD": simd})
        outs.append(np.fromfile(f"{WORK}/simd{simd}.raw", dtype=np.uint8))
    check(f"simd on/off train {name}", outs[0], outs[1])

# ---- 7. prepared store round trip ----------------------------------------------------------
print("== prepared store: write, reopen, eval-render each record vs PIL on the shrunk image")
store_files = [files[n] for n in ["astronaut_q75.jpg", "hubble_deep_field_q75.jpg", "gray.png", "rgba.png"]]
tiny = os.path.join(WORK, "tiny.png")
Image.fromarray(photos["coffee"][:28, :28]).save(tiny)
store_files.append(tiny)
meta = tool("store", f"{WORK}/s.bnnstore", 256, 64, *store_files)
assert meta["records"] == len(store_files)
for i, path in enumerate(store_files):
    m = tool("store-render", f"{WORK}/s.bnnstore", i, 3, 224, f"{WORK}/out.raw")
    got = raw(f"{WORK}/out.raw", (224, 224, 3))
    img = Image.open(path).convert("L" if path.endswith("gray.png") else "RGB")
    if min(img.size) > 256:
        img = img.resize(tv_resize_size(*img.size, 256), Image.BILINEAR)
    reencoded = m["encoding"] == 0 and os.path.getsize(path) != m["bytes"]
    if reencoded:
        # Re-encoded by the store's writer (TurboJPEG 2.1, quality 90, 4:2:0); PIL's bundled
        # libjpeg-turbo encoder does the same job with slightly different bytes.
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        img = Image.open(buf)
    ref = img.convert("RGB")
    nw, nh = tv_resize_size(*ref.size, 256)
    if (nw, nh) != ref.size:
        ref = ref.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
    ref = np.array(ref.crop((left, top, left + 224, top + 224)))
    check(f"store record {i} ({os.path.basename(path)}, encoding {m['encoding']}, {m['width']}x{m['height']})",
          got, ref, 1.5 if reencoded else 0.0, 32 if reencoded else 0)

print()
print(f"eval mean abs diff, full-scale decode: avg {np.mean(eval_stats[0]):.4f} worst {np.max(eval_stats[0]):.4f}")
print(f"eval mean abs diff, DCT scaling on:    avg {np.mean(eval_stats[1]):.4f} worst {np.max(eval_stats[1]):.4f}")
print(f"eval 128/112, DCT scaling on:          avg {np.mean(eval_stats['128']):.4f} worst {np.max(eval_stats['128']):.4f}")

# ---- 8. speed ------------------------------------------------------------------------------
if "--bench" in sys.argv:
    bench_dir = os.path.join(WORK, "bench")
    os.makedirs(bench_dir, exist_ok=True)
    paths = []
    rng = np.random.default_rng(3)
    big = [photos["hubble_deep_field"], sk.retina()[..., :3], photos["rocket"], photos["coffee"], photos["astronaut"]]
    for k in range(100):
        src = big[k % len(big)]
        H, W = src.shape[:2]
        w, h = (500, 375) if k % 3 else (375, 500)
        w, h = min(w, W), min(h, H)
        x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        p = os.path.join(bench_dir, f"{k:03d}.jpg")
        Image.fromarray(src[y:y + h, x:x + w]).save(p, quality=int(rng.integers(75, 96)))
        paths.append(p)
    out = subprocess.run([TOOL, "bench", "224", *paths], check=True, capture_output=True, text=True)
    print(out.stdout)
    for simd in ("0",):
        out = subprocess.run([TOOL, "bench", "224", *paths], check=True, capture_output=True, text=True,
                             env={**os.environ, "BNN_IMAGE_SIMD": simd})
        print("BNN_IMAGE_SIMD=0:\n" + out.stdout)
    import time
    t0 = time.perf_counter()
    for r in range(3):
        for p in paths:
            Image.open(p).convert("RGB")
    t = time.perf_counter() - t0
    print(f"PIL open+convert('RGB') full decode: {3 * len(paths) / t:.1f} images/s")
    t0 = time.perf_counter()
    for r in range(3):
        for i, p in enumerate(paths):
            img = Image.open(p).convert("RGB")
            img = img.crop((10, 10, 310, 260)).resize((224, 224), Image.BILINEAR).transpose(Image.FLIP_LEFT_RIGHT)
            np.asarray(img)
    t = time.perf_counter() - t0
    print(f"PIL decode + crop + resize 224 + flip (RandomResizedCrop-like): {3 * len(paths) / t:.1f} images/s")

print()
print("FAILURES:", failures if failures else "none")
sys.exit(1 if failures else 0)
