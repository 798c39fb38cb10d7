#!/usr/bin/env python
"""Label-efficiency benchmark: does pretraining on unlabelled scans beat random initialisation with few labels?

    python bench/label_efficiency.py [TRAIN_DIR] [TEST_DIR] [--full] [--out DIR] [--methods M ...] [--seeds K]
        [--ns 1 2 4 8] [--labels 51 52] [--device cuda|cpu] [--threads T]

TRAIN_DIR and TEST_DIR are laid out like `brain_ixi` (`t1/{id}_T1.nii.gz`, `labels/{id}_T1_DLMUSE.nii.gz`);
TRAIN_DIR defaults to `$MEDSEG_DATA/brain_ixi` (`medseg.io.data_dir()`). Without TEST_DIR, 10 scans of TRAIN_DIR
(seeded) are held out for testing. The structure is the lateral ventricles (DLMUSE labels 51 + 52; `--labels`).

Runs `medseg.label_efficiency.label_efficiency`: one pretraining per method on all training scans (labels unused;
PolyCL-O uses the slice-level organ-present flags), then per seed and N = 1, 2, 4, 8 a fine-tuning on the same N
labelled training scans for every method (fixed number of steps), scored on every test scan (3D Dice, HD95 in mm) on
the central slab of axial slices. Default settings `CPU_SETTINGS` (64² slices, narrow U-Net, 3 seeds; 16
minutes on 2 cores); `--full`: `FULL_SETTINGS` (128², the papers' widths, longer schedules, all the
paper's fine-tuning augmentations, 3 seeds) for a GPU: 14 minutes on one H100, e.g. in two calls
(`--methods random simclr polycl-s`, `--methods polycl-o masked contrastive`) merged with `--from-csv`.

Writes to `--out` (default `bench/out/label_efficiency`): `label_efficiency.csv` (one row per method, N, seed and
test scan), `summary_dice.csv` and `summary_hd95.csv` (mean ± std over seeds), `label_efficiency.png` (Dice vs N).
The last line printed is one JSON object: per method the mean test Dice at N = 1 and N = 2 (the reference is random
init), and `target_met` = some pretraining method beats random initialisation at N = 1. It also reports whether the
PolyCL ordering PolyCL-O >= PolyCL-S >= SimCLR holds at N = 1 and N = 2 (reported, not part of the target).
"""
import argparse, json, os, sys, time, warnings
from pathlib import Path

warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import torch

