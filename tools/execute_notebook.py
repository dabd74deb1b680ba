"""Execute notebooks in place so that their outputs are committed with them, as the website shows them.

    python tools/execute_notebook.py nbs/07_plots.ipynb nbs/09_report.ipynb            # reference notebooks
    python tools/execute_notebook.py --full nbs/blog/posts/<post>/index.ipynb           # a post, on all its data

Each notebook runs in its own folder with a fresh Jupyter kernel (nbclient, what `jupyter nbconvert
--execute` uses), from top to bottom; a cell that fails stops it and nothing is written. Cells flagged
`#| eval: false`, and cells flagged with one of nbdev's test flags (`tst_flags` in settings.ini: `#| slow`)
unless `--flags` names it, are not run and keep no output, as under `nbdev_test`. `--full` sets
ANOMALY_NB_FULL=1, which the posts read to use every image. Two warnings no reader can act on are silenced
(`QUIET`), and progress bars are left out of the stored stderr.

The outputs are then scrubbed of the machine's paths (`anomaly_nb.site.scrub_paths`: the repository, the
folder beside it, the virtual environment, temporary folders, the home folder) and written into the
notebook *as it is on disk when the run ends*, cell by cell (matched by cell id): a cell edited while the
run was going keeps its old outputs and is listed. Last, `nbdev_clean --fname` normalises the file, so a
later `nbdev_clean` leaves no diff.
"""
import argparse
import configparser
import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_TAG = 'skip-execution'  # nbclient's default `skip_cells_with_tag`
# Warnings nothing in a published output can act on: tqdm.auto's "IProgress not found" (no ipywidgets: its bars fall back
# to text) and NumPy's overflow in a cast (tests feed out-of-range values to check that they are refused).
QUIET = 'ignore:IProgress not found,ignore:overflow encountered:RuntimeWarning'


def test_flags() -> set:
    "nbdev's `tst_flags` from settings.ini (cells flagged with them run only when asked)."
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())


def skipped(cell, flags: set, run_flags: set) -> bool:
    "Whether `cell` is left unexecuted: `#| eval: false`, or a test flag not asked for."
    from anomaly_nb.site import directives
    d, _ = directives(cell.source)
    return d.get('eval', '').lower() == 'false' or bool((flags - run_flags) & d.keys())


_BAR = re.compile(r'^[^\n]*\d+%\|[^\n|]*\|[^\n]*\[[^\n]*\]\s*$')  # a tqdm progress bar: 'Loading: 100%|####| 43/43 [00:00<00:00, 9.1it/s]'


def without_progress(outputs: list) -> list:
    "The outputs with progress bars left out of stderr (the `\\r` redraws of tqdm), and empty streams dropped."
    merged = []
    for o in outputs:  # consecutive writes to one stream become one output, as a notebook shows them
        if merged and o.get('output_type') == 'stream' and merged[-1].get('output_type') == 'stream' and merged[-1]['name'] == o['name']:
            merged[-1]['text'] += o['text']
        else: merged.append(o)
    out = []
    for o in merged:
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
            lines = [l.rsplit('\r', 1)[-1] for l in o['text'].split('\n')]
            o['text'] = '\n'.join(l for l in lines if not _BAR.match(l)).strip('\n')
            if not o['text'].strip(): continue
            o['text'] += '\n'
        out.append(o)
    return out


def execute(path: Path, full: bool, run_flags: set, timeout: int) -> list:
    "Run the notebook at `path`, store its scrubbed outputs in the file on disk; return the ids of cells not updated."
    import nbformat
    from nbclient import NotebookClient
    from anomaly_nb.site import scrub_outputs
    nb = nbformat.read(path, as_version=4)
    run = copy.deepcopy(nb)
    flags = test_flags()
    for c in run.cells:
        if c.cell_type == 'code' and skipped(c, flags, run_flags):
            c.metadata.setdefault('tags', []).append(SKIP_TAG)
            c.outputs = []
    env = dict(HF_HUB_OFFLINE='1', ANOMALY_NB_FULL='1' if full else '', PYTHONWARNINGS=QUIET)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(run, timeout=timeout, kernel_name='python3',
                       resources={'metadata': {'path': str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    ran = {c.id: c for c in run.cells if c.cell_type == 'code'}
    now = nbformat.read(path, as_version=4)  # edits made during the run are kept
    stale = []
    for c in now.cells:
        if c.cell_type != 'code': continue
        r = ran.get(c.id)
        if r is None or r.source != c.source:
            stale.append(c.id)
            continue
        c.outputs = scrub_outputs(without_progress(r.outputs), ROOT)
    nbformat.write(now, path)
    subprocess.run(['nbdev_clean', '--fname', str(path)], check=True, cwd=ROOT)
    return stale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--full', action='store_true', help='set ANOMALY_NB_FULL=1 (posts: use every image)')
    ap.add_argument('--flags', nargs='*', default=[], help="also run cells with these nbdev flags (e.g. slow)")
    ap.add_argument('--timeout', type=int, default=7200, help='seconds one cell may take (default 7200)')
    a = ap.parse_args(argv)
    for p in a.notebooks:
        t0 = time.perf_counter()
        print(f"{p}: running{' (full)' if a.full else ''} ...", file=sys.stderr, flush=True)
        stale = execute(p.resolve(), a.full, set(a.flags), a.timeout)
        msg = f"{p}: outputs stored in {time.perf_counter() - t0:.0f} s"
        if stale: msg += f"; cells changed during the run kept their old outputs: {', '.join(stale)}"
        print(msg, file=sys.stderr, flush=True)


if __name__ == '__main__':
    main()
