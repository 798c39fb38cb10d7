#!/usr/bin/env python
"""Supervised baseline held against the reference recipe: medseg's supervised U-Net vs nnU-Net v2's 2d configuration.

    python bench/baseline.py [DATA] [--steps N] [--bs B] [--seed S] [--full] [--work DIR] [--device cpu|cuda]
        [--skip-nnunet] [--skip-medseg] [--threads T]

DATA is the shared data folder (default `$MEDSEG_DATA`); the task is its IXI brain T1 scans (`brain_ixi/t1`,
`brain_ixi/labels`, DLMUSE labels) with two classes, ventricles (51 + 52) and hippocampus (47 + 48). The scans are
fixed by the committed lists `bench/splits/ixi_train10.txt` (10 training scans; 2 of them, drawn by medseg's seeded
`split_scans(valid_pct=0.2)`, validate) and `bench/splits/ixi_test30.txt` (30 test scans, never used for training or
model selection).

Both frameworks train on the same 8 scans, validate on the same 2, for the **same number of steps with the same
batch size**: medseg `medseg train supervised` (the default recipe: Dice + cross-entropy, poly decay, clipping; 2 mm
pixels on 128 x 128 slices, the scans' own resolution; `model.pt` = its `--select best` epoch), and nnU-Net v2
(`nnUNetTrainer`, its own 2d plan: target spacing, normalisation, patch size, its network, augmentation and SGD
recipe) through its trainer-variant mechanism — a subclass setting `num_epochs` and `num_iterations_per_epoch`, and
the plan's batch size set to the same `--bs` — on the CPU here, a GPU when there is one. Each framework then predicts
the 30 test scans its own default way (nnU-Net: sliding window with mirroring; medseg: `medseg predict`, with and
without `--tta flip`), and `medseg.evaluate` scores every mask: Dice and HD95 (mm) per class.

Presets: `--steps 600` (the CPU preset, the default: about 25 min of training per framework on one core, and 40 min
for nnU-Net's sliding-window prediction of the 30 brains); `--full`: 12 500 steps (50 epochs of
nnU-Net's 250 iterations; one GPU). nnU-Net v2 is installed for this benchmark only (`pip install nnunetv2`), never a
dependency of medseg. Writes `WORK/results.csv` (one row per framework, test scan and class), `WORK/summary.json`, and ends with one JSON
line: per framework and class the mean test Dice and HD95, and `target_met` = medseg's Dice within 0.02 of nnU-Net's
for every class.
"""
import argparse, json, math, os, shutil, sys, time, warnings
from pathlib import Path

warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
import numpy as np
import pandas as pd
import torch

CLASSES = 'ventricles=51+52,hippocampus=47+48'
SPLITS = Path(__file__).parent/'splits'


def read_list(name): return [l.strip() for l in (SPLITS/name).read_text().splitlines() if l.strip()]


def scans(data, ids):
    "id -> (image, label) of IXI scans named in a split list."
    t1, lab = Path(data)/'brain_ixi'/'t1', Path(data)/'brain_ixi'/'labels'
    out = {k: (t1/f'{k}.nii.gz', lab/f'{k}_DLMUSE.nii.gz') for k in ids}
    missing = [str(p) for v in out.values() for p in v if not p.is_file()]
    if missing: sys.exit(f"missing scans: {missing[:3]} (is DATA the shared data folder?)")
    return out


def score(pred_dir, test, name):
    "Per test scan and class Dice/HD95 of the masks in `pred_dir` (named as the images)."
    from medseg.evaluate import evaluate_case
    from medseg.scans import LabelSpec
    spec = LabelSpec.parse(classes=CLASSES)
    rows = []
    for k, (img, lab) in test.items():
        for r in evaluate_case(Path(pred_dir)/img.name, lab, spec): rows.append(dict(framework=name, case=k, **r))
    return pd.DataFrame(rows)


