"""What an exported model gains: throughput, install size and cold start against the torch pipeline (issue #20).

    python benchmarks/export.py --data ../shared/data/magnetic_tile/magnetic_tile \\
        --weights ../shared/weights/tf_efficientnet_lite0.in1k.safetensors [--model FOLDER] [--n-images 64]

Run on demand; CI never runs it. Prints markdown tables. How it measures:

- The model is the default configuration (PaDiM, tf_efficientnet_lite0, `ModelConfig`'s size and resize), fitted
  on all of train/good with 10 % held out for the threshold (or --model, a saved folder), saved, and
  exported to ONNX (and to OpenVINO IR when `openvino` is installed) with `export.export_model`.
- The same --n-images test images (evenly spaced through test/) for every row, with --threads threads
  everywhere (torch.set_num_threads; ONNX Runtime intra-op threads, spinning off; OpenVINO
  INFERENCE_NUM_THREADS). Each backend (torch, ONNX Runtime, OpenVINO) runs in its own process, as
  it would be deployed, so no runtime's idle threads (torch's OpenMP, OpenVINO's TBB) share a process
  with another's timed run: in one process they cost ONNX Runtime a third of its speed here. Each
  setting runs once per round, all settings interleaved, in a new random order each round, in each
  of --repeats rounds after one warm-up round; images/s is the median over rounds. The load average
  at the start and end is printed: on a shared machine other people's work slows every row.
- Rows: the torch backbone alone (images decoded and resized beforehand, only the extractor's
  forward pass timed, one pass at a time and two in flight as the pipeline runs it, the faster
  counted); the torch pipeline (`AnomalyModel.predict` on the files: decoding, backbone, PaDiM,
  maps, scores) with its batch size set; the exported graph alone on ONNX Runtime (arrays resized
  beforehand); and end to end from the files with `runtime.predict_files` (decoding, resizing, the
  graph, and each map taken back to its image's size, which `predict` does not even do) on ONNX
  Runtime and on OpenVINO. Ratios are to the torch pipeline at the same batch size, and at its own
  best batch size for the best column.
- Install size: `du` of the site-packages of a fresh deploy venv (the deploy requirements, then
  the package with --no-deps) against this venv's (the torch install, with the dev tools) and the
  torch stack's own folders in it. Cold start: wall time from starting a Python process to its
  first score, for the deploy venv (load the .onnx, score one image) and for this venv (load the
  model folder with torch, score the same image); median of 3.
"""
import argparse, configparser, json, multiprocessing as mp, os, resource, shutil, statistics, subprocess, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def du(path):
    "Bytes on disk under `path` (du -sb)."
    return int(subprocess.run(['du', '-sb', str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def site_packages(python):
    return Path(subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())


def deploy_venv(path):
    "A venv with the deploy requirements and this package without its dependencies (made once, reused)."
    py = Path(path)/'bin'/'python'
    if not py.exists():
        subprocess.run([sys.executable, '-m', 'venv', str(path)], check=True)
        c = configparser.ConfigParser(); c.read(ROOT/'settings.ini')
        subprocess.run([str(py), '-m', 'pip', 'install', '-q', *c['DEFAULT']['deploy_requirements'].split()], check=True)
        subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--no-deps', str(ROOT)], check=True)
    probe = subprocess.run([str(py), '-c', 'import importlib.util; print(importlib.util.find_spec("torch") is None)'],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert probe == 'True', 'the deploy venv has torch'
    return py


def cold_start(cmd, repeats=3):
    "Median wall seconds of a process from start to exit (it exits right after printing its first score)."
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def serve(kind, path, files, threads, conn):
    "A backend in its own process: load the model, then time each (what, batch) request on `files` until None arrives."
    n = len(files)
    chunks = lambda b: [slice(i, i + b) for i in range(0, n, b)]
    if kind == 'torch':
        import torch
        torch.set_num_threads(threads)
        from anomaly_nb.data import ImageDataset, Sample
        from anomaly_nb.features import in_streams
        from anomaly_nb.saving import load_model
        model = load_model(path, device='cpu', progress=False)
        ds = ImageDataset([Sample(Path(f)) for f in files], model.size, model.config.resize)
        tensors = torch.stack([ds[i]['image'] for i in range(n)])  # decoded and resized beforehand
        def run(what, b):
            if what == 'pipeline':
                model.config = model.config.replace(batch_size=b)
                model.predict(files)
            else:
                for _ in in_streams(lambda s: model.extractor(tensors[s]), chunks(b), 2 if what == 'backbone2' else 1): pass
    else:
        from anomaly_nb.runtime import load_exported
        model = load_exported(path, threads=threads)
        prepared = [model.prepare(f, keep_image=False) for f in files]
        arrays, valid = np.stack([q.chw for q in prepared]), np.stack([q.valid for q in prepared])
        def run(what, b):
            if what == 'graph':
                for s in chunks(b): model.run(arrays[s], valid[s])
            else:
                for _ in model.predict_files(files, batch_size=b, rgb=False): pass
    conn.send('ready')
    while (req := conn.recv()) is not None:
        t, c = time.perf_counter(), cpu_seconds()
        run(*req)
        conn.send((time.perf_counter() - t, cpu_seconds() - c))


def cpu_seconds():
    "User + system CPU seconds of this process, all its threads."
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', type=Path, default=ROOT.parent/'shared'/'data'/'magnetic_tile'/'magnetic_tile')
    p.add_argument('--weights', type=Path, default=ROOT.parent/'shared'/'weights'/'tf_efficientnet_lite0.in1k.safetensors')
    p.add_argument('--model', type=Path, default=None, help='a saved model folder (default: fit the default model)')
    p.add_argument('--work', type=Path, default=Path('/tmp/anomaly_nb_export_bench'), help='models, exports, the deploy venv')
    p.add_argument('--n-images', type=int, default=64)
    p.add_argument('--batches', type=int, nargs='+', default=[1, 4, 8, 16])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--no-openvino', action='store_true')
    a = p.parse_args()

    from anomaly_nb.data import mvtec_samples
    from anomaly_nb.export import export_model
    from anomaly_nb.pipeline import build_model
    from anomaly_nb.saving import save_model

    a.work.mkdir(parents=True, exist_ok=True)
    folder = a.model
    if folder is None:
        folder = a.work/'padim'
        if not (folder/'model.json').is_file():
            t = time.perf_counter()
            save_model(build_model(weights=a.weights, progress=False, device='cpu').fit(a.data, holdout=0.1), folder)
            print(f"fitted the default model in {time.perf_counter() - t:.0f} s -> {folder}", file=sys.stderr)
    t = time.perf_counter()
    onnx_file = export_model(folder, a.work/'model.onnx')
    export_s = time.perf_counter() - t
    ov_file = None
    if not a.no_openvino:
        try: ov_file = export_model(folder, a.work/'model.xml', format='openvino')
        except ValueError as e: print(f"OpenVINO rows left out: {e}", file=sys.stderr)
    config = json.loads((folder/'model.json').read_text())['config']

    test = mvtec_samples(a.data)['test']
    files = [str(s.path) for s in test[::max(1, len(test) // a.n_images)]][:a.n_images]
    n = len(files)
    # one process per backend, so that no runtime's idle threads (torch's OpenMP, OpenVINO's TBB) share a process with
    # another's timed run; the idle processes wait on a pipe while one runs
    ctx = mp.get_context('spawn')
    backends = {'torch': str(folder), 'ort': str(onnx_file), **({'ov': str(ov_file)} if ov_file else {})}
    workers = {}
    for kind, path in backends.items():
        here, there = ctx.Pipe()
        proc = ctx.Process(target=serve, args=(kind, path, files, a.threads, there), daemon=True)
        proc.start(); workers[kind] = (proc, here)
    for kind, (_, conn) in workers.items(): assert conn.recv() == 'ready', kind

    settings = {}
    for b in a.batches:
        settings[('torch backbone alone (1 pass)', b)] = ('torch', 'backbone1', b)
        settings[('torch backbone alone (2 in flight)', b)] = ('torch', 'backbone2', b)
        settings[('torch pipeline (`AnomalyModel.predict`)', b)] = ('torch', 'pipeline', b)
        settings[('ONNX Runtime, graph alone', b)] = ('ort', 'graph', b)
        settings[('ONNX Runtime end to end (`predict_files`)', b)] = ('ort', 'e2e', b)
        if ov_file:
            settings[('OpenVINO, graph alone', b)] = ('ov', 'graph', b)
            settings[('OpenVINO end to end (`predict_files`)', b)] = ('ov', 'e2e', b)
    load0 = f"{os.getloadavg()[0]:.2f}"
    times = {k: [] for k in settings}
    order = np.random.default_rng(0)
    for r in range(a.repeats + 1):  # round 0 warms up
        keys = list(settings)
        if r: keys = [keys[i] for i in order.permutation(len(keys))]  # a new order each round: a drifting load hits no setting twice alike
        for k in keys:
            kind, what, b = settings[k]
            conn = workers[kind][1]
            conn.send((what, b)); dt = conn.recv()
            if r: times[k].append(dt)  # (wall, cpu) seconds
        print(f"round {r} done", file=sys.stderr)
    for proc, conn in workers.values(): conn.send(None); proc.join()
    def per_batch(i):  # images per wall second (i=0) or per CPU second (i=1); the backbone's better streams setting
        out = {}
        for (name, b), v in times.items():
            key = 'torch backbone alone' if name.startswith('torch backbone alone') else name
            out[(key, b)] = max(out.get((key, b), 0), n / statistics.median(t[i] for t in v))
        return out
    ips_b, cps_b = per_batch(0), per_batch(1)
    names = list(dict.fromkeys(k for k, _ in ips_b))
    pipe = 'torch pipeline (`AnomalyModel.predict`)'
    best_pipe = max(ips_b[(pipe, b)] for b in a.batches)
    b1 = min(a.batches)

    print(f"\n(load average {load0} at the start, {os.getloadavg()[0]:.2f} at the end: other work on the machine slows every row)")
    print(f"\n{n} magnetic_tile test images, {a.threads} threads, median of {a.repeats} interleaved rounds; "
          f"{config['detector']} on {config['backbone']} at {config['size'][0]}x{config['size'][1]} ({config['resize']}); "
          f"export took {export_s:.1f} s, {onnx_file.stat().st_size / 2**20:.0f} MB\n")
    print(f"| | images/s, batch {b1} | × torch pipeline, batch {b1} | best batch | images/s | × torch pipeline at its best |")
    print("|---|---|---|---|---|---|")
    for name in names:
        best = max(a.batches, key=lambda b: ips_b[(name, b)])
        v1, vb = ips_b[(name, b1)], ips_b[(name, best)]
        print(f"| {name} | {v1:.1f} | {v1 / ips_b[(pipe, b1)]:.2f} | {best} | {vb:.1f} | {vb / best_pipe:.2f} |")
    print(f"\nimages/s at every batch size:\n\n| | " + ' | '.join(f'batch {b}' for b in a.batches) + ' |')
    print('|---|' + '---|' * len(a.batches))
    for name in names: print(f"| {name} | " + ' | '.join(f"{ips_b[(name, b)]:.1f}" for b in a.batches) + ' |')
    print(f"\nimages per CPU second (user + system time of the backend's process, all threads; less sensitive to other "
          f"work on the machine than wall time), and × the torch pipeline at the same batch size:\n\n| | " + ' | '.join(f'batch {b}' for b in a.batches) + ' |')
    print('|---|' + '---|' * len(a.batches))
    for name in names: print(f"| {name} | " + ' | '.join(f"{cps_b[(name, b)]:.1f} ({cps_b[(name, b)] / cps_b[(pipe, b)]:.2f})" for b in a.batches) + ' |')

    # install size and cold start
    dpy = deploy_venv(a.work/'deploy-venv')
    main_sp, dep_sp = site_packages(sys.executable), site_packages(dpy)
    torch_dirs = [d for d in main_sp.iterdir() if d.is_dir() and d.name.split('-')[0].split('_')[0] in ('torch', 'torchvision', 'nvidia', 'triton')]
    img = str(files[0])
    dep_cmd = [str(dpy), '-c', f"from anomaly_nb.runtime import load_exported; m = load_exported({str(onnx_file)!r}, threads={a.threads}); "
                               f"print(next(m.score_files([{img!r}], 1, keep_images=False)).score)"]
    torch_cmd = [sys.executable, '-c', f"import torch; torch.set_num_threads({a.threads}); from anomaly_nb.saving import load_model; "
                                       f"m = load_model({str(folder)!r}, device='cpu', progress=False); print(m.predict([{img!r}]).scores[0])"]
    cli = dpy.parent/'anomaly-nb-deploy'
    out = a.work/'cold_cli'
    def cli_once():
        shutil.rmtree(out, ignore_errors=True)
        return [str(cli), 'predict', str(onnx_file), img, '-o', str(out), '--threads', str(a.threads)]
    cold_dep, cold_torch = cold_start(dep_cmd), cold_start(torch_cmd)
    try: cold_cli = statistics.median([cold_start(cli_once(), 1) for _ in range(3)])
    except subprocess.CalledProcessError as e: cold_cli, cli_err = None, (e.stderr or '').strip().splitlines()[-1:]
    print(f"\n| install | site-packages on disk | cold start: process start to first score |")
    print("|---|---|---|")
    print(f"| deploy venv (onnxruntime, numpy, pillow, opencv-python-headless, fastcore, anomaly_nb) | {du(dep_sp) / 2**20:.0f} MB | "
          f"{cold_dep:.2f} s (`load_exported` + one image)" + (f"; {cold_cli:.2f} s for `anomaly-nb-deploy predict` of one image" if cold_cli else '') + " |")
    print(f"| this venv (torch install, with the dev tools) | {du(main_sp) / 2**20:.0f} MB, of which torch, torchvision, nvidia, triton "
          f"{sum(du(d) for d in torch_dirs) / 2**20:.0f} MB | {cold_torch:.2f} s (`load_model` + `predict` of one image) |")
    print(f"| the exported model file | {onnx_file.stat().st_size / 2**20:.0f} MB | |")
    if cold_cli is None: print(f"\n(`anomaly-nb-deploy predict` failed in the deploy venv: {cli_err})")


if __name__ == '__main__':
    main()
