"""Feature-extraction throughput with and without channels_last, side by side in one run.

    python benchmarks/features.py [--backbone resnet18] [--weights random] [--repeats 5]

Prints one row per setting: median seconds per batch over the repeats, images/s, and the ratio
to the contiguous (NCHW) baseline. Random weights are fine here: speed does not depend on them.
"""
import argparse, statistics, time

import torch

from anomaly_nb.features import TimmFeatureExtractor


def median_batch_seconds(fx, x, repeats):
    fx(x)  # warm-up: allocator, one-off kernel selection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fx(x); times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--backbone', default='tf_efficientnet_lite0')
    p.add_argument('--weights', default='random')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default=None)
    a = p.parse_args()
    x = torch.rand(a.batch, 3, a.size, a.size)
    rows = []
    for cl in (False, True):
        fx = TimmFeatureExtractor(a.backbone, weights=a.weights, channels_last=cl, device=a.device)
        rows.append((cl, median_batch_seconds(fx, x, a.repeats)))
    base = rows[0][1]
    print(f"{a.backbone}, layers {fx.layers}, batch {a.batch} at {a.size}x{a.size}, {fx.device}, "
          f"{torch.get_num_threads()} threads, median of {a.repeats}")
    print(f"{'channels_last':>13} {'s/batch':>8} {'img/s':>7} {'speed-up':>8}")
    for cl, s in rows:
        print(f"{str(cl):>13} {s:8.3f} {a.batch / s:7.1f} {base / s:7.2f}x")


if __name__ == '__main__':
    main()