def run_medseg(train, valid_ids, test, work, steps, bs, seed, device):
    "medseg's supervised U-Net for `steps` steps of batch `bs`; its predictions of the test scans (with and without flip TTA)."
    from medseg.runner import train as medseg_train
    from medseg.data import slice_dls
    from medseg.scans import LabelSpec
    from medseg.inference import predict_files
    man = work/'medseg_train.csv'
    pd.DataFrame([dict(id=k, image=str(v[0]), label=str(v[1])) for k, v in train.items()]).to_csv(man, index=False)
    kw = dict(classes=CLASSES, spacing=2., size=128, bs=bs, seed=seed, valid_pct=0.2)
    dls = slice_dls(man, labels=LabelSpec.parse(classes=CLASSES), spacing=2., size=128, bs=bs, seed=seed, valid_pct=0.2)
    assert sorted(dls.splits[1]) == sorted(valid_ids), (dls.splits[1], valid_ids)
    per_epoch = len(dls.train)
    epochs = max(1, round(steps/per_epoch))
    t0 = time.time()
    r = medseg_train('supervised', man, work/'medseg_run', epochs=epochs, device=device, quiet=True, overwrite=True, **kw)
    secs = time.time() - t0
    out = {}
    for tta in ('none', 'flip'):
        pred = work/f'medseg_pred_{tta}'
        predict_files(r.weights, [v[0] for v in test.values()], pred, tta=tta, device=device, overwrite=True)
        out[f'medseg' + ('' if tta == 'none' else ' +flip')] = pred
    return out, dict(epochs=epochs, iterations_per_epoch=per_epoch, steps=epochs*per_epoch, train_seconds=secs,
                     selected_epoch=r.config.get('selected', {}).get('epoch'))


