#!/usr/bin/env python
"""AccSeg-Net (Zhou et al.), Tables 1 and 2 on CT -> T2 MR: does the segmenter trained with CT labels only segment MR?

    python bench/reproduce/accseg.py [DATA] [--preset cpu|gpu] [--task liver|organs] [--seeds 3] [--rows ...]
        [--out DIR] [--smoke] [--threads T] [--device cpu|cuda]

Source: the labelled CT of `bench/splits/ct_liver_source9.txt` (6 BTCV copies windowed to 0..255, and the 3 CT liver
cases in HU; all read with the default `--preprocess ct`, which tells the two apart per scan) for the liver;
`btcv_ct6` (BTCV only: the CT liver cases have no kidney or spleen labels) for the four organs. Target: CHAOS T2-SPIR
MR, the 10 scans of `chaos_t2_adapt10` (their labels unused, except by the upper bound) for adaptation, the 4 of
`chaos_t2_test4` for testing only (never trained on, pretrained on or used for model selection: every run selects
its epoch on its own training data's validation scans).

Rows, as in the paper (each run through `medseg.runner.train`, the Python form of `medseg train`, then
`medseg predict` + `medseg evaluate` on the test scans):

* source-only: `medseg train supervised` on the CT, applied to the MR with `--preprocess mr` (the lower bound);
* -PCT: `medseg train accseg ... --weights nce=0` (no PatchNCE);
* -MIND/CC: `--weights mind=0,cc=0` (no anatomy constraint);
* AccSeg: `medseg train accseg` with its default weights;
* Seg_MRI*: `medseg train supervised` on the 10 adaptation MR with their labels (the upper bound).

Presets: `cpu` (64 x 64 slices at 5.25 mm, narrow networks, AccSeg 4 + 4 epochs, 3 seeds; about 60 minutes on 2
cores), `gpu` (128 x 128 at 2.625 mm, the paper's widths, 25 + 25 epochs; sized for one H100 in about an hour,
dry-run here only: `--preset gpu --dry-run`). `--dry-run`: the preset's sizes on 2 + 2 + 1 scans, one batch per fit. `--smoke`: 2 source scans (a BTCV copy and a CT in HU), 2 target scans, 1 test scan, 1 + 1 epochs at 32 x 32 (the regression test).

Writes `--out` (default bench/out/reproduce/accseg_PRESET_TASK): `scores.csv` (row, seed, test scan, class, Dice,
ASSD, HD95 mm), `table.csv` / `table.md` (mean ± std over seeds of the per-seed test mean, median over scans and
seeds), `result.json`. The last line printed is one JSON object; `target_met`: AccSeg closes >= 70 % of the liver
Dice gap between source-only and Seg_MRI*, and AccSeg >= -PCT >= source-only.
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arguments, parse, data_folder, split, paths, manifest, organ_table, markdown, score, finish, dataset_pictures, ORGANS, ROOT

ROWS = ('source-only', '-PCT', '-MIND/CC', 'AccSeg', 'Seg_MRI*')
WEIGHTS = {'-PCT': dict(nce=0.), '-MIND/CC': dict(mind=0., cc=0.), 'AccSeg': None}
PRESETS = dict(
    cpu=dict(size=64, spacing=5.25, sizes='cpu', epochs=4, decay_epochs=4, acc_bs=2, sup_epochs=15, sup_bs=8,
             widths=(16, 32, 64, 128), seeds=3),
    gpu=dict(size=128, spacing=2.625, sizes='paper', epochs=25, decay_epochs=25, acc_bs=4, sup_epochs=100, sup_bs=16,
             widths=(32, 64, 128, 256, 512), seeds=3))
SMOKE = dict(size=32, spacing=10.5, epochs=1, decay_epochs=1, sup_epochs=2)   # --smoke: the regression test (same field of view)


def run_row(row, seed, P, src, tgt, test, spec, out, device, steps=None):
    "Train one row's model (as the documented command would; `steps`: stop each fit after that many batches) and score it on the test scans."
    from medseg.runner import train
    from medseg.label_efficiency import StopAfter
    common = dict(size=P['size'], spacing=P['spacing'], seed=seed, quiet=True, overwrite=True, device=device,
                  callbacks=[StopAfter(steps)] if steps else None, **spec)
    d = out/'runs'/f"{row.replace('/', '').replace('*', '').replace('-', 'no-').lower()}_s{seed}"
    t0 = time.perf_counter()
    if row == 'source-only':
        r = train('supervised', src, d, preprocess='ct', epochs=P['sup_epochs'], bs=P['sup_bs'], widths=P['widths'], **common)
        kw = dict(preprocess='mr')     # the CT segmenter applied to MR, intensities scaled as the MR branch of AccSeg does
    elif row == 'Seg_MRI*':
        r = train('supervised', tgt, d, preprocess='mr', epochs=P['sup_epochs'], bs=P['sup_bs'], widths=P['widths'], **common)
        kw = {}
    else:
        r = train('accseg', src, d, target=str(tgt), epochs=P['epochs'], decay_epochs=P['decay_epochs'], bs=P['acc_bs'],
                  sizes=P['sizes'], weights=WEIGHTS[row], **common)
        kw = {}
    secs = time.perf_counter() - t0
    df = score(r.out/'model.pt', test, d/'test_pred', labels=spec.get('labels'), classes=spec.get('classes'), device=device, **kw)
    sel = r.config.get('selected') or {}
    return df.assign(row=row, seed=seed, seconds=secs, epoch=sel.get('epoch'))


def run_rows(a, P, data, src_ids, tgt_ids, test_ids, seeds, out):
    "Every row for every seed; scores.csv rewritten after each."
    import pandas as pd
    src, tgt, test = (manifest(data, ids, out/'manifests'/f'{n}.csv') for n, ids in (('source', src_ids), ('target', tgt_ids), ('test', test_ids)))
    dataset_pictures(data, src_ids + tgt_ids, out)   # a wrong header shows here, before anything trains
    spec = dict(labels='1') if a.task == 'liver' else dict(classes=ORGANS)
    rows, t0 = [], time.perf_counter()
    for seed in seeds:
        for row in a.rows:
            df = run_row(row, seed, P, src, tgt, test, spec, out, a.device, steps=1 if a.dry_run else None)
            rows.append(df)
            print(f"[{time.perf_counter() - t0:6.0f} s] {row} seed {seed}: test Dice "
                  + ', '.join(f"{c} {g.dice.mean():.3f}" for c, g in df.groupby('class')), flush=True)
            pd.concat(rows).to_csv(out/'scores.csv', index=False)
    return pd.concat(rows, ignore_index=True)


def main(argv=None):
    ap = arguments(__doc__, smoke='2 source, 2 target, 1 test scan, 1 + 1 epochs at 32², 1 seed (the regression test)',
                   dry_run="the preset's sizes, 2 + 2 + 1 scans, one batch per fit: checks that a preset runs (e.g. gpu, before a GPU is lent)")
    ap.add_argument('--task', choices=('liver', 'organs'), default='liver')
    ap.add_argument('--seed-list', type=int, nargs='+', default=None, help='these seeds (e.g. one per process; then --merge)')
    ap.add_argument('--merge', nargs='+', default=None, metavar='DIR', help='train nothing: the table and JSON line of the scores.csv of earlier runs (e.g. one per seed)')
    ap.add_argument('--rows', nargs='+', choices=ROWS, default=list(ROWS))
    a = parse(ap, argv)
    data, P = data_folder(a.data), dict(PRESETS[a.preset]); P.pop('seeds')
    out = Path(a.out or ROOT/'bench'/'out'/'reproduce'/f"accseg_{a.preset}_{a.task}{'_smoke' if a.smoke else '_dry' if a.dry_run else ''}")
    src_ids = split('ct_liver_source9' if a.task == 'liver' else 'btcv_ct6')
    tgt_ids, test_ids = split('chaos_t2_adapt10'), split('chaos_t2_test4')
    assert not set(test_ids) & set(tgt_ids), 'a test scan is in the adaptation split'
    seeds = list(a.seed_list or range(a.seeds or PRESETS[a.preset]['seeds']))
    if a.smoke or a.dry_run:
        src_ids, tgt_ids, test_ids, seeds = src_ids[:2] if a.task == 'organs' else [src_ids[0], src_ids[-1]], tgt_ids[:2], test_ids[:1], [0]
        P.update(SMOKE if a.smoke else dict(epochs=1, decay_epochs=1, sup_epochs=1))
    import pandas as pd
    if a.merge:
        scores = pd.concat([pd.read_csv(Path(d)/'scores.csv') for d in a.merge], ignore_index=True)
        if scores.duplicated(['row', 'seed', 'case', 'class']).any(): sys.exit(f"--merge: the same (row, seed, scan) twice in {a.merge}")
        seeds = sorted(int(v) for v in scores.seed.unique())
        out.mkdir(parents=True, exist_ok=True); scores.to_csv(out/'scores.csv', index=False)
    else:
        scores = run_rows(a, P, data, src_ids, tgt_ids, test_ids, seeds, out)
    tab = organ_table(scores, ROWS)
    tab.to_csv(out/'table.csv', index=False)
    md = markdown(tab, ['row', 'class', 'dice', 'dice_median', 'assd', 'hd95', 'hd95_median'])
    (out/'table.md').write_text(md + '\n')
    print(md)
    liver = 'liver' if a.task == 'organs' else 'foreground'
    mean = {r: float(tab[(tab.row == r) & (tab['class'] == liver)].dice_mean.iloc[0]) for r in a.rows
            if ((tab.row == r) & (tab['class'] == liver)).any()}
    have = all(r in mean for r in ('source-only', 'AccSeg', 'Seg_MRI*', '-PCT'))
    gap = (mean['AccSeg'] - mean['source-only'])/(mean['Seg_MRI*'] - mean['source-only']) if have and mean['Seg_MRI*'] != mean['source-only'] else None
    order = have and mean['AccSeg'] >= mean['-PCT'] >= mean['source-only']
    res = dict(bench='reproduce/accseg', preset=a.preset, task=a.task, smoke=a.smoke, dry_run=a.dry_run, seeds=seeds, settings=P,
               source=src_ids, adapt=tgt_ids, test=test_ids, merged=a.merge,
               seconds=round(float(scores.groupby(['row', 'seed']).seconds.first().sum()), 1),   # training time of every row and seed
               liver_dice=mean, liver_dice_per_seed={r: [round(float(v), 4) for v in g.groupby('seed').dice.mean()]
                                                     for r, g in scores[scores['class'] == liver].groupby('row', sort=False)}, gap_closed=None if gap is None else round(gap, 3), ordering_holds=bool(order),
               reference=dict(paper_table1_accseg_mr_liver=0.921, slaug_4organ_chaos_t2=0.886, sifa_4organ=0.854),
               out=str(out), target_met=bool(gap is not None and gap >= 0.7 and order))
    return finish(res, out)


if __name__ == '__main__': main()
