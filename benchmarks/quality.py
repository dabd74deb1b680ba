"""Detection quality of the default configuration and the main alternatives, per defect class.

    python benchmarks/quality.py [--configs default stretch knn gaussian lunar] [--shared ../shared]

Each configuration is fitted on all of `train/good` of magnetic_tile (offline ImageNet weights of
`tf_efficientnet_lite0`) and scored on the whole test split with `anomaly_nb.pipeline.evaluate`, the
same code `anomaly-nb evaluate` runs. Prints one markdown table: image AUROC, pixel AUROC and PRO for
every defect class, their mean, and all classes pooled ("all"), plus fit time and scoring time.

Which choices were made on which classes: the geometry and detector were chosen on blowhole, crack
and fray ("tune"); break and uneven were only looked at afterwards ("held out").
"""
import argparse, os, time
from pathlib import Path

import pandas as pd

from anomaly_nb.pipeline import ModelConfig, evaluate

TUNE, HELD = ('blowhole', 'crack', 'fray'), ('break', 'uneven')

_DEFAULT = ModelConfig()
_AT = f"{_DEFAULT.resize}, {_DEFAULT.size[0]} px"  # the geometry every row below keeps unless it says otherwise
CONFIGS = {  # name: (description, build_model keyword arguments)
    'default': (f"PaDiM, the default ({_AT})", {}),
    'default-320': (f"PaDiM, 320 px, blur sigma 5 ({_DEFAULT.resize})", dict(size=320, sigma=5.0)),
    'stretch': (f"PaDiM, stretched to {_DEFAULT.size[0]} px square (an earlier default)", dict(resize='stretch')),
    'knn': (f"kNN k=1, full bank, FAISS IVF, {_AT}", dict(detector='knn', bank=None, index='ivf')),
    'gaussian': (f"one Gaussian for all patches, {_AT}", dict(detector='gaussian')),
    'lunar': (f"LUNAR on a 5k coreset sample, {_AT}", dict(detector='lunar', sample='coreset', max_samples=5_000)),
}

def run(name:str, category:Path, weights:Path)->pd.DataFrame:
    desc, kw = CONFIGS[name]
    t0 = time.perf_counter()
    table = evaluate(category, holdout=0.0, weights=weights, progress=False, **kw)
    return table.assign(config=name, description=desc, wall_s=time.perf_counter() - t0)

def summary(table:pd.DataFrame)->pd.DataFrame:
    "One row per configuration: image/pixel/PRO for each class, the tune and held-out means, mean and all."
    out = []
    for name, t in table.groupby('config', sort=False):
        t = t.set_index('subset')
        row = {'config': name, 'description': t['description'].iloc[0]}
        for s in list(TUNE) + list(HELD) + ['mean', 'all']:
            row[s] = '{:.3f} / {:.3f} / {:.3f}'.format(*t.loc[s, ['image_auroc', 'pixel_auroc', 'pro']])
        row['tune (img/pix)'] = '{:.3f} / {:.3f}'.format(*t.loc[list(TUNE), ['image_auroc', 'pixel_auroc']].mean())
        row['held out (img/pix)'] = '{:.3f} / {:.3f}'.format(*t.loc[list(HELD), ['image_auroc', 'pixel_auroc']].mean())
        row['fit s'] = f"{t['fit_s'].iloc[0]:.0f}"
        row['s / image'] = f"{t['score_s_per_image'].iloc[0]:.3f}"
        out.append(row)
    return pd.DataFrame(out)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument('--shared', type=Path, default=Path(os.environ.get('ANOMALY_NB_SHARED', Path(__file__).resolve().parents[2] / 'shared')))
    p.add_argument('--csv', type=Path, default=None, help='also write the long table here')
    a = p.parse_args()
    category = a.shared / 'data' / 'magnetic_tile' / 'magnetic_tile'
    weights = a.shared / 'weights' / 'tf_efficientnet_lite0.in1k.safetensors'
    tables = []
    for name in a.configs:
        tables.append(run(name, category, weights))
        print(summary(tables[-1]).to_markdown(index=False), flush=True)  # partial results as they come
    table = pd.concat(tables, ignore_index=True)
    if a.csv: table.to_csv(a.csv, index=False)
    print('\nimage AUROC / pixel AUROC / PRO per defect class; "all" pools every class; "mean" averages them\n')
    print(summary(table).to_markdown(index=False))

if __name__ == '__main__':
    main()
