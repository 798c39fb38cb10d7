#!/usr/bin/env python
"""Umapathy et al. (Fig. 3A), PolyCL (Fig. 4 / Table 1) and the ACWE network, on real abdominal scans: test Dice
against the number N of labelled training scans.

    python bench/reproduce/label_efficiency.py [DATA] [--task chaos|ct] [--preset cpu|gpu] [--items ssl polycl acwe]
        [--seeds 3] [--out DIR] [--smoke] [--threads T] [--device cpu|cuda]

Each item is one call of `medseg.label_efficiency.label_efficiency` on the same training and test scans:

* `ssl` (Umapathy, Fig. 3A): random init, masked regression, global + local contrast; N = 1, 2, 4, 8;
* `polycl` (PolyCL's reduced-label experiment): random init, SimCLR, PolyCL-S, PolyCL-O; N = 1, 2, 4;
* `acwe` (Chen & Frey's network): unsupervised (`--mode acwe`), joint with N labels, labels only; N = 1, 2.

Tasks (the splits are committed in `bench/splits`; a test scan is never pretrained on, trained on or used to pick
anything: the harness runs fixed schedules, with no model selection):

* `chaos`: CHAOS T2-SPIR MR liver (label 1), training = `chaos_t2_adapt10` (all 10 pretrained on, N of them
  labelled), test = `chaos_t2_test4`; `--preprocess mr`; items ssl, polycl, acwe;
* `ct`: CT liver, training = `ct_liver_train6`, test = `ct_liver_test3` (BTCV copies windowed to 0..255 and CT
  liver cases in HU, both read by `--preprocess ct`, which tells them apart per scan); item polycl.

Every slice of each scan is used (`middle=None`: the liver is not in the central slab of an abdominal scan).
Presets: `cpu` (`CPU_SETTINGS` at 64², 3 seeds; measured here), `gpu` (`FULL_SETTINGS`: 128², the papers' widths,
longer schedules; for one GPU, dry-run here only: `--preset gpu --dry-run`, the preset's sizes on 2 + 1 scans, one epoch
or step per fit). `--smoke`: 2 training scans, 1 test scan, N = 1, 1 seed, 1 epoch
and a few steps on the central 60 % of the slices at 32² (the regression test).

Writes `--out` (default bench/out/reproduce/label_efficiency_PRESET_TASK): `ITEM.csv` (one row per method, N, seed,
test scan), `ITEM_dice.md` / `ITEM_hd95.md` (mean ± std over seeds), `ITEM.png` (Dice vs N), `result.json`. The last
line printed is one JSON object: per item the mean test Dice per method and N, the per-seed differences the papers'
claims rest on, and `target_met` = every claim checked holds (reported per claim in `claims`).
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arguments, parse, data_folder, split, scan_paths, markdown, finish, dataset_pictures, ROOT

ITEMS = dict(ssl=(('random', 'masked', 'contrastive'), (1, 2, 4, 8)),
             polycl=(('random', 'simclr', 'polycl-s', 'polycl-o'), (1, 2, 4)),
             acwe=(('acwe', 'acwe-joint', 'acwe-label'), (1, 2)))
TASKS = dict(chaos=dict(train='chaos_t2_adapt10', test='chaos_t2_test4', preprocess='mr', items=('ssl', 'polycl', 'acwe')),
             ct=dict(train='ct_liver_train6', test='ct_liver_test3', preprocess='ct', items=('polycl',)))


def claims_of(item, md)->dict:
    "The papers' claims on this item, checked on the mean test Dice per method and N (md: method -> {N: Dice})."
    at = lambda m, n: md.get(m, {}).get(n)
    ns = sorted({n for v in md.values() for n in v})
    c = {}
    if item == 'ssl':      # Umapathy: pretraining (either kind) beats random init at small N
        for m in ('masked', 'contrastive'):
            c[f'{m} > random at N=1'] = bool(at(m, 1) is not None and at(m, 1) > at('random', 1))
    if item == 'polycl':   # PolyCL: PolyCL-O >= PolyCL-S > SimCLR > random
        for n in ns:
            v = [at(m, n) for m in ('polycl-o', 'polycl-s', 'simclr', 'random')]
            c[f'PolyCL-O >= PolyCL-S > SimCLR > random at N={n}'] = bool(None not in v and v[0] >= v[1] > v[2] > v[3])
    if item == 'acwe':     # Chen & Frey: a few labels help the energy (joint > unsupervised), and the energy helps the labels (joint >= label-only)
        for n in ns:
            c[f'joint > unsupervised at N={n}'] = bool(at('acwe-joint', n) is not None and at('acwe-joint', n) > at('acwe', n))
            c[f'joint >= label-only at N={n}'] = bool(at('acwe-joint', n) is not None and at('acwe-joint', n) >= at('acwe-label', n))
    return c


def main(argv=None):
    ap = arguments(__doc__, smoke='2 training scans, 1 test scan, N = 1, 1 seed, a few steps (the regression test)',
                   dry_run="the preset's sizes on 2 training scans and 1 test scan, N = 1, one epoch / step per fit: checks that a preset runs")
    ap.add_argument('--task', choices=sorted(TASKS), default='chaos')
    ap.add_argument('--items', nargs='+', choices=sorted(ITEMS), default=None, help="which items (default: the task's)")
    ap.add_argument('--resume', action='store_true', help='read the ITEM.csv an earlier run of the same settings left in --out instead of running that item again')
    a = parse(ap, argv)
    import pandas as pd
    from medseg.label_efficiency import CPU_SETTINGS, FULL_SETTINGS, label_efficiency, summarize, mean_dice, plot_label_efficiency
    T, data = TASKS[a.task], data_folder(a.data)
    items = a.items or list(T['items'])
    bad = [i for i in items if i not in T['items']]
    if bad: sys.exit(f"--items {' '.join(bad)}: task {a.task} runs {' '.join(T['items'])}")
    tr_ids, te_ids = split(T['train']), split(T['test'])
    assert not set(tr_ids) & set(te_ids), 'a test scan is in the training split'
    S = dict(CPU_SETTINGS if a.preset == 'cpu' else FULL_SETTINGS, middle=None)
    S.pop('ns'); seeds = tuple(range(a.seeds)) if a.seeds else S.pop('seeds'); S.pop('seeds', None)
    if a.smoke or a.dry_run:
        tr_ids, te_ids, seeds = tr_ids[:2], te_ids[:1], (0,)
    if a.dry_run: S.update(pre_epochs=1, ft_steps=1)
    if a.smoke:
        S.update(size=32, middle=0.6, widths=(4, 8, 16), pre_epochs=1, ft_steps=4)
    train, test = ({k: tuple(map(str, v)) for k, v in scan_paths(data, ids).items()} for ids in (tr_ids, te_ids))
    out = Path(a.out or ROOT/'bench'/'out'/'reproduce'/f"label_efficiency_{a.preset}_{a.task}{'_smoke' if a.smoke else '_dry' if a.dry_run else ''}")
    out.mkdir(parents=True, exist_ok=True)
    dataset_pictures(data, tr_ids, out)   # a wrong header shows here, before anything trains
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from medseg.io import atomic_write
    res_items, claims, frames = {}, {}, {}
    for item in items:
        methods, ns = ITEMS[item]
        if a.smoke or a.dry_run: ns = (1,)
        print(f"{item}: {len(train)} training scans, {len(test)} test scans, methods {methods}, N = {ns}, seeds {seeds}", flush=True)
        if a.resume and (out/f'{item}.csv').is_file():
            df = pd.read_csv(out/f'{item}.csv'); print(f"{item}: read {out/f'{item}.csv'} (--resume)", flush=True)
        else:
            # random init is the same run in every item (same subsets, same seeds): trained once, its rows reused
            known = [d[d.method == 'random'] for d in frames.values() if 'random' in set(d.method)]
            reuse = known[0][known[0].n.isin(ns)] if 'random' in methods and known and set(ns) <= set(known[0].n) else None
            todo = tuple(m for m in methods if not (m == 'random' and reuse is not None))
            df = label_efficiency(train, test, labels=1, methods=todo, ns=ns, seeds=seeds, preprocess=T['preprocess'],
                                  device=a.device, **S)
            if reuse is not None: df = pd.concat([reuse, df], ignore_index=True)
            df.to_csv(out/f'{item}.csv', index=False)
        frames[item] = df
        for m in ('dice', 'hd95'):
            tab = summarize(df, m)
            t = tab.reset_index().rename(columns={'index': 'method'})
            (out/f'{item}_{m}.md').write_text(markdown(t, list(t.columns)) + '\n')
            if m == 'dice': print(tab.to_string(), flush=True)
        fig, ax = plt.subplots(figsize=(5.5, 3.6)); plot_label_efficiency(df, 'dice', ax)
        ax.set_title(f"{a.task} liver, {item} ({a.preset} preset, {len(seeds)} seeds)", fontsize=9); fig.tight_layout()
        with atomic_write(out/f'{item}.png') as tmp: fig.savefig(tmp, dpi=100, format='png')
        plt.close(fig)
        md = mean_dice(df)
        dice = {m: {int(n): round(float(md.loc[m, n]), 4) for n in md.columns if pd.notna(md.loc[m, n])} for m in md.index}
        per_seed = df.groupby(['method', 'n', 'seed']).dice.mean().unstack('method')
        ref = 'acwe' if item == 'acwe' else 'random'
        diff = {m: {f'N={n}': [round(float(v), 4) for v in (per_seed.loc[n, m] - per_seed.loc[n, ref]).values]
                    for n in per_seed.index.get_level_values(0).unique()} for m in per_seed.columns if m != ref}
        res_items[item] = dict(methods=list(methods), ns=list(ns), dice=dice, minus_reference_per_seed=diff, reference=ref,
                               seconds=round(float(df.groupby('method').pre_seconds.first().sum() + df.groupby(['method', 'n', 'seed']).ft_seconds.first().sum()), 1))
        claims[item] = claims_of(item, dice)
    res = dict(bench='reproduce/label_efficiency', task=a.task, preset=a.preset, smoke=a.smoke, dry_run=a.dry_run, seeds=list(seeds),
               settings={k: list(v) if isinstance(v, tuple) else v for k, v in S.items()}, train=tr_ids, test=te_ids,
               seconds=round(sum(v['seconds'] for v in res_items.values()), 1),   # training and evaluation time of the items (also when read back)
               items=res_items, claims=claims, out=str(out),
               target_met=bool(all(v for c in claims.values() for v in c.values())))
    return finish(res, out)


if __name__ == '__main__': main()