from medseg.io import data_dir
from medseg.label_efficiency import (LE_METHODS, CPU_SETTINGS, FULL_SETTINGS, load_folder, split_train_test,
                                     label_efficiency, summarize, mean_dice, plot_label_efficiency)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('train_dir', nargs='?', default=None, help='training folder (default: $MEDSEG_DATA/brain_ixi)')
    ap.add_argument('test_dir', nargs='?', default=None, help='test folder (default: hold out 10 training scans)')
    ap.add_argument('--full', action='store_true', help='FULL_SETTINGS (GPU): 128², paper widths, longer schedules')
    ap.add_argument('--out', default=None, help='output folder (default bench/out/label_efficiency[_full])')
    ap.add_argument('--methods', nargs='+', default=list(LE_METHODS), choices=LE_METHODS)
    ap.add_argument('--seeds', type=int, default=None, help='number of seeds (default: the preset\'s)')
    ap.add_argument('--ns', type=int, nargs='+', default=None, help='label budgets (default 1 2 4 8)')
    ap.add_argument('--pre-epochs', type=int, default=None, help="pretraining epochs (default: the preset's)")
    ap.add_argument('--ft-steps', type=int, default=None, help="fine-tuning steps (default: the preset's)")
    ap.add_argument('--from-csv', nargs='+', default=None, metavar='CSV',
                    help='train nothing: summarise, plot and report the label_efficiency.csv files of earlier runs (e.g. one per method group)')
    ap.add_argument('--labels', type=int, nargs='+', default=[51, 52], help='label values of the structure')
    ap.add_argument('--n-test', type=int, default=10, help='scans held out without TEST_DIR')
    ap.add_argument('--device', default=None, help="'cuda' or 'cpu' (default: cuda if available)")
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: all cores)')
    args = ap.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)

    train_dir = Path(args.train_dir) if args.train_dir else data_dir()/'brain_ixi'
    if not args.from_csv and not train_dir.is_dir(): sys.exit(f"no training folder {train_dir} (pass TRAIN_DIR or set MEDSEG_DATA)")
    settings = dict(FULL_SETTINGS if args.full else CPU_SETTINGS)
    if args.seeds: settings['seeds'] = tuple(range(args.seeds))
    if args.ns: settings['ns'] = tuple(args.ns)
    if args.pre_epochs: settings['pre_epochs'] = args.pre_epochs
    if args.ft_steps: settings['ft_steps'] = args.ft_steps
    out = Path(args.out or Path(__file__).parent/'out'/('label_efficiency_full' if args.full else 'label_efficiency'))
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    if args.from_csv:
        import pandas as pd
        df = pd.concat([pd.read_csv(f) for f in args.from_csv], ignore_index=True)
        dup = df.duplicated(['method', 'n', 'seed', 'scan'])
        if dup.any(): sys.exit(f"{int(dup.sum())} duplicated (method, n, seed, scan) rows in {args.from_csv}")
        settings['seeds'] = tuple(int(v) for v in sorted(df.seed.unique())); settings['ns'] = tuple(int(v) for v in sorted(df.n.unique()))
        n_train, n_test = None, int(df.scan.nunique())
        seconds = float(df.groupby('method').pre_seconds.first().sum() + df.groupby(['method', 'n', 'seed']).ft_seconds.first().sum())
        print(f"{len(df)} rows from {len(args.from_csv)} file(s); methods {sorted(df.method.unique())}", flush=True)
    else:
        train, test = split_train_test(load_folder(train_dir), load_folder(args.test_dir) if args.test_dir else None, args.n_test)
        n_train, n_test = len(train), len(test)
        print(f"{n_train} training scans, {n_test} test scans; settings {settings}", flush=True)
        df = label_efficiency(train, test, labels=tuple(args.labels), methods=tuple(args.methods), device=args.device, **settings)
        seconds = time.perf_counter() - t0

    df.to_csv(out/'label_efficiency.csv', index=False)
    tabs = {m: summarize(df, m) for m in ('dice', 'hd95')}
    for m, tab in tabs.items():
        tab.to_csv(out/f'summary_{m}.csv')
        print(f"\ntest {m} (mean ± std over {len(settings['seeds'])} seeds of the mean over {n_test} test scans)")
        print(tab.to_string())
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_label_efficiency(df, 'dice', axs[0]); plot_label_efficiency(df, 'hd95', axs[1])
    fig.tight_layout(); fig.savefig(out/'label_efficiency.png', dpi=110)

    md = mean_dice(df)
    at = lambda n: {m: round(float(md.loc[m, n]), 4) for m in md.index if n in md.columns}
    n1, n2 = at(1), at(2)
    pre = [m for m in n1 if m != 'random']
    order = lambda d: (all(k in d for k in ('polycl-o', 'polycl-s', 'simclr'))
                       and d['polycl-o'] >= d['polycl-s'] >= d['simclr'])
    res = dict(bench='label_efficiency', train_dir=str(train_dir), test_dir=args.test_dir, n_train=n_train, n_test=n_test, from_csv=args.from_csv,
               preset='full' if args.full else 'cpu', settings={k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
               # with --from-csv: no device, and the seconds are the pretraining + fine-tuning times recorded in the files
               device=None if args.from_csv else args.device or ('cuda' if torch.cuda.is_available() else 'cpu'), seconds=round(seconds, 1),
               dice_n1=n1, dice_n2=n2, reference='random',
               reference_dice=dict(n1=n1.get('random'), n2=n2.get('random')),
               beats_random_n1=[m for m in pre if 'random' in n1 and n1[m] > n1['random']],
               polycl_order_n1=order(n1), polycl_order_n2=order(n2), out=str(out),
               target_met=bool('random' in n1 and any(n1[m] > n1['random'] for m in pre)))
    print(json.dumps(res))
    return res


if __name__ == '__main__': main()
