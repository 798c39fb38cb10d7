#!/usr/bin/env python
"""The default segmenter recipe against the one it replaced, on the shared real data: does a default run collapse?

    python bench/recipe.py [DATA] [--out DIR] [--seeds 0 1 2] [--tasks ixi ct] [--device cpu|cuda] [--reuse | --no-train]

DATA is the shared data folder (default `$MEDSEG_DATA`). Two tasks, each trained with `medseg train supervised` as
the README gives it:

* `ixi`: the 10 IXI brains of `bench/splits/ixi_train10.txt` (2 of them validate), two classes (ventricles = DLMUSE
  51 + 52, hippocampus = 47 + 48), `--size 96`, the default 50 epochs; `model.pt` is then scored on the 30 brains of
  `bench/splits/ixi_test30.txt` (never used for training or model selection) with `medseg predict` + `medseg evaluate`.
* `ct`: the shared CT liver cases (`ct/*_ct`, `*_liver`: tsA, tsB, dcmqiC; one of them validates), `--preprocess ct`,
  the default 128 px and 50 epochs. Too few scans for a test set: its figures are the validation's. `ct3`: the same
  with `--spacing 3` (every slice at 3 mm pixels: the scans' pixels are 0.8 to 3 mm, so resized slices show the
  liver at three different scales).

Two recipes: `new` (the default: Dice + cross-entropy, poly learning-rate decay, gradient clipping at 12) on every
seed, and `old` (`--loss batch-dice --schedule constant --clip 0`: medseg's earlier default) on the first seed. A run
*collapsed* when it ends with a validation Dice by volume of 0 after having been above 0 (every validation mask
empty: the `model.pt` of the earlier default, which kept the last epoch); `empty_epochs` counts the epochs of 0 on the
way, collapses it recovered from. For the old recipe the last epoch
(what `model.pt` held before `--select best`) is scored on the test brains too.

CPU: about 2 h 45 min per IXI run and 1 h per CT run with one thread on a loaded 2-core machine (runs in parallel);
a GPU runs the same settings in minutes. Writes the run folders and `summary.csv` under `--out` (default
`bench/out/recipe`) and ends with one JSON line; `target_met`: no run of the new recipe collapsed, and every seed's
`model.pt` reaches a test Dice of at least 0.8 (ventricles) and 0.6 (hippocampus) — issue 20's bar.
"""
import argparse, json, os, sys, warnings
from pathlib import Path

warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import numpy as np
import pandas as pd

CLASSES = 'ventricles=51+52,hippocampus=47+48'
SPLITS = Path(__file__).parent/'splits'
RECIPES = {'new': {}, 'old': dict(loss='batch-dice', schedule='constant', clip=0.)}
BAR = dict(ventricles=0.8, hippocampus=0.6)


def ids(name): return [l.strip() for l in (SPLITS/name).read_text().splitlines() if l.strip()]


def folder_of(data, names, out):
    "A folder of links to the IXI scans `names` (images in t1/, label maps in labels/), as a user's data folder."
    for sub in ('t1', 'labels'): (out/sub).mkdir(parents=True, exist_ok=True)
    src = Path(data)/'brain_ixi'
    for k in names:
        for sub, f in (('t1', f'{k}.nii.gz'), ('labels', f'{k}_DLMUSE.nii.gz')):
            link = out/sub/f
            if not link.exists(): link.symlink_to((src/sub/f).resolve())
    return out


def empty_epochs(h)->int:
    "Validated epochs whose Dice by volume is 0 (every validation mask empty of a present structure) after it had been above 0."
    d = h['dice'].to_numpy(float); d = d[np.isfinite(d)]
    return int((d[int(np.argmax(d > 0)):] == 0).sum()) if (d > 0).any() else 0


def collapsed(h)->bool:
    "The run ends collapsed: the last epoch's validation Dice is 0 after having been above 0 (what model.pt held before --select best)."
    d = h['dice'].to_numpy(float); d = d[np.isfinite(d)]
    return bool(len(d) and (d > 0).any() and d[-1] == 0)


def last_is_last(run_dir, selected:int, last:int)->bool:
    "Whether `checkpoints/last.pt` holds the last epoch's network (runs made before that fix held the selected epoch's there)."
    import torch
    from medseg.models import load_model
    if selected == last: return True
    a, b = (load_model(run_dir/'checkpoints'/n).state_dict() for n in ('last.pt', 'best.pt'))
    return not all(torch.equal(v, b[k]) for k, v in a.items())


