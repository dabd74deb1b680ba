"""Memory of `anomaly-nb predict` against the number of images, and for one very large image.

    python benchmarks/predict_memory.py [--counts 100 1000 10000] [--data ../shared/data/magnetic_tile/magnetic_tile]

Fits the default model (PaDiM, tf_efficientnet_lite0 with the shared ImageNet weights) on the data's train/good once,
then runs `anomaly-nb predict` in a fresh process per row: on N images (links to the test images, cycled under
distinct names, so every image is decoded, scored and written), and on one 8000×8000 JPEG with the default
`--max-side 2048` and with `--max-side null` (maps at full size). Each process prints its own peak resident memory
(`ru_maxrss`). Prints one markdown table. Predict streams (`AnomalyModel.predict_stream` + `outputs.PredictionWriter`),
so the peak should be flat in N.
"""
import argparse, atexit, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get('ANOMALY_NB_SHARED', HERE.parent.parent / 'shared'))
CHILD = ("import sys, resource; from anomaly_nb.cli import main; rc = main(sys.argv[1:]); "
         "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(rc)")


def run_predict(model, sources, out, *extra):
    "Run predict in a fresh process; (peak RSS in MB, seconds)."
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, '-c', CHILD, 'predict', str(model), *map(str, sources), '-q', '-o', str(out), *extra],
                       capture_output=True, text=True)
    if r.returncode: raise SystemExit(f"predict failed: {r.stderr[-2000:]}")
    peak = float(next(l.split()[1] for l in r.stdout.splitlines() if l.startswith('PEAK_RSS_MB')))
    return peak, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', type=Path, default=SHARED / 'data' / 'magnetic_tile' / 'magnetic_tile')
    p.add_argument('--weights', type=Path, default=SHARED / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors')
    p.add_argument('--counts', type=int, nargs='+', default=[100, 1000, 10000])
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix='predict_memory_'))
    atexit.register(shutil.rmtree, work, True)  # removed however the run ends (the outputs here run to GBs)
    model = work / 'model'
    from anomaly_nb.cli import main as cli
    assert cli(['fit', str(a.data), '--weights', str(a.weights), '-q', '-o', str(model)]) == 0
    tests = sorted(p for p in (a.data / 'test').rglob('*') if p.suffix.lower() in ('.png', '.jpg', '.jpeg', '.bmp'))
    rows = []
    for n in a.counts:
        src = work / f'images_{n}'; src.mkdir()
        for i in range(n): (src / f'{i:06d}{tests[i % len(tests)].suffix}').symlink_to(tests[i % len(tests)])
        peak, secs = run_predict(model, [src], work / f'out_{n}')
        size = sum(f.stat().st_size for f in (work / f'out_{n}').rglob('*') if f.is_file())
        rows.append((f'{n:,} images', peak, secs, f'{n / secs:.1f} images/s, {size / 2**20:,.0f} MB written'))
    big = work / 'big.jpg'
    rng = np.random.default_rng(0)
    Image.fromarray(np.kron(rng.integers(60, 200, (500, 500), dtype=np.uint8), np.ones((16, 16), np.uint8))).convert('RGB').save(big, quality=90)
    for label, extra in (('one 8000×8000 JPEG, --max-side 2048 (default)', ()), ('one 8000×8000 JPEG, --max-side null (full size)', ('--max-side', 'null'))):
        out = work / f'out_big_{len(extra)}'
        peak, secs = run_predict(model, [big], out, *extra)
        m = next((out / 'maps').iterdir())
        rows.append((label, peak, secs, f'map {np.load(m).shape}, {m.stat().st_size / 2**20:,.0f} MB'))
    base = rows[0][1]
    print('| predict on | peak RSS (MB) | ratio to the first row | seconds | |')
    print('|---|---|---|---|---|')
    for label, peak, secs, note in rows: print(f'| {label} | {peak:,.0f} | {peak / base:.2f} | {secs:,.1f} | {note} |')


if __name__ == '__main__': main()
