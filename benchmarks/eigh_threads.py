"""PaDiM's eigendecompositions on one PyTorch thread against two, and NumPy's, side by side.

    python benchmarks/eigh_threads.py [--reps 5] [--positions 64] [--images 600] [--channels 152]

One block of positions as `PositionalGaussianDetector` fits it (Ledoit-Wolf covariances of `--images` random
feature vectors of `--channels` values, float64), then `torch.linalg.eigh` on the stack with 1 and 2 intra-op
threads and `numpy.linalg.eigh`, interleaved `--reps` times. Prints the median and the worst time of each. Run
it on an idle machine and again while another job holds the cores: the worst case is what differs.
"""
import argparse, time
import numpy as np
import pandas as pd
import torch
from anomaly_nb.statistics import ledoit_wolf_batch

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=5); p.add_argument('--positions', type=int, default=64)
    p.add_argument('--images', type=int, default=600); p.add_argument('--channels', type=int, default=152)
    a = p.parse_args()
    X = torch.from_numpy(np.random.default_rng(0).normal(size=(a.positions, a.images, a.channels)))
    _, C = ledoit_wolf_batch(X)
    times = {}
    for _ in range(a.reps):
        for name, threads in (('torch, 1 thread', 1), ('torch, 2 threads', 2), ('numpy', None)):
            if threads: torch.set_num_threads(threads)
            t = time.perf_counter()
            if threads: torch.linalg.eigh(C)
            else: np.linalg.eigh(C.numpy())
            times.setdefault(name, []).append(time.perf_counter() - t)
    base = np.median(times['torch, 1 thread'])
    print(pd.DataFrame([{'eigh of': f'{a.positions} × {a.channels}²', 'how': k, 'median s': f'{np.median(v):.3f}',
                         'worst s': f'{max(v):.3f}', 'median / 1 thread': f'{np.median(v) / base:.2f}'}
                        for k, v in times.items()]).to_markdown(index=False))

if __name__ == '__main__':
    main()
