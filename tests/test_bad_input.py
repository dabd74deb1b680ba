"""Every bad input of issue #6, crafted in a temporary folder and fed to the real `anomaly-nb` command line.

A failure must be exit code 1 with ONE line on stderr that names the offending file and says what to
do, no Python traceback, and no output files; odd but valid inputs must just work; `--skip-bad`
finishes the run on the rest and lists what it left out; an interrupted run leaves no half-written
file under a final name and a rerun completes; the same inputs and seed give identical results.

The backbone is a randomly initialised ResNet-18 at 64×64 pixels (stored in a weights file so the
fitted model can be saved and loaded), on a tiny sample category the package makes itself: the
features mean nothing here, only the plumbing is under test. Runs offline in well under a minute.
"""
import csv, hashlib, io, json, pickle, shutil, struct, zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import anomaly_nb.cli as cli
from anomaly_nb.data import make_synthetic_category

FAST = ['--backbone', 'resnet18', '--layers', 'layer2', '--size', '64', '-q']  # 128 channels on an 8x8 grid
EVAL = [*FAST, '--weights', 'random', '--detector', 'gaussian']  # evaluate fits a fresh model: keep it cheap


# ---------------------------------------------------------------- shared fixtures (built once)

@pytest.fixture(scope='session')
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('bad_input')


@pytest.fixture(scope='session')
def weights(work) -> Path:
    "A resnet18 with random (seeded) weights in a file: offline, and the same at every load."
    import timm, torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    path = work / 'r18_random.safetensors'
    save_file(timm.create_model('resnet18').state_dict(), str(path))
    return path


@pytest.fixture(scope='session')
def category(work) -> Path:
    return make_synthetic_category(work / 'synth', n_train=6, n_test_good=2, n_test_defect=1, size=(48, 64))


@pytest.fixture(scope='session')
def model(work, weights, category) -> Path:
    out = work / 'model'
    assert cli.main(['fit', str(category), *FAST, '--weights', str(weights), '--detector', 'gaussian',
                     '-o', str(out)]) == 0
    return out


def run(capsys, *args) -> tuple[int, str, str]:
    "Run the command line in this process; (exit code, stdout, stderr)."
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_failure(rc: int, err: str, names: str | Path, says: str, todo: str, out: Path | None = None):
    "Exit code 1, one line on stderr naming the file and what to do, no traceback, nothing written."
    assert rc == 1, f'exit code {rc}, stderr: {err}'
    assert err.endswith('\n') and err.count('\n') == 1, f'expected one line on stderr, got:\n{err}'
    assert 'Traceback' not in err
    for piece in (str(names), says, todo): assert piece in err, f'{piece!r} not in: {err}'
    if out is not None:
        assert not out.exists() or not any(p.is_file() for p in out.rglob('*')), sorted(out.rglob('*'))


# ---------------------------------------------------------------- crafted files

def png_header_only(path: Path, w: int, h: int):
    "A valid PNG header announcing w x h pixels with almost no data: a decompression bomb."
    chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(b'\0' * (w + 1))) + chunk(b'IEND', b''))


