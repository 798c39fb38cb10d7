"""What the reproductions in `bench/reproduce/` share: the data folder, the committed splits, manifests written from
them, running the documented commands' Python forms, and the tables (per organ: mean ± std over seeds, median).

A split is a committed list of scan ids in `bench/splits/NAME.txt`; `manifest` writes the scans of a split, from the
data folder given on the command line (default `$MEDSEG_DATA`), into a manifest with absolute paths. The committed
`bench/splits/NAME.csv` manifests list the same scans relative to `../shared/data` beside a clone: the README's
commands use those.
"""
from __future__ import annotations
import json, math, os, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))   # run from a checkout without installing
warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import numpy as np, pandas as pd

SPLITS = ROOT/'bench'/'splits'
# dataset -> (subfolder, image suffix, label suffix by task) in the data folder
LAYOUT = {'chaos': ('chaos_t2', '_t2', '_labels'), 'btcv': ('btcv_ct', '_ct', '_labels'), 'ct': ('ct', '_ct', '_liver')}
ORGANS = 'liver=1,rkidney=2,lkidney=3,spleen=4'   # the label values of chaos_t2 and btcv_ct


def data_folder(arg=None)->Path:
    "The data folder: the argument, else `$MEDSEG_DATA` (`medseg.io.data_dir`); exits with one line if it is missing."
    from medseg.io import data_dir
    d = Path(arg) if arg else data_dir()
    if not d.is_dir(): sys.exit(f"no data folder {d}: pass it as the first argument or set MEDSEG_DATA")
    return d

def arguments(doc:str, smoke:str, dry_run:str):
    "The parser of the options every reproduction has: DATA, --preset, --seeds, --out, --smoke, --dry-run, --device, --threads."
    import argparse
    ap = argparse.ArgumentParser(description=doc.split('\n')[0])
    ap.add_argument('data', nargs='?', default=None, help='the data folder (default $MEDSEG_DATA)')
    ap.add_argument('--preset', choices=('cpu', 'gpu'), default='cpu')
    ap.add_argument('--seeds', type=int, default=None, help="number of seeds (default: the preset's, 3)")
    ap.add_argument('--out', default=None, help='output folder (default bench/out/reproduce/...)')
    ap.add_argument('--smoke', action='store_true', help=smoke)
    ap.add_argument('--dry-run', action='store_true', help=dry_run)
    ap.add_argument('--device', default=None, help="'cuda' or 'cpu' (default: cuda if available)")
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: all cores)')
    return ap

def parse(ap, argv):
    "Parse the options and set the torch threads."
    import torch
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    return a

def split(name:str)->list:
    "The scan ids of a committed split `bench/splits/NAME.txt`."
    return [s.strip() for s in (SPLITS/f'{name}.txt').read_text().split() if s.strip()]

def dataset_of(sid:str)->str:
    "Which dataset a scan id belongs to (its prefix; the CT liver cases otherwise)."
    return 'chaos' if sid.startswith('chaos') else 'btcv' if sid.startswith('btcv') else 'ct'

def paths(data:Path, sid:str)->tuple:
    "(image, label) paths of one scan of the shared data."
    sub, isfx, lsfx = LAYOUT[dataset_of(sid)]
    return data/sub/f'{sid}{isfx}.nii.gz', data/sub/f'{sid}{lsfx}.nii.gz'

def scan_paths(data:Path, ids)->dict:
    "id -> (image path, label path) of the scans `ids` of the data folder; exits with one line if one is missing."
    out = {s: paths(data, s) for s in ids}
    for s, ps in out.items():
        for p in ps:
            if not p.is_file(): sys.exit(f"{p} is missing: the data folder {data} does not hold the split's scans")
    return out

def manifest(data:Path, ids, out:Path)->Path:
    "Write a manifest (id, image, label; absolute paths) of the scans `ids` of the data folder; returns its path."
    from medseg.io import atomic_write
    rows = ['id,image,label'] + [f'{s},{im},{lb}' for s, (im, lb) in scan_paths(data, ids).items()]
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp: Path(tmp).write_text('\n'.join(rows) + '\n')
    return out

def check_committed(name:str)->None:
    "The committed manifest bench/splits/NAME.csv lists exactly the scans of NAME.txt (what the README's commands use)."
    m = pd.read_csv(SPLITS/f'{name}.csv')
    if list(m['id']) != split(name): raise AssertionError(f"bench/splits/{name}.csv does not list the scans of {name}.txt")

