"""Statistics over seeds, the same for every table, the report and the gate: mean ± sample std, the
95% prediction interval for one new run, the post's rank among the seeds and the verdict; and the
post's overfitting warning on a validation-loss curve."""

from __future__ import annotations

import math
import statistics

import numpy as np

LEVEL = 0.95  # of the prediction intervals


def mean_std(values) -> dict:
    """Mean and sample standard deviation over seeds (None values skipped; std 0 for one)."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    if len(array) == 0:
        return {"mean": None, "std": None, "seeds": 0}
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": round(float(array.mean()), 6), "std": round(std, 6), "seeds": len(array)}


def seed_summary(values: list) -> dict:
    """A figure over the seeds: mean +- sample std and n, and the per-seed values in seed order (None
    where a run has none, e.g. no warning), which the verdicts need. DVC's metrics commands show the
    numbers and leave the list out."""
    return {**mean_std(values), "values": [None if v is None else round(float(v), 6) for v in values]}


def tolerance_for(metric: str, tolerance: dict) -> dict:
    kind = "epoch" if metric == "epoch" else ("loss" if "loss" in metric else "accuracy")
    return tolerance[kind]


def prediction_interval(values, minimum: float) -> dict:
    """Where one new run's figure should fall, from the seeds' values: the 95% prediction interval
    mean +- t(0.975, n-1) * s * sqrt(1 + 1/n) (s the sample std), never narrower than +- `minimum`
    (the tolerance, as a stated minimum width; with n = 1, or values all equal, the interval is
    exactly that). None values (a run without a warning) are left out."""
    from scipy import stats

    x = [float(v) for v in values if v is not None]
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "widened": False}
    mean = statistics.fmean(x)
    spread = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * statistics.stdev(x) * math.sqrt(1 + 1 / n) if n > 1 else 0.0
    half = max(spread, minimum)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "widened": spread < minimum}


def seed_interval(entry: dict, tol: dict) -> dict:
    """The prediction interval of a summarised figure (a summary without per-seed values, written
    before they were kept, counts as one run at its mean)."""
    values = entry.get("values")
    return prediction_interval(values if values is not None else [entry.get("mean")], tol["absolute"])


def post_rank(values, post: float) -> float | None:
    """The post's rank among itself and the seeds' values, lowest = 1 (ties share the mean rank):
    n + 1 means above every seed, 1 below every seed."""
    x = [v for v in values if v is not None]
    if post is None or not x:
        return None
    return 1 + sum(v < post for v in x) + sum(v == post for v in x) / 2


def interval_verdict(interval: dict, post: float | None) -> str:
    """'consistent' when the post's figure lies inside the prediction interval (its edges included),
    else 'outside'; '-' where the post has no figure or we have no value."""
    if post is None:
        return "-"
    if interval.get("low") is None:
        return "outside (no value)"
    return "consistent" if interval["low"] <= post <= interval["high"] else "outside"


def overfitting_warning(val_loss, rule) -> int | None:
    """The post's rule (an OverfittingRule): the first epoch i (0-based) such that none of the next
    `patience` epochs has a val_loss below (1 - min_decrease) * val_loss[i]; None if no epoch
    qualifies (epochs without `patience` successors are never candidates, as in the post's loop)."""
    val_loss = np.asarray(val_loss, dtype=float)
    for i in range(len(val_loss) - rule.patience):
        if not np.any(val_loss[i + 1 : i + 1 + rule.patience] < (1 - rule.min_decrease) * val_loss[i]):
            return i
    return None


def warning_summary(curves: dict, rule) -> dict:
    """The warning's epoch (1-based) and the validation loss and accuracy there."""
    i = overfitting_warning(curves["val_loss"], rule)
    if i is None:
        return {"epoch": None, "val_loss": None, "val_accuracy": None}
    return {"epoch": i + 1, "val_loss": float(curves["val_loss"][i]), "val_accuracy": float(curves["val_accuracy"][i])}


CURVES = ("loss", "val_loss", "accuracy", "val_accuracy")


def mean_curves(histories: list[dict]) -> dict[str, np.ndarray]:
    """Per-epoch mean over folds (the post's np.mean(axis=0)). Folds stopped early are shorter: each
    epoch is then the mean over the folds that reached it."""
    length = max(len(h["loss"]) for h in histories)
    out = {}
    for name in CURVES:
        padded = np.full((len(histories), length), np.nan)
        for row, history in enumerate(histories):
            padded[row, : len(history[name])] = history[name]
        out[name] = np.nanmean(padded, axis=0)
    return out
