"""Reading the units' run folders, one reader per file: the summaries over seeds the tables publish,
the mean curves `dvc plots` draws, and the long-form files of the confusion and warning plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from lib.common.core import DataError, atomic_path
from lib.common.paths import fashion_cv_run, mnist_tips_run
from lib.data.configs import CLASS_NAMES
from lib.results.stats import mean_std, seed_summaries
from lib.train.overfitting import CURVES, WARNING, mean_curves, warning_summary

METRICS = ("train_accuracy", "test_accuracy")  # an MNIST tips unit's figures


def read_json(path: Path) -> dict:
    if not Path(path).is_file():
        raise DataError(f"{path}: missing; run `dvc repro` for its training units first")
    return json.loads(Path(path).read_text())


def read_curves(run: Path) -> dict[str, list[float]]:
    """A unit's per-epoch curves as dvclive recorded them (live/plots/metrics/{train,eval}/<metric>.tsv):
    `loss`, `accuracy` and, with validation data, `val_loss`, `val_accuracy`, exactly as Keras gave them."""
    found = {}
    for split, prefix in (("train", ""), ("eval", "val_")):
        for metric in ("loss", "accuracy"):
            path = Path(run) / "live" / "plots" / "metrics" / split / f"{metric}.tsv"
            if path.is_file():
                with open(path, newline="") as stream:
                    found[prefix + metric] = [float(row[metric]) for row in csv.DictReader(stream, delimiter="\t")]
    if "loss" not in found:
        raise DataError(f"{run}: no curves recorded (live/plots/metrics); run `dvc repro` for its training unit first")
    return found


def collect_tips(variants: list[str], seeds: list[int], runs: Path) -> dict[str, dict[str, dict]]:
    """Per variant and metric, the summary over the seeds params.yaml lists (a missing run is an error)."""
    return {v: seed_summaries([read_json(mnist_tips_run(v, seed, runs) / "metrics.json") for seed in seeds], METRICS)
            for v in variants}


def tips_curves(variants: list[str], seeds: list[int], runs: Path) -> dict:
    """Per variant, the per-epoch train (fit's running mean) and test accuracy, mean over seeds, for write_curves."""
    import pandas as pd

    found = {v: [read_curves(mnist_tips_run(v, seed, runs)) for seed in seeds] for v in variants}
    return {v: pd.concat([pd.DataFrame({"train_accuracy": c["accuracy"], "test_accuracy": c["val_accuracy"]})
                          for c in curves]).groupby(level=0).mean() for v, curves in found.items()}


def summarize_cv(variants: list[str], seeds: list[int], k: int, rule, runs: Path):
    """Per variant: the warning's figures over seeds, early stopping's where used; and the seed-mean curves."""
    summary, curves_out = {}, {}
    for variant in variants:
        warnings, seed_curves, stopped = [], [], []
        for seed in seeds:
            folds = [fashion_cv_run(variant, seed, f, runs) for f in range(k)]
            seed_curves.append(mean_curves([read_curves(f) for f in folds]))
            warnings.append(warning_summary(seed_curves[-1], rule))
            stopped += [read_json(f / "metrics.json") for f in folds]
        entry = {**seed_summaries(warnings, WARNING), "warned_seeds": sum(w["epoch"] is not None for w in warnings)}
        if any("best_epoch" in m for m in stopped):
            entry["early_stopping"] = {key: mean_std([m[name] for m in stopped]) for key, name in (
                ("stopped_epoch", "epochs_run"), ("best_epoch", "best_epoch"), ("val_accuracy", "val_accuracy"))}
        summary[variant] = entry
        shortest = min(len(c["loss"]) for c in seed_curves)
        curves_out[variant] = {name: np.mean([c[name][:shortest] for c in seed_curves], axis=0) for name in CURVES}
    return summary, curves_out


def write_curves(path: Path, curves: dict) -> None:
    """Per-variant curves (columns of equal length) in long form (epoch, variant, ...) for `dvc plots`."""
    import pandas as pd

    frames = []
    for variant, columns in curves.items():
        frame = pd.DataFrame(columns).reset_index(drop=True)
        frame.insert(0, "variant", variant)
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
        frames.append(frame)
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False, float_format="%.6f")


def confusion_rows(confusion):
    """A confusion matrix (rows actual) as one row per test prediction, the form DVC's confusion template counts."""
    import pandas as pd

    confusion = np.asarray(confusion, dtype=int)
    actual, predicted = np.nonzero(confusion)
    counts = confusion[actual, predicted]
    return pd.DataFrame({"actual": np.repeat([CLASS_NAMES[a] for a in actual], counts),
                         "predicted": np.repeat([CLASS_NAMES[p] for p in predicted], counts)})


def warning_epochs(per_seed: dict[str, list], reference: dict):
    """Each seed's overfitting warning epoch per variant (and the CNN), with the post's beside them, in long
    form for `dvc plots` and the strip figure; a seed without a warning has no row."""
    import pandas as pd

    rows = []
    for variant, epochs in per_seed.items():
        rows += [{"variant": variant, "who": "our seed", "seed": seed, "epoch": e}
                 for seed, e in epochs if e is not None]
        post = (reference.get("cnn", {}).get("warning", {}) if variant == "cnn"
                else reference.get("cross_validation", {}).get(variant, {}))
        if post.get("epoch") is not None:
            rows.append({"variant": variant, "who": "post", "seed": None, "epoch": post["epoch"]})
    return pd.DataFrame(rows, columns=["variant", "who", "seed", "epoch"]).astype({"seed": "Int64", "epoch": "Int64"})