def noise(h=48, w=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def make_bad(kind: str, folder: Path) -> Path:
    "Write one bad image file of `kind` into `folder`; return its path."
    folder.mkdir(parents=True, exist_ok=True)
    if kind == 'zero_byte':
        p = folder / 'zero.png'; p.write_bytes(b'')
    elif kind == 'truncated_png':
        Image.fromarray(noise()).save(folder / 'full.png')
        p = folder / 'cut.png'; p.write_bytes((folder / 'full.png').read_bytes()[:1500]); (folder / 'full.png').unlink()
    elif kind == 'truncated_jpeg':
        buf = io.BytesIO(); Image.fromarray(noise()).save(buf, format='JPEG', quality=90)
        p = folder / 'cut.jpg'; p.write_bytes(buf.getvalue()[:1200])
    elif kind == 'text_with_image_extension':
        p = folder / 'notes.png'; p.write_text('camera log, not an image')
    elif kind == 'no_image_extension':
        p = folder / 'Thumbs.db'; p.write_bytes(b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1' + bytes(200))
    elif kind == 'decompression_bomb':
        p = folder / 'bomb.png'; png_header_only(p, 20_000, 20_000)
    elif kind == 'missing_file':
        p = folder / 'not_there.png'
    else: raise ValueError(kind)
    return p


BAD_FILES = {  # kind: (what the message says, what it tells the user to do)
    'zero_byte': ('empty (0-byte) file', 'Re-export or remove it'),
    'truncated_png': ('corrupt or truncated', 'Re-export or remove it'),
    'truncated_jpeg': ('corrupt or truncated', 'Re-export or remove it'),
    'text_with_image_extension': ('not an image Pillow can read', 'Remove it or convert it to PNG'),
    'no_image_extension': ('not an image Pillow can read', 'Remove it or convert it to PNG'),
    'decompression_bomb': ('too large to decode safely', 'Downscale it first'),
    'missing_file': ('not found', 'Check the path'),
}


# ---------------------------------------------------------------- bad image files: predict fails, naming the file

@pytest.mark.parametrize('kind', list(BAD_FILES))
def test_predict_bad_file_fails(kind, model, work, capsys):
    bad = make_bad(kind, work / 'bad' / kind)
    out = work / 'out' / f'predict_{kind}'
    rc, _, err = run(capsys, 'predict', model, bad, '-q', '-o', out)
    says, todo = BAD_FILES[kind]
    assert_clean_failure(rc, err, bad, says, todo, out)
    if kind != 'missing_file': assert '--skip-bad' in err  # a file that exists can be skipped


def test_predict_bad_file_in_folder_fails(model, category, work, capsys):
    "A bad file among good ones (in a folder) fails the run too, before anything is written."
    folder = work / 'bad' / 'folder_mixed'
    shutil.copytree(category / 'test' / 'good', folder)
    bad = make_bad('truncated_png', folder)
    out = work / 'out' / 'folder_mixed'
    rc, _, err = run(capsys, 'predict', model, folder, '-q', '-o', out)
    assert_clean_failure(rc, err, bad, 'truncated', 'Re-export', out)


def test_empty_folder(model, work, capsys):
    empty = work / 'bad' / 'empty_folder'; empty.mkdir(parents=True)
    out = work / 'out' / 'empty_folder'
    rc, _, err = run(capsys, 'predict', model, empty, '-q', '-o', out)
    assert_clean_failure(rc, err, empty, 'it is empty', 'Put the images there', out)


# ---------------------------------------------------------------- odd but valid images: predict works

def odd_image(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = noise()
    if kind == '16bit_png':
        img = Image.fromarray(g.astype(np.uint16) * 257); assert img.mode == 'I;16'
    elif kind == 'rgba_png':
        img = Image.fromarray(np.dstack([g, g, g, np.where(noise(seed=1) > 30, 255, 0).astype(np.uint8)]), 'RGBA')
    elif kind == 'palette_png':
        img = Image.fromarray(g).convert('RGB').quantize(16); assert img.mode == 'P'
    elif kind == 'cmyk_jpeg':
        img = Image.fromarray(np.dstack([g, g // 2, 255 - g, g // 4]), 'CMYK')
    elif kind == 'tiny_3x2':  # smaller than the 8x8 feature grid at 64 px, let alone 64 px
        img = Image.fromarray(g[:2, :3])
    p = folder / (kind + ('.jpg' if 'jpeg' in kind else '.png'))
    img.save(p, **({'quality': 95} if 'jpeg' in kind else {}))
    return p


@pytest.mark.parametrize('kind', ['16bit_png', 'rgba_png', 'palette_png', 'cmyk_jpeg', 'tiny_3x2'])
def test_odd_but_valid_image(kind, model, work, capsys):
    p = odd_image(kind, work / 'odd' / kind)
    out = work / 'out' / f'odd_{kind}'
    rc, _, err = run(capsys, 'predict', model, p, '-q', '-o', out)
    assert rc == 0 and err == '', err
    (row,) = list(csv.DictReader(open(out / 'scores.csv')))
    assert np.isfinite(float(row['score']))
    amap = np.load(out / row['map'], allow_pickle=False)
    assert amap.shape == Image.open(p).size[::-1] and np.isfinite(amap).all()  # the map has the image's own size


# ---------------------------------------------------------------- categories and masks: evaluate

def category_copy(category: Path, work: Path, name: str) -> Path:
    dst = work / 'cats' / name / 'synth'
    shutil.copytree(category, dst)
    return dst


def test_category_without_train_good(category, work, weights, capsys):
    cat = category_copy(category, work, 'no_train')
    shutil.rmtree(cat / 'train')
    out = work / 'out' / 'no_train'
    rc, _, err = run(capsys, 'evaluate', cat, *EVAL, '-o', out)
    assert_clean_failure(rc, err, cat / 'train' / 'good', 'no train/good/', 'put the good training images in', out)
    rc, _, err = run(capsys, 'fit', cat, *FAST, '--weights', weights, '-o', out / 'model')
    assert_clean_failure(rc, err, cat / 'train' / 'good', 'no train/good/', 'put the good training images in', out)


def mask_problem(kind: str, cat: Path) -> tuple[Path, str, str]:
    "Damage the mask of test/spot/000.png; (file the message must name, what it says, what to do)."
    image, mask = cat / 'test' / 'spot' / '000.png', cat / 'ground_truth' / 'spot' / '000_mask.png'
    h, w = np.asarray(Image.open(image)).shape[:2]
    if kind == 'mask_other_size':
        Image.fromarray(np.zeros((h // 2, w // 2), np.uint8)).save(mask); return mask, f'but its image {image}', 're-export the mask at'
    if kind == 'mask_label_values':  # 0/1/2/3 labels: not a 0/255 (or 0/1) mask
        a = np.zeros((h, w), np.uint8); a[5:15, 5:15] = 2; a[20:25, 20:25] = 3
        Image.fromarray(a).save(mask); return mask, 'is not binary', 'Re-save it with 0 for good and 255'
    raise ValueError(kind)


@pytest.mark.parametrize('kind', ['mask_other_size', 'mask_label_values'])
def test_bad_mask_fails_and_skips(kind, category, work, capsys):
    cat = category_copy(category, work, kind)
    name, says, todo = mask_problem(kind, cat)
    out = work / 'out' / f'eval_{kind}'
    rc, _, err = run(capsys, 'evaluate', cat, *EVAL, '-o', out)
    assert_clean_failure(rc, err, name, says, todo, out)
    rc, stdout, err = run(capsys, 'evaluate', cat, *EVAL, '--skip-bad', '-o', out)
    assert rc == 0, err
    assert err.count('\n') == 1 and f"skipped {cat / 'test' / 'spot' / '000.png'}" in err, err
    (row,) = list(csv.DictReader(open(out / 'skipped.csv')))
    assert row['category'] == 'synth' and row['image'] == str(cat / 'test' / 'spot' / '000.png') and says in row['reason']
    assert json.loads((out / 'metrics.json').read_text())['categories']['synth']['image_auroc'] is not None


def test_missing_mask_means_image_metrics_only(category, work, capsys):
    "A defect image without a mask is evaluated: image metrics on every image, pixel metrics on the masked ones, a note."
    cat = category_copy(category, work, 'missing_mask')
    (cat / 'ground_truth' / 'spot' / '000_mask.png').unlink()
    out = work / 'out' / 'eval_missing_mask'
    rc, stdout, err = run(capsys, 'evaluate', cat, *EVAL, '-o', out)
    assert rc == 0 and err == '', err
    m = json.loads((out / 'metrics.json').read_text())['categories']['synth']
    assert m['n_masked'] == m['n_defect'] - 1 and m['image_auroc'] is not None and m['pixel_auroc'] is not None
    assert f"{m['n_defect'] - 1} of {m['n_defect']} defect images have masks" in stdout, stdout


def test_soft_mask_is_read_by_the_half_rule(category, work, capsys):
    "An anti-aliased (non-binary) mask is valid: values >= 128 are defect; evaluate runs."
    cat = category_copy(category, work, 'soft_mask')
    mask = cat / 'ground_truth' / 'spot' / '000_mask.png'
    a = np.asarray(Image.open(mask)).copy(); a[a == 0] = 40; a[:2] = 130
    Image.fromarray(a).save(mask)
    rc, _, err = run(capsys, 'evaluate', cat, *EVAL)
    assert rc == 0 and err == '', err


# ---------------------------------------------------------------- --skip-bad in predict

def test_predict_skip_bad_lists_every_bad_file(model, category, work, capsys):
    folder = work / 'bad' / 'skip_all'
    shutil.copytree(category / 'test' / 'good', folder)
    bad = [make_bad(k, folder) for k in BAD_FILES if k != 'missing_file']
    out = work / 'out' / 'skip_all'
    thumbs = folder / 'Thumbs.db'  # not listed from the folder (no image extension), so named on the command line too
    rc, stdout, err = run(capsys, 'predict', model, folder, thumbs, '--skip-bad', '-q', '-o', out)
    assert rc == 0, err
    assert 'Traceback' not in err and err.count('\n') == len(bad), err
    skipped = {r['image']: r['reason'] for r in csv.DictReader(open(out / 'skipped.csv'))}
    assert set(skipped) == {str(p) for p in bad}
    for p in bad: assert f'skipped {p}: ' in err
    scored = [r['image'] for r in csv.DictReader(open(out / 'scores.csv'))]
    assert scored == [str(folder / p.name) for p in sorted((category / 'test' / 'good').glob('*.png'))]
    assert f'skipped {len(bad)}' in stdout


def test_evaluate_skip_bad_test_image(category, work, capsys):
    cat = category_copy(category, work, 'skip_eval')
    bad = make_bad('truncated_png', cat / 'test' / 'good')
    out = work / 'out' / 'skip_eval'
    rc, _, err = run(capsys, 'evaluate', cat, *EVAL, '-o', out)
    assert_clean_failure(rc, err, bad, 'truncated', '--skip-bad', out)
    rc, _, err = run(capsys, 'evaluate', cat, *EVAL, '--skip-bad', '-o', out)
    assert rc == 0 and str(bad) in err and (out / 'metrics.csv').is_file()


# ---------------------------------------------------------------- detector robustness

def test_nan_features_fail_naming_the_weights(category, weights, work, capsys):
    "Weights holding NaN (a damaged download) give NaN features: fit refuses them and names the weights file."
    from safetensors.torch import load_file, save_file
    sd = load_file(str(weights)); sd['conv1.weight'][0, 0, 0, 0] = float('nan')
    nan_weights = work / 'r18_nan.safetensors'; save_file(sd, str(nan_weights))
    out = work / 'out' / 'nan_model'
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', nan_weights, '-o', out)
    assert_clean_failure(rc, err, nan_weights, 'NaN or inf features', 're-download or re-export', out)


@pytest.mark.parametrize('detector', ['gaussian', 'padim', 'knn'])
def test_identical_training_images(detector, weights, work, capsys):
    "All-identical good images: a singular covariance; fitting works and scores are finite."
    folder = work / 'identical'
    if not folder.exists():
        folder.mkdir()
        for i in range(5): Image.fromarray(noise()).save(folder / f'{i}.png')
    model, out = work / f'identical_{detector}', work / 'out' / f'identical_{detector}'
    rc, _, err = run(capsys, 'fit', folder, *FAST, '--weights', weights, '--detector', detector, '--holdout', '0.2', '-o', model)
    assert rc == 0, err
    Image.fromarray(noise(seed=5)).save(work / 'other.png')
    rc, _, err = run(capsys, 'predict', model, folder / '0.png', work / 'other.png', '-q', '-o', out)
    assert rc == 0, err
    scores = [float(r['score']) for r in csv.DictReader(open(out / 'scores.csv'))]
    assert np.isfinite(scores).all() and scores[0] < scores[1], scores  # the training image itself scores lowest


# ---------------------------------------------------------------- damaged model folders

class Payload:
    "A pickle that creates a file when unpickled."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (str(self.marker), 'w'))


def damage(kind: str, d: Path, marker: Path) -> tuple[Path, str]:
    "Damage a copy of a model folder; (file the message must name, what it says)."
    meta = json.loads((d / 'model.json').read_text())
    if kind == 'missing_arrays':
        (d / 'arrays.safetensors').unlink(); return d / 'arrays.safetensors', 'is missing'
    if kind == 'missing_json':
        (d / 'model.json').unlink(); return d / 'model.json', 'is missing'
    if kind == 'wrong_shapes':
        meta['arrays']['mean']['shape'] = [3]
        (d / 'model.json').write_text(json.dumps(meta)); return d / 'arrays.safetensors', 'expected float64[3]'
    if kind == 'wrong_version':
        meta['format_version'] = 99
        (d / 'model.json').write_text(json.dumps(meta)); return d / 'model.json', 'format version 99'
    if kind == 'pickle_payload':
        (d / 'arrays.safetensors').write_bytes(pickle.dumps(Payload(marker))); return d / 'arrays.safetensors', 'not a valid safetensors'
    raise ValueError(kind)


@pytest.mark.parametrize('kind', ['missing_arrays', 'missing_json', 'wrong_shapes', 'wrong_version', 'pickle_payload'])
def test_damaged_model(kind, model, category, work, capsys):
    d = work / 'damaged' / kind
    shutil.copytree(model, d)
    marker = work / f'pwned_{kind}'
    name, says = damage(kind, d, marker)
    out = work / 'out' / f'damaged_{kind}'
    rc, _, err = run(capsys, 'predict', d, category / 'test' / 'good', '-q', '-o', out)
    assert_clean_failure(rc, err, name, says, 'fit', out)
    assert not marker.exists()  # the pickle was never run


# ---------------------------------------------------------------- never lose work

def test_interrupted_predict_leaves_no_half_file(model, category, work, capsys, monkeypatch):
    "Ctrl-C while the third map is written: every row of scores.csv has its files, no .part file; a rerun resumes and completes."
    out = work / 'out' / 'interrupted_predict'
    real, calls = np.save, []
    def save_then_interrupt(f, arr, **kw):
        calls.append(1)
        if len(calls) == 3: f.write(b'\x93NUMPY half'); raise KeyboardInterrupt
        real(f, arr, **kw)
    monkeypatch.setattr(cli.np, 'save', save_then_interrupt)
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'good', category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 130 and 'interrupted' in err
    monkeypatch.setattr(cli.np, 'save', real)
    rows = list(csv.DictReader(open(out / 'scores.csv')))
    assert len(rows) == 2 and not list(out.rglob('*.part')) and not (out / '.anomaly_nb.lock').exists()
    maps = sorted((out / 'maps').glob('*.npy'))
    assert [m.name for m in maps] == sorted(Path(r['map']).name for r in rows)  # a row for every map, a map for every row
    assert all(np.isfinite(np.load(m, allow_pickle=False)).all() for m in maps)
    rc, stdout, err = run(capsys, 'predict', model, category / 'test' / 'good', category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 0 and len(list(csv.DictReader(open(out / 'scores.csv')))) == 3 and '2 already done' in stdout, stdout


def test_interrupted_fit_keeps_no_partial_model(category, weights, work, capsys, monkeypatch):
    import safetensors.numpy
    out = work / 'out' / 'interrupted_fit' / 'model'
    def half_then_interrupt(arrays, path, *a, **kw): Path(path).write_bytes(b'half'); raise KeyboardInterrupt
    monkeypatch.setattr(safetensors.numpy, 'save_file', half_then_interrupt)
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'gaussian', '-o', out)
    assert rc == 130
    assert not out.exists() and list(out.parent.iterdir()) == []  # no model, no temporary folder
    monkeypatch.undo()
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'gaussian', '-o', out)
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == ['arrays.safetensors', 'model.json']


def test_interrupted_report_leaves_no_half_report(model, category, work, capsys, monkeypatch):
    import anomaly_nb.core as core  # every file is renamed into place by core.atomic_file
    out = work / 'out' / 'interrupted_report'
    real = core.os.replace
    def interrupt(src, dst):
        if str(dst).endswith('report.html'): raise KeyboardInterrupt
        return real(src, dst)
    monkeypatch.setattr(core.os, 'replace', interrupt)
    rc, _, _ = run(capsys, 'report', model, category, '-q', '-o', out)
    assert rc == 130 and not (out / 'report.html').exists()
    assert not [p for p in out.iterdir() if p.name.startswith('.') and p.name != '.anomaly_nb']  # no temporary file; the folder's marker
    monkeypatch.undo()
    rc, _, err = run(capsys, 'report', model, category, '-q', '-o', out)
    assert rc == 0 and (out / 'report.html').stat().st_size > 0, err


# ---------------------------------------------------------------- deterministic

def sha(p: Path) -> str: return hashlib.sha256(p.read_bytes()).hexdigest()


def test_same_inputs_same_results(category, weights, work, capsys):
    "Two fits with the same seed write identical model files; two predictions identical scores; another seed differs."
    args = [*FAST, '--weights', str(weights), '--detector', 'knn', '--option', 'max_bank=20', '--holdout', '0.34']
    for name, seed in [('a', 7), ('b', 7), ('c', 8)]:
        assert cli.main(['fit', str(category), *args, '--seed', str(seed), '-o', str(work / f'det_{name}')]) == 0
        assert cli.main(['predict', str(work / f'det_{name}'), str(category / 'test' / 'good'), str(category / 'test' / 'spot'),
                         '-q', '-o', str(work / f'pred_{name}')]) == 0
    capsys.readouterr()
    a, b, c = (work / f'det_{n}' for n in 'abc')
    assert sha(a / 'arrays.safetensors') == sha(b / 'arrays.safetensors')
    assert (a / 'model.json').read_text() == (b / 'model.json').read_text()
    assert sha(a / 'arrays.safetensors') != sha(c / 'arrays.safetensors')  # --seed reaches the kNN bank
    assert json.loads((a / 'model.json').read_text())['detector']['seed'] == 7
    pa, pb = (work / f'pred_{n}' / 'scores.csv' for n in 'ab')
    assert pa.read_text() == pb.read_text()  # bit-identical scores, as printed with 6 digits ...
    for m in (work / 'pred_a' / 'maps').glob('*.npy'):  # ... and the maps, to the last bit
        assert np.array_equal(np.load(m), np.load(work / 'pred_b' / 'maps' / m.name))


# ---------------------------------------------------------------- backbone name and weights file

def test_unknown_backbone_names_close_matches(category, work, capsys):
    out = work / 'typo_model'
    rc, _, err = run(capsys, 'fit', category, '--backbone', 'resnet_18', '--weights', 'random', '-q', '-o', out)
    assert_clean_failure(rc, err, "'resnet_18'", 'timm has no model', 'did you mean resnet18', out)


def test_missing_weights_file_says_what_to_do(category, work, capsys):
    out, missing = work / 'no_weights_model', work / 'not_there.safetensors'
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', missing, '-o', out)
    assert_clean_failure(rc, err, missing, 'weights file not found', 'Check the path', out)


# ---------------------------------------------------------------- never destroy a user's files (issue 17)

def tree(d: Path) -> list:
    return sorted((str(p.relative_to(d)), p.read_bytes() if p.is_file() else None) for p in d.rglob('*'))


@pytest.mark.parametrize('target', ['data_folder', 'category_itself', 'parent_of_category', 'a_file', 'a_symlink'])
def test_fit_never_replaces_what_is_not_a_model(target, category, weights, work, capsys):
    "-o pointing at someone's folder, the data, its parent, a file or a link: refused before any work, nothing changed."
    base = work / 'keep' / target
    base.mkdir(parents=True)
    cat = Path(shutil.copytree(category, base / 'cat'))
    (base / 'notes.txt').write_text('my notes')
    out = {'data_folder': base, 'category_itself': cat, 'parent_of_category': base, 'a_file': base / 'notes.txt',
           'a_symlink': base / 'link'}[target]
    if target == 'a_symlink': out.symlink_to(cat)
    before = tree(base)
    rc, _, err = run(capsys, 'fit', cat, *FAST, '--weights', weights, '--detector', 'gaussian', '-o', out)
    assert rc == 1 and err.count('\n') == 1 and 'Traceback' not in err, err
    assert any(w in err for w in ('nothing was changed', 'existing file', 'symbolic link')), err
    assert tree(base) == before  # not one file changed, moved or hidden


def test_fit_replaces_its_own_model_and_ignores_old_leftovers(category, weights, work, capsys):
    out = work / 'own' / 'm'
    (work / 'own').mkdir(); (work / 'own' / '.m.old').mkdir()  # a leftover of an older version's interrupted save
    for _ in range(2):
        rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'gaussian', '-o', out)
        assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ['arrays.safetensors', 'model.json']


@pytest.mark.parametrize('command', ['evaluate', 'report', 'demo'])
def test_other_commands_never_write_into_someones_folder(command, model, category, work, capsys):
    base = work / 'keep_cmd' / command; base.mkdir(parents=True); (base / 'notes.txt').write_text('mine')
    args = {'evaluate': ['evaluate', category, *EVAL, '-o', base], 'report': ['report', model, category, '-q', '-o', base],
            'demo': ['demo', *EVAL, '-o', base]}[command]
    rc, _, err = run(capsys, *args)
    assert rc == 1 and 'nothing was changed' in err and err.count('\n') == 1, err
    assert sorted(p.name for p in base.iterdir()) == ['notes.txt']


def test_predict_names_never_collide(model, work, capsys):
    "x.png in two folders and a real x_2.png: three maps, three rows, each pointing at its own files."
    src = work / 'collide'
    for sub in ('a', 'b'):
        (src / sub).mkdir(parents=True); Image.fromarray(noise(seed=len(sub))).save(src / sub / 'x.png')
    Image.fromarray(noise(seed=9)).save(src / 'a' / 'x_2.png')
    out = work / 'out' / 'collide'
    rc, _, err = run(capsys, 'predict', model, src / 'a' / 'x.png', src / 'b' / 'x.png', src / 'a' / 'x_2.png', '-q', '-o', out)
    assert rc == 0, err
    rows = list(csv.DictReader(open(out / 'scores.csv')))
    assert len({r['map'] for r in rows}) == 3 and len({r['overlay'] for r in rows}) == 3
    assert len(list((out / 'maps').iterdir())) == 3


def test_a_second_run_into_a_folder_in_use_is_refused(model, category, work, capsys):
    import subprocess, sys
    out = work / 'out' / 'in_use'
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 0, err
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])  # a live process holding the lock
    try:
        (out / '.anomaly_nb.lock').write_text(str(other.pid))
        rc, _, err = run(capsys, 'predict', model, category / 'test' / 'good', '-q', '-o', out)
        assert rc == 1 and f'in use by another anomaly-nb run (process {other.pid})' in err, err
    finally: other.kill(); other.wait()
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'good', '-q', '-o', out)  # a dead holder's lock is taken over
    assert rc == 0, err


def test_predict_refuses_to_mix_models_and_keeps_every_map_listed(model, category, weights, work, capsys):
    out = work / 'out' / 'mixed_models'
    other = work / 'other_model'
    assert run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'padim', '-o', other)[0] == 0
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'good', category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 0, err
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'spot', '-q', '-o', out)  # a rerun with fewer images
    assert rc == 0, err
    listed = {Path(r['map']).name for r in csv.DictReader(open(out / 'scores.csv'))}
    assert listed == {p.name for p in (out / 'maps').iterdir()}  # no map without its row
    rc, _, err = run(capsys, 'predict', other, category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 1 and 'another model' in err, err


def test_sigterm_leaves_no_partial_files_and_a_rerun_completes(model, category, work):
    "kill (SIGTERM) in the middle of predict: no .part file, no lock; the rerun resumes to the full result."
    import signal, subprocess, sys, time
    src = work / 'many'; src.mkdir(exist_ok=True)
    for i in range(40): Image.fromarray(noise(seed=i)).save(src / f'{i:02d}.png')
    out = work / 'out' / 'sigterm'
    cmd = [sys.executable, '-c', 'import sys; from anomaly_nb.cli import main; sys.exit(main(sys.argv[1:]))',
           'predict', str(model), str(src), '-q', '--score-batch', '4', '-o', str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(600):
        if (out / 'maps').is_dir() and len(list((out / 'maps').glob('*.npy'))) >= 4: break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert not list(out.rglob('*.part')) and not (out / '.anomaly_nb.lock').exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = list(csv.DictReader(open(out / 'scores.csv')))
    assert len(rows) == 40 and len({r['image'] for r in rows}) == 40


# ---------------------------------------------------------------- never pass a defect silently (issue 17)

@pytest.mark.parametrize('args, says', [(['--fpr', '0'], 'fpr must be'), (['--fpr', '-1'], 'fpr must be'), (['--fpr', 'nan'], 'fpr must be'),
                                        (['--holdout', '-0.5'], 'holdout must be'), (['--size', '0'], 'size must be'),
                                        (['--device', 'bogus'], "unknown device 'bogus'"), (['--option', 'kk=3'], "does not take the options ['kk']"),
                                        (['--option', 'pooled=true'], "does not take the options ['pooled']"),
                                        (['--detector', 'pyod.iforest.IForest'], 'cannot be saved, so fit would be wasted')])
def test_bad_numbers_and_options_fail_at_once(args, says, category, weights, work, capsys):
    out = work / 'out' / 'bad_option'
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'gaussian', *args, '-o', out)
    assert rc == 1 and says in err and err.count('\n') == 1 and 'Traceback' not in err, err
    assert not out.exists()


def test_cuda_without_a_gpu_is_one_line(category, weights, work, capsys):
    import torch
    if torch.cuda.is_available(): pytest.skip('this machine has CUDA')
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--device', 'cuda', '-o', work / 'out' / 'cuda')
    assert rc == 1 and 'CUDA is not available' in err and err.count('\n') == 1, err


def test_other_weights_are_refused_unless_accepted(model, category, work, capsys):
    import timm, torch
    from safetensors.torch import save_file
    torch.manual_seed(1)
    other = work / 'r18_other.safetensors'; save_file(timm.create_model('resnet18').state_dict(), str(other))
    # (`--weights random` is refused the same way; here it would draw, with the model's seed 0, the very parameters of the
    # `weights` fixture, which were made with seed 0, and be rightly accepted: the check compares parameters, not names)
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'spot', '--weights', other, '-q', '-o', work / 'out' / 'other_w')
    assert rc == 1 and 'differ from those the model was fitted with' in err and '--other-weights' in err, err
    rc, _, err = run(capsys, 'predict', model, category / 'test' / 'spot', '--weights', other, '--other-weights', '-q',
                     '-o', work / 'out' / 'other_w_ok')
    assert rc == 0, err


def test_disk_full_while_saving_is_one_line(category, weights, work, capsys, monkeypatch):
    import safetensors.numpy
    from safetensors import SafetensorError
    def full(*a, **kw): raise SafetensorError('Error while serializing: IoError(No space left on device)')
    monkeypatch.setattr(safetensors.numpy, 'save_file', full)
    out = work / 'out' / 'disk_full' / 'm'
    rc, _, err = run(capsys, 'fit', category, *FAST, '--weights', weights, '--detector', 'gaussian', '-o', out)
    assert rc == 1 and 'is the disk full' in err and err.count('\n') == 1, err
    assert not out.exists() and not list(out.parent.iterdir())


@pytest.fixture(scope='session')
def models(work, weights, category) -> dict:
    "Small saved models of each detector kind, to damage by hand."
    out = {}
    for name, args in [('padim', ['--detector', 'padim']), ('knn', ['--detector', 'knn', '--option', 'max_bank=50']),
                       ('knn_ivf', ['--detector', 'knn', '--option', 'bank=null', '--option', 'index="ivf"', '--option', 'nlist=2']),
                       ('lunar', ['--detector', 'lunar', '--option', 'max_samples=200', '--option', 'n_epochs=2'])]:
        assert cli.main(['fit', str(category), *FAST, '--weights', str(weights), *args, '-o', str(work / f'hand_{name}')]) == 0, name
        out[name] = work / f'hand_{name}'
    return out


def edit(d: Path, change):
    meta = json.loads((d / 'model.json').read_text()); change(meta); (d / 'model.json').write_text(json.dumps(meta))


def edit_arrays(d: Path, change):
    from safetensors.numpy import load_file, save_file
    a = load_file(str(d / 'arrays.safetensors')); change(a); save_file(a, str(d / 'arrays.safetensors'))
    edit(d, lambda m: m.__setitem__('arrays', {k: dict(shape=list(v.shape), dtype=str(v.dtype)) for k, v in a.items()}))


HAND_EDITS = {
    'no_size': ('padim', lambda d: edit(d, lambda m: m['config'].pop('size')), "lacks ['size']"),
    'threshold_string': ('padim', lambda d: edit(d, lambda m: m.__setitem__('threshold', '12')), 'not a finite number'),
    'threshold_list': ('padim', lambda d: edit(d, lambda m: m.__setitem__('threshold', [1, 2])), 'not a finite number'),
    'weights_null': ('padim', lambda d: edit(d, lambda m: m['weights'].__setitem__('source', None)), 'not on this machine'),
    'sigma_huge': ('padim', lambda d: edit(d, lambda m: m['config'].__setitem__('sigma', 1e6)), 'blurs over'),
    'size_huge': ('padim', lambda d: edit(d, lambda m: m['config'].__setitem__('size', [30000, 30000])), 'above 4096'),
    'padim_rows': ('padim', lambda d: edit_arrays(d, lambda a: a.__setitem__('W', a['W'][:, :5, :5].copy())), 'bad model description'),
    'padim_nan_cov': ('padim', lambda d: edit_arrays(d, lambda a: a['W'].__setitem__((0, 0, 0), np.nan)), 'NaN or infinite'),
    'padim_inf_mean': ('padim', lambda d: edit_arrays(d, lambda a: a['mean'].__setitem__((0, 0), np.inf)), 'NaN or infinite'),
    'knn_bank_1d': ('knn', lambda d: edit_arrays(d, lambda a: a.__setitem__('bank', a['bank'].reshape(-1).copy())), 'bad model description'),
    'faiss_random_bytes': ('knn_ivf', lambda d: edit_arrays(d, lambda a: a.__setitem__('index', np.random.default_rng(0).integers(0, 255, a['index'].shape).astype(np.uint8))), 'bad model description'),
    'lunar_array_missing': ('lunar', lambda d: edit_arrays(d, lambda a: a.pop('neigh_X')), 'bad model description'),
    'lunar_neighbours_1e9': ('lunar', lambda d: edit(d, lambda m: m['detector']['lunar'].__setitem__('n_neighbours', 10**9)), 'n_neighbours'),
}


@pytest.mark.parametrize('kind', list(HAND_EDITS))
def test_hand_edited_model_is_one_line(kind, models, category, work, capsys):
    name, change, says = HAND_EDITS[kind]
    d = work / 'hand' / kind
    shutil.copytree(models[name], d)
    change(d)
    out = work / 'out' / f'hand_{kind}'
    rc, _, err = run(capsys, 'predict', d, category / 'test' / 'spot', '-q', '-o', out)
    assert rc == 1 and says in err and err.count('\n') == 1 and 'Traceback' not in err, err
    assert not out.exists()


def test_odd_file_names_are_scored(model, work, capsys):
    "A non-UTF-8 file name and a 252-character one: scored, with file-system-safe output names."
    import os
    src = work / 'odd_names'; src.mkdir(exist_ok=True)
    odd = [os.fsdecode(b'bad\xff.png'), 'n' * 248 + '.png']
    for i, n in enumerate(odd): Image.fromarray(noise(seed=i)).save(src / n)
    out = work / 'out' / 'odd_names'
    rc, _, err = run(capsys, 'predict', model, src, '-q', '-o', out)
    assert rc == 0, err
    text = (out / 'scores.csv').read_bytes().decode('utf-8', errors='surrogateescape')
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(Path(r['image']).name for r in rows) == sorted(odd)
    assert all((out / r['map']).is_file() and (out / r['overlay']).is_file() for r in rows)
