"""Decoding and resizing large images to the network's input: one-step bilinear against Pillow's `reducing_gap`.

    python benchmarks/resize.py [--size 256] [--repeats 15]

Writes textured PNGs of typical camera and MVTec AD sizes to a temporary folder, then times, per image
and interleaved in every repeat (CPU time of this process, median over the repeats): PNG decoding,
`Image.resize(..., BILINEAR)` in one step, and the same with `reducing_gap=data.REDUCING_GAP` (what
`data.resize_pair` does). Prints one markdown table with the ratio of the two resizes, the share of
decode + resize saved, and the mean and largest pixel difference between the two results.
"""
import argparse, atexit, shutil, statistics, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

from anomaly_nb.data import REDUCING_GAP, _texture, _fit_box

SHAPES = [((2048, 2448), 'L'), ((2048, 2448), 'RGB'), ((1024, 1024), 'RGB'), ((700, 900), 'RGB'), ((400, 600), 'L')]


def surface(rng, hw, mode):
    "A textured gray or colour surface (colour: three differently shifted copies)."
    g = _texture(rng, *hw)
    a = g if mode == 'L' else np.stack([g, np.roll(g, 7, 0), np.roll(g, 7, 1)], -1)
    return Image.fromarray(a.astype(np.uint8), mode)


def timed(fn):
    "(fn(), CPU ms it took)."
    t = time.process_time(); out = fn(); return out, (time.process_time() - t) * 1e3


def decoded(path):
    img = Image.open(path); img.load(); return img


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=256, help='input size (the box the image is fitted into)')
    p.add_argument('--repeats', type=int, default=15)
    a = p.parse_args()
    rng, tmp = np.random.default_rng(0), Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, tmp, True)  # removed however the run ends
    files = []
    for i, (hw, mode) in enumerate(SHAPES):
        f = tmp/f'{i}.png'; surface(rng, hw, mode).save(f); files.append((f, hw, mode))
    times = {(f, k): [] for f, _, _ in files for k in ('decode', 'one step', 'reducing gap')}
    results = {}  # the last repeat's two resizes of each file, to compare their pixels
    for _ in range(a.repeats):
        for f, hw, mode in files:
            h, w = _fit_box(*hw, (a.size, a.size))
            img, ms = timed(lambda: decoded(f)); times[f, 'decode'].append(ms)
            one, ms = timed(lambda: img.resize((w, h), Image.BILINEAR)); times[f, 'one step'].append(ms)
            two, ms = timed(lambda: img.resize((w, h), Image.BILINEAR, reducing_gap=REDUCING_GAP)); times[f, 'reducing gap'].append(ms)
            results[f] = one, two
    print(f"Decode + resize to fit {a.size}x{a.size}, ms of CPU per image, median of {a.repeats} interleaved repeats "
          f"(reducing_gap={REDUCING_GAP})\n")
    print('| image | decode | resize, one step | resize, reducing gap | ratio | decode + resize saved | mean / max pixel difference |')
    print('|---|---|---|---|---|---|---|')
    for f, hw, mode in files:
        med = {k: statistics.median(times[f, k]) for k in ('decode', 'one step', 'reducing gap')}
        one, two = results[f]
        diff = np.abs(np.asarray(one).astype(int) - np.asarray(two))
        saved = 1 - (med['decode'] + med['reducing gap']) / (med['decode'] + med['one step'])
        print(f"| {hw[1]}x{hw[0]} {mode} | {med['decode']:.1f} | {med['one step']:.1f} | {med['reducing gap']:.1f} | "
              f"{med['reducing gap'] / med['one step']:.2f} | {saved:.0%} | {diff.mean():.2f} / {diff.max()} |")


if __name__ == '__main__': main()