def run_nnunet(train, valid_ids, test, work, epochs, per_epoch, bs, device):
    "nnU-Net v2's 2d configuration, `epochs` x `per_epoch` steps of batch `bs`, on the same training/validation scans."
    for k, v in (('nnUNet_raw', 'raw'), ('nnUNet_preprocessed', 'preprocessed'), ('nnUNet_results', 'results')):
        os.environ[k] = str(work/'nnunet'/v)
    os.environ.setdefault('nnUNet_n_proc_DA', '1'); os.environ.setdefault('nnUNet_def_n_proc', '2'); os.environ['nnUNet_compile'] = 'f'
    try:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    except ImportError: sys.exit("nnU-Net v2 is not installed: pip install nnunetv2 (for this benchmark only), or --skip-nnunet")
    from medseg.io import load_nifti, save_nifti
    from medseg.scans import LabelSpec
    spec, did, name = LabelSpec.parse(classes=CLASSES), 873, 'Dataset873_IXIbaseline'
    raw = work/'nnunet'/'raw'/name
    if raw.exists(): shutil.rmtree(raw)
    for sub in ('imagesTr', 'labelsTr'): (raw/sub).mkdir(parents=True)
    for k, (img, lab) in train.items():
        shutil.copy(img, raw/'imagesTr'/f'{k}_0000.nii.gz')
        lv = load_nifti(lab); save_nifti(lv.with_array(spec.encode(lv.array)), raw/'labelsTr'/f'{k}.nii.gz')
    (raw/'dataset.json').write_text(json.dumps(dict(channel_names={'0': 'T1'}, labels={'background': 0, **{n: i for i, n in enumerate(spec.names, 1)}},
                                                    numTraining=len(train), file_ending='.nii.gz')))
    pre = work/'nnunet'/'preprocessed'/name
    if pre.exists(): shutil.rmtree(pre)
    extract_fingerprints([did], num_processes=2, check_dataset_integrity=True)
    plan_experiments([did])
    plans = json.loads((pre/'nnUNetPlans.json').read_text())
    planned_bs = plans['configurations']['2d']['batch_size']
    plans['configurations']['2d']['batch_size'] = bs                      # the same batch as medseg's
    (pre/'nnUNetPlans.json').write_text(json.dumps(plans, indent=1))
    preprocess([did], configurations=('2d',), num_processes=(2,))
    (pre/'splits_final.json').write_text(json.dumps([dict(train=sorted(k for k in train if k not in valid_ids), val=sorted(valid_ids))]))

    class nnUNetTrainerBudget(nnUNetTrainer):
        "nnU-Net's trainer with the benchmark's step budget: `epochs` epochs of `per_epoch` iterations (its own variant mechanism)."
        def __init__(self, plans, configuration, fold, dataset_json, device=torch.device('cuda')):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = epochs, per_epoch, 5

    dataset_json = json.loads((pre/'dataset.json').read_text())
    plans['continue_training'] = False                                     # what nnUNetv2_train passes
    trainer = nnUNetTrainerBudget(plans, '2d', 0, dataset_json, device=torch.device(device))
    t0 = time.time()
    trainer.run_training()
    secs = time.time() - t0
    trainer.set_deep_supervision_enabled(False); trainer.network.eval()
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True, perform_everything_on_device=False,
                                device=torch.device(device), allow_tqdm=False)
    predictor.manual_initialization(trainer.network, trainer.plans_manager, trainer.configuration_manager,
                                    [{k: v.detach().cpu() for k, v in trainer.network.state_dict().items()}], dataset_json,
                                    trainer.__class__.__name__, trainer.inference_allowed_mirroring_axes)
    pred = work/'nnunet_pred'
    if pred.exists(): shutil.rmtree(pred)
    pred.mkdir()
    inp = work/'nnunet_test'
    if inp.exists(): shutil.rmtree(inp)
    inp.mkdir()
    for k, (img, _) in test.items(): shutil.copy(img, inp/f'{k}_0000.nii.gz')
    predictor.predict_from_files(str(inp), str(pred), save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)
    named = work/'nnunet_pred_named'                                       # masks named as the images, like medseg's
    if named.exists(): shutil.rmtree(named)
    named.mkdir()
    for k, (img, _) in test.items(): shutil.copy(pred/f'{k}.nii.gz', named/img.name)
    patch = trainer.configuration_manager.patch_size
    return {'nnU-Net 2d': named}, dict(epochs=epochs, iterations_per_epoch=per_epoch, steps=epochs*per_epoch, train_seconds=secs,
                                       planned_batch_size=planned_bs, patch_size=list(map(int, patch)),
                                       spacing=list(map(float, trainer.configuration_manager.spacing)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('data', nargs='?', default=os.environ.get('MEDSEG_DATA'), help='the shared data folder (default: $MEDSEG_DATA)')
    ap.add_argument('--steps', type=int, default=None, help="training steps of each framework (default 600; --full 12500)")
    ap.add_argument('--full', action='store_true', help='the GPU preset: 12 500 steps')
    ap.add_argument('--bs', type=int, default=8, help='batch size of both (default 8)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--work', default='bench/out/baseline', help='working folder (default bench/out/baseline)')
    ap.add_argument('--device', default=None, help="'cuda' or 'cpu' (default: cuda when available)")
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    ap.add_argument('--skip-nnunet', action='store_true'); ap.add_argument('--skip-medseg', action='store_true')
    args = ap.parse_args(argv)
    if not args.data: sys.exit("give the data folder (or set MEDSEG_DATA)")
    if args.threads: torch.set_num_threads(args.threads)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    steps = args.steps or (12500 if args.full else 600)
    work = Path(args.work).resolve(); work.mkdir(parents=True, exist_ok=True)
    from medseg.scans import split_scans
    train, test = scans(args.data, read_list('ixi_train10.txt')), scans(args.data, read_list('ixi_test30.txt'))
    assert not set(train) & set(test)
    valid_ids = split_scans(list(train), 0.2, args.seed)[1]
    preds, info = {}, {}
    if not args.skip_medseg:
        p, info['medseg'] = run_medseg(train, valid_ids, test, work, steps, args.bs, args.seed, device); preds.update(p)
        epochs, per_epoch = info['medseg']['epochs'], info['medseg']['iterations_per_epoch']
    else: per_epoch = 50; epochs = max(1, round(steps/per_epoch))
    if not args.skip_nnunet:
        p, info['nnunet'] = run_nnunet(train, valid_ids, test, work, epochs, per_epoch, args.bs, device); preds.update(p)
    df = pd.concat([score(d, test, n) for n, d in preds.items()], ignore_index=True)
    df.to_csv(work/'results.csv', index=False)
    summary = {}
    for (fw, cls), g in df.groupby(['framework', 'class'], sort=False):
        h = g.hd95.to_numpy(float); h = h[np.isfinite(h)]
        summary.setdefault(fw, {})[cls] = dict(dice=round(float(g.dice.mean()), 4), dice_std=round(float(g.dice.std()), 4),
                                               hd95=round(float(h.mean()), 3) if h.size else None, empty=int((~np.isfinite(g.hd95)).sum()))
    print(pd.DataFrame({(fw, m): {c: v[m] for c, v in d.items()} for fw, d in summary.items() for m in ('dice', 'hd95')}).to_string())
    met = None
    if 'medseg' in summary and 'nnU-Net 2d' in summary:
        met = all(summary['medseg'][c]['dice'] >= summary['nnU-Net 2d'][c]['dice'] - 0.02 for c in summary['medseg'])
    line = json.dumps(dict(task='IXI T1: ventricles, hippocampus (2D)', train=len(train), valid=valid_ids, test=len(test), bs=args.bs,
                           steps=steps, device=device, frameworks=summary, runs=info, target='medseg Dice >= nnU-Net 2d Dice - 0.02 per class',
                           target_met=met))
    tmp = work/'summary.json.tmp'; tmp.write_text(line + '\n'); tmp.replace(work/'summary.json')   # what the notebook shows
    print(line)


if __name__ == '__main__': main()