def stats(v)->dict:
    "mean, std (ddof 1; 0 for one value), median of the finite values."
    v = np.asarray([x for x in v if np.isfinite(x)], float)
    if not len(v): return dict(mean=float('nan'), std=float('nan'), median=float('nan'), n=0)
    return dict(mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0., median=float(np.median(v)), n=int(len(v)))

def organ_table(df:pd.DataFrame, # rows: row, seed, case, class, dice, assd, hd95
                order=None, # row names in table order
                metrics=('dice', 'assd', 'hd95'))->pd.DataFrame:
    "Per row and class: mean ± std over seeds of the per-seed mean over the test scans, and the median over all (scan, seed)."
    out = []
    for (row, cls), g in df.groupby(['row', 'class'], sort=False):
        r = dict(row=row, **{'class': cls}, seeds=int(g.seed.nunique()), scans=int(g.case.nunique()))
        for m in metrics:
            s, a = stats(g.groupby('seed')[m].mean()), stats(g[m])
            fmt = '{:.3f}' if m == 'dice' else '{:.1f}'
            r[m] = f"{fmt.format(s['mean'])} ± {fmt.format(s['std'])}"
            r[f'{m}_median'] = fmt.format(a['median'])
            r[f'{m}_mean'] = s['mean']
        out.append(r)
    t = pd.DataFrame(out)
    if order is not None: t = t.set_index('row').loc[[o for o in order if o in set(t.row)]].reset_index()
    return t

def markdown(t:pd.DataFrame, cols)->str:
    "A markdown table of some columns."
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|'*len(cols)]
    lines += ['| ' + ' | '.join(str(r[c]) for c in cols) + ' |' for _, r in t.iterrows()]
    return '\n'.join(lines)

def reorientation_figure(items, # list of (title, image path, label path)
                         out:Path, # the .png to write
                        )->Path:
    "One labelled axial slice per dataset after medseg's reorientation (canonical RAS, shown radiologically: patient right on the left, anterior up)."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from medseg.io import load_nifti, atomic_write
    fig, axs = plt.subplots(1, len(items), figsize=(3.2*len(items), 3.4))
    for ax, (title, img, lbl) in zip(np.atleast_1d(axs), items):
        x, m = load_nifti(img, canonical=True), load_nifti(lbl, canonical=True)
        z = int(np.argmax((m.array > 0).sum((0, 1))))
        a, l = x.array[:, :, z].astype(float), m.array[:, :, z]
        sx, sy = x.spacing[:2]
        disp = lambda v: np.flipud(v.T)[:, ::-1]   # RAS voxels (i to the right, j anterior) -> rows anterior-up, patient's right on the left
        ax.imshow(disp(a), cmap='gray', aspect=sy/sx, vmin=np.percentile(a, 1), vmax=np.percentile(a, 99))
        ax.contour(disp(l), levels=np.arange(0.5, l.max() + 1), cmap='autumn', linewidths=0.8)
        ax.set_title(f"{title}\nslice {z}, labels {sorted(int(v) for v in np.unique(l) if v)}", fontsize=8); ax.axis('off')
        ax.text(0.02, 0.5, 'R', transform=ax.transAxes, color='y', fontsize=8); ax.text(0.95, 0.5, 'L', transform=ax.transAxes, color='y', fontsize=8)
        ax.text(0.5, 0.93, 'A', transform=ax.transAxes, color='y', fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp: fig.savefig(tmp, dpi=90, format='png')
    plt.close(fig)
    return out

def dataset_pictures(data:Path, ids, out:Path)->Path:
    "`reorientation_figure` of the first scan of each dataset among `ids` (source and target side by side), as out/reorientation.png."
    firsts = {}
    for s in ids: firsts.setdefault(dataset_of(s), s)
    fig = reorientation_figure([(f"{d}: {s}", *paths(data, s)) for d, s in firsts.items()], out/'reorientation.png')
    print(f"reorientation picture: {fig}", flush=True)
    return fig

def score(model, test_manifest:Path, pred_dir:Path, labels=None, classes=None, **predict_kw)->pd.DataFrame:
    "Segment the test scans with a model (`medseg predict`) and score them (`medseg evaluate`): one row per scan and class."
    from medseg.inference import predict_files
    from medseg.evaluate import evaluate_folder
    predict_files(model, test_manifest, pred_dir, overwrite=True, **predict_kw)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return evaluate_folder(pred_dir, test_manifest, labels=labels, classes=classes)

def finish(res:dict, out:Path)->dict:
    "Write result.json and print the one JSON line."
    from medseg.io import atomic_write
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out/'result.json') as tmp: Path(tmp).write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(res), flush=True)
    return res