def test_scores(weights, test_dir, data, out):
    "Mean test Dice/HD95 per class of a weights file on the test brains (`medseg predict` + `medseg evaluate`)."
    from medseg.inference import predict_files
    from medseg.evaluate import evaluate_folder
    key, cache = f'{Path(weights).resolve()}:{Path(weights).stat().st_mtime_ns}', Path(out)/'scores.json'
    if cache.is_file() and json.loads(cache.read_text()).get('weights') == key: return json.loads(cache.read_text())['scores']
    predict_files(weights, test_dir, out, overwrite=True)
    ev = evaluate_folder(out, Path(data)/'brain_ixi'/'labels', label_suffix='_DLMUSE', classes=CLASSES, missing='skip')
    res = {}
    for c, g in ev.groupby('class', sort=False):
        h = g.hd95.to_numpy(float)
        res[c] = dict(dice=round(float(g.dice.mean()), 4), dice_std=round(float(g.dice.std()), 4),
                      hd95=round(float(h[np.isfinite(h)].mean()), 3) if np.isfinite(h).any() else None, empty=int((~np.isfinite(h)).sum()))
    tmp = cache.with_suffix('.tmp'); tmp.write_text(json.dumps(dict(weights=key, scores=res))); tmp.replace(cache)   # the same weights are not scored twice
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'), help='the shared data folder (default: $MEDSEG_DATA)')
    ap.add_argument('--out', default='bench/out/recipe', help='where the run folders go (default bench/out/recipe)')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--tasks', nargs='+', default=['ixi', 'ct', 'ct3'], choices=['ixi', 'ct', 'ct3'])
    ap.add_argument('--device', default=None)
    ap.add_argument('--reuse', action='store_true', help='keep run folders that hold a finished run (train only the others)')
    ap.add_argument('--no-train', action='store_true', help='train nothing: report the finished runs, and how far the unfinished ones got')
    args = ap.parse_args(argv)
    if not args.data: sys.exit("give the data folder (or set MEDSEG_DATA)")
    from medseg.runner import train, read_run
    out = Path(args.out).resolve(); out.mkdir(parents=True, exist_ok=True)
    train_dir = folder_of(args.data, ids('ixi_train10.txt'), out/'data'/'ixi_train10')
    test_dir = folder_of(args.data, ids('ixi_test30.txt'), out/'data'/'ixi_test30')/'t1'
    task_kw = dict(ixi=(train_dir/'t1', dict(label_dir=str(train_dir/'labels'), label_suffix='_DLMUSE', classes=CLASSES, size=96)),
                   ct=(Path(args.data)/'ct', dict(image_suffix='_ct', label_suffix='_liver', preprocess='ct')),
                   ct3=(Path(args.data)/'ct', dict(image_suffix='_ct', label_suffix='_liver', preprocess='ct', spacing=3.)))
    rows, report = [], {}
    for task in args.tasks:
        data, kw = task_kw[task]
        for recipe, rk in RECIPES.items():
            for seed in (args.seeds if recipe == 'new' else args.seeds[:1]):
                run_dir = out/f'{task}_{recipe}_s{seed}'
                status = json.loads((run_dir/'config.json').read_text()).get('status') if (run_dir/'config.json').exists() else None
                if args.no_train and status != 'finished':               # report how far an unfinished run got, if it started
                    if (run_dir/'history.csv').exists():
                        h = read_run(run_dir).history
                        rows.append(dict(task=task, recipe=recipe, seed=seed, status=status, epochs=len(h), collapsed=collapsed(h),
                                         empty_epochs=empty_epochs(h), last_valid_dice=round(float(h['dice'].iloc[-1]), 4)))
                        print(json.dumps(rows[-1]), flush=True)
                    continue
                done = (args.reuse or args.no_train) and status == 'finished'
                r = read_run(run_dir) if done else train('supervised', data, run_dir, seed=seed, quiet=True, overwrite=True, device=args.device, **kw, **rk)
                sel, h = r.config['selected'], r.history
                row = dict(task=task, recipe=recipe, seed=seed, status='finished', epochs=len(h), collapsed=collapsed(h), empty_epochs=empty_epochs(h),
                           selected_epoch=sel['epoch'], **{f'valid_{k}': round(float(v), 4) for k, v in sel['figures'].items() if k.startswith('dice')},
                           last_valid_dice=round(float(h['dice'].iloc[-1]), 4))
                if task == 'ixi':
                    row['test'] = test_scores(r.weights, test_dir, args.data, run_dir/'test30')
                    if recipe == 'old' and last_is_last(run_dir, sel['epoch'], int(h.epoch.iloc[-1])):   # runs before the fix kept the selected weights there
                        row['test_last_epoch'] = test_scores(run_dir/'checkpoints'/'last.pt', test_dir, args.data, run_dir/'test30_last')
                rows.append(row)
                print(json.dumps(row), flush=True)
    pd.DataFrame(rows).to_csv(out/'summary.csv', index=False)
    new = [r for r in rows if r['recipe'] == 'new' and r['status'] == 'finished']
    met = all(not r['collapsed'] for r in new) and all(r['test'][c]['dice'] >= b for r in new if 'test' in r for c, b in BAR.items())
    met = met and len(new) == len(args.tasks)*len(args.seeds)                    # every run of the default recipe finished
    print(json.dumps(dict(runs=rows, bar=BAR, target='no collapse of the default recipe; test Dice >= bar for every seed', target_met=met)))


if __name__ == '__main__': main()
