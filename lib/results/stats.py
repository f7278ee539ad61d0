"""Statistics over seeds, the same for every table, the report and the gate: mean ± sample std, the
95% prediction interval for one new run, the post's rank among the seeds and the verdict."""

from __future__ import annotations

import math
import statistics
from collections import Counter

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
    """mean_std, and the per-seed values in seed order (None: no warning) that the verdicts need."""
    return {**mean_std(values), "values": [None if v is None else round(float(v), 6) for v in values]}


def seed_summaries(runs: list[dict], keys) -> dict:
    """Per key, the seed_summary of the runs' values (one run per seed)."""
    return {key: seed_summary([run[key] for run in runs]) for key in keys}


def tolerance_for(metric: str, tolerance: dict) -> dict:
    return tolerance["epoch" if metric == "epoch" else "loss" if "loss" in metric else "accuracy"]


def prediction_interval(values, minimum: float) -> dict:
    """Where one new run's figure should fall: mean +- t(0.975, n-1) * s * sqrt(1 + 1/n) over the values
    (None left out), never narrower than +- `minimum` (the tolerance; with n = 1 exactly that)."""
    from scipy import stats

    x = [float(v) for v in values if v is not None]
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "widened": False}
    mean = x[0] if len(set(x)) == 1 else statistics.fmean(x)  # equal seeds: their value exactly
    spread = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * statistics.stdev(x) * math.sqrt(1 + 1 / n) if n > 1 else 0.0
    half = max(spread, minimum)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "widened": spread < minimum}


def seed_interval(entry: dict, tol: dict) -> dict:
    """The prediction interval of a summarised figure (one without per-seed values counts as one run at its mean)."""
    values = entry.get("values")
    return prediction_interval(values if values is not None else [entry.get("mean")], tol["absolute"])


def post_rank(values, post: float) -> float | None:
    """The post's rank among itself and the seeds' values, lowest = 1 (ties share the mean rank)."""
    x = [v for v in values if v is not None]
    if post is None or not x:
        return None
    return 1 + sum(v < post for v in x) + sum(v == post for v in x) / 2


def rank_p_value(rank: float | None, n: int | None) -> float | None:
    """The two-sided p-value of the post's rank among itself and n seeds, assuming nothing of their
    distribution: were the post one more run like ours, each rank 1 .. n + 1 would be as likely, so
    p = 2 min(rank, n + 2 - rank) / (n + 1), at most 1; 2 / (n + 1) at either end (ties share ranks)."""
    if rank is None or not n:
        return None
    return min(1.0, 2 * min(rank, n + 2 - rank) / (n + 1))


def degenerate(values) -> str:
    """Why the seeds say little about their distribution, or "": one value only, or more than half of them
    equal (a stuck net predicting one class); the interval then rests on almost no spread."""
    x = [v for v in values if v is not None]
    if len(x) == 1:
        return "one seed"
    tied = max(Counter(x).values(), default=0)
    return f"{tied} of {len(x)} seeds equal" if tied * 2 > len(x) else ""


def practical_verdict(mean: float | None, post: float | None, tolerance: float) -> str:
    """'within tol.' when the post's figure is at most `tolerance` from our mean (too small a difference to
    matter), else 'beyond tol.'; '-' without a post's figure."""
    if post is None:
        return "-"
    if mean is None:
        return "beyond tol. (no value)"
    return "within tol." if round(abs(post - mean), 9) <= tolerance else "beyond tol."  # 0.92 - 0.90 is 0.02


def interval_verdict(interval: dict, post: float | None) -> str:
    """'consistent' when the post's figure lies inside the interval (edges included), else 'outside'."""
    if post is None:
        return "-"
    if interval.get("low") is None:
        return "outside (no value)"
    return "consistent" if interval["low"] <= post <= interval["high"] else "outside"
