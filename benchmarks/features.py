"""Feature-extraction throughput by batch size and memory format, side by side in one run.

    python benchmarks/features.py [--backbones tf_efficientnet_lite0 resnet18 wide_resnet50_2]
                                  [--batches 1 2 4 8 16 32] [--images 64] [--repeats 5]

For each backbone (default layers, random weights: speed does not depend on them) every setting
(batch size x channels_last) extracts the same `--images` random 256x256 images; the settings are
interleaved in each repeat, so a change in the machine's load hits all of them alike. Prints one
row per setting: median images/s over the repeats and the ratio to the best setting of that
backbone. This is how the pipeline's CPU batch size (`features.default_batch_size`) was chosen.
"""
import argparse, statistics, time

import torch

from anomaly_nb.features import TimmFeatureExtractor, default_batch_size


def images_per_s(fx, x, batch):
    t0 = time.perf_counter()
    for i in range(0, len(x), batch): fx(x[i:i + batch])
    return len(x) / (time.perf_counter() - t0)


def sweep(backbone, batches, n_images, size, repeats, device):
    x = torch.rand(n_images, 3, size, size)
    fxs = {cl: TimmFeatureExtractor(backbone, weights='random', channels_last=cl, device=device) for cl in (False, True)}
    settings = [(b, cl) for cl in (True, False) for b in batches]
    for b, cl in settings: fxs[cl](x[:b])  # warm-up: allocator, one-off kernel selection per shape
    runs = {s: [] for s in settings}
    for _ in range(repeats):
        for b, cl in settings: runs[(b, cl)].append(images_per_s(fxs[cl], x, b))
    return {s: statistics.median(v) for s, v in runs.items()}, fxs[True]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--backbones', nargs='+', default=['tf_efficientnet_lite0', 'resnet18', 'wide_resnet50_2'])
    p.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4, 8, 16, 32])
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default=None)
    a = p.parse_args()
    for backbone in a.backbones:
        res, fx = sweep(backbone, a.batches, a.images, a.size, a.repeats, a.device)
        best = max(res.values())
        print(f"\n{backbone}, layers {fx.layers}, {a.images} images at {a.size}x{a.size}, {fx.device}, "
              f"{torch.get_num_threads()} threads, median of {a.repeats} (default batch here: "
              f"{default_batch_size(fx.device)})")
        print(f"| batch | channels_last | images/s | of the best |\n|---|---|---|---|")
        for (b, cl), v in res.items(): print(f"| {b} | {cl} | {v:.1f} | {v / best:.2f} |")


if __name__ == '__main__':
    main()
