#!/usr/bin/env python3
"""Output size and SSIM of each server's answer against one Pillow reference.

    quality.py MANIFEST [--corpus DIR] [--calibrate]

MANIFEST has one line per output: `case<TAB>server<TAB>source file<TAB>url` (`#` lines are
ignored). Each URL is fetched once; the reference is the source (from the corpus) decoded at full
size by Pillow, auto-oriented, and resized with Image.LANCZOS to the output's exact size. SSIM is
Wang et al.'s: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, over the
"valid" part of the image (no padding), averaged over the map. `ssim_y` is on luma (Pillow's "L"
conversion, ITU-R 601), `ssim_rgb` the mean of the R, G and B maps. An image with alpha (output or
source) is composited over white first, both sides, so what is compared is what a page shows;
`ssim_a` is then the alpha channel's own SSIM.

--calibrate: for each peer's output in a case, also the imgedge quality with the same ssim_y
(linear interpolation over the imgedge rows of that case, labelled `q_N`) and its bytes there.

Needs Pillow (with AVIF decoding: Pillow >= 11.3, or pillow-avif-plugin), pillow-jxl-plugin for
JPEG XL outputs, and numpy.
"""
import argparse
import io
import sys
import time
import urllib.request

import numpy as np
from PIL import Image, ImageOps

try:  # older Pillow: the plugin registers AVIF
    import pillow_avif  # noqa: F401
except ImportError:
    pass
try:  # JPEG XL outputs (case j)
    import pillow_jxl  # noqa: F401
except ImportError:
    pass


def gaussian_window(size=11, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


WINDOW = gaussian_window()


def filt(img):
    """Separable 11x11 Gaussian filter, 'valid' region only."""
    k = len(WINDOW)
    h, w = img.shape
    rows = sum(WINDOW[i] * img[:, i : w - k + 1 + i] for i in range(k))
    return sum(WINDOW[i] * rows[i : h - k + 1 + i, :] for i in range(k))


def ssim(a, b, L=255.0):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mu_a, mu_b = filt(a), filt(b)
    aa, bb, ab = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (aa + bb + c2)
    return float((num / den).mean())


def flatten(img):
    """RGB image over white, and the alpha channel (None when there is none)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), rgba.getchannel("A")
    return img.convert("RGB"), None


_sources = {}


def source(path):
    if path not in _sources:
        img = Image.open(path)
        img = ImageOps.exif_transpose(img)
        img.load()
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
        _sources[path] = img
    return _sources[path]


def measure(src_path, body):
    out = Image.open(io.BytesIO(body))
    fmt = (out.format or "?").lower()
    out.load()
    src = source(src_path)
    ref = src.resize(out.size, Image.LANCZOS)
    has_alpha = src.mode == "RGBA" or out.mode in ("RGBA", "LA", "PA")
    if has_alpha:
        ref, out = ref.convert("RGBA"), out.convert("RGBA")
    ref_rgb, ref_a = flatten(ref)
    out_rgb, out_a = flatten(out)
    r, o = np.asarray(ref_rgb), np.asarray(out_rgb)
    res = {
        "fmt": fmt,
        "size": "%dx%d" % out.size,
        "ssim_y": ssim(np.asarray(ref_rgb.convert("L")), np.asarray(out_rgb.convert("L"))),
        "ssim_rgb": float(np.mean([ssim(r[..., c], o[..., c]) for c in range(3)])),
        "ssim_a": ssim(np.asarray(ref_a), np.asarray(out_a)) if has_alpha else None,
    }
    return res


def fetch(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as r:
        body = r.read()
        headers = r.headers
    return body, (time.perf_counter() - t) * 1000, headers.get("X-Cache", "")


def interp(points, ssim_target):
    """(q, bytes) on the line through the sweep where ssim_y crosses ssim_target."""
    pts = sorted(points, key=lambda p: p["q"])
    for lo, hi in zip(pts, pts[1:]):
        s0, s1 = lo["ssim_y"], hi["ssim_y"]
        if min(s0, s1) <= ssim_target <= max(s0, s1) and s0 != s1:
            t = (ssim_target - s0) / (s1 - s0)
            return lo["q"] + t * (hi["q"] - lo["q"]), lo["bytes"] + t * (hi["bytes"] - lo["bytes"])
    return None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--corpus", default="/tmp/imgbench/corpus")
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()

    rows = []
    with open(args.manifest) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            case, server, src, url = line.rstrip("\n").split("\t")
            rows.append({"case": case, "server": server, "src": src, "url": url})

    print("quality: one fetch per server and case; reference = Pillow LANCZOS of the full-size original")
    print("%-7s %-16s %-5s %-9s %8s %8s %8s %7s %8s  %s" % (
        "case", "server", "fmt", "size", "bytes", "ssim_y", "ssim_rgb", "ssim_a", "ms", "x-cache"))
    failed = 0
    for row in rows:
        try:
            body, ms, xcache = fetch(row["url"])
            m = measure(f"{args.corpus}/{row['src']}", body)
        except Exception as e:  # one bad answer does not hide the others
            failed += 1
            print("%-7s %-16s failed: %s" % (row["case"], row["server"], e))
            continue
        row.update(m, bytes=len(body), ms=ms)
        print("%-7s %-16s %-5s %-9s %8d %8.4f %8.4f %7s %8.0f  %s" % (
            row["case"], row["server"], m["fmt"], m["size"], len(body), m["ssim_y"], m["ssim_rgb"],
            "-" if m["ssim_a"] is None else "%.4f" % m["ssim_a"], ms, xcache or "-"))
        sys.stdout.flush()

    if args.calibrate:
        by_case = {}
        for r in rows:
            if "bytes" in r:
                by_case.setdefault(r["case"], []).append(r)
        for case, rs in by_case.items():
            sweep = []
            for r in rs:
                if r["server"].startswith("imgedge q_"):
                    sweep.append(dict(r, q=int(r["server"].split("q_")[1])))
            peers = [r for r in rs if not r["server"].startswith("imgedge")]
            if not sweep or not peers:
                continue
            print(f"\nequal ssim_y, case {case}: the imgedge q (interpolated over its sweep) that matches each peer output")
            print("%-16s %8s %8s %12s %14s %12s" % ("peer", "ssim_y", "bytes", "imgedge q", "imgedge bytes", "× peer bytes"))
            for p in peers:
                q, b = interp(sweep, p["ssim_y"])
                if q is None:
                    lo, hi = min(s["ssim_y"] for s in sweep), max(s["ssim_y"] for s in sweep)
                    print("%-16s %8.4f %8d   outside the sweep's ssim_y %.4f–%.4f" % (p["server"], p["ssim_y"], p["bytes"], lo, hi))
                else:
                    print("%-16s %8.4f %8d %12.1f %14.0f %12.2f" % (p["server"], p["ssim_y"], p["bytes"], q, b, b / p["bytes"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
