"""The posts' figures (reference/*.yaml), their claims and the tolerances (claims.yaml), checked
against the tables' metrics files. Shared by the table stages, the report and the regression
gate, so all of them judge a run the same way."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from stages.common import ConfigError, format_mean_std, load_yaml, mean_std


SOURCES = ("post", "project")  # a claim the posts make, or a check of our own


@dataclass(frozen=True)
class Outcome:
    claim_id: str
    text: str
    holds: bool | None  # None: a metric it needs was not measured (e.g. a smaller profile)
    detail: str
    source: str = "post"
    within_intervals: bool | None = None  # holds at the least favourable ends of the intervals too (None: not asked, or fails on the means)


def load_reference(path: Path) -> dict:
    """A post's printed figures (reference/<table>.yaml): reference data, never params."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of the post's figures")
    return data


def load_references(specs: list[str]) -> dict[str, dict]:
    """`name=path` pairs -> {name: the post's figures at path}, as load_tables does for metrics."""
    return {name: load_reference(Path(path)) for name, path in _pairs(specs, "--reference", "mnist_tips=reference/mnist_tips.yaml")}


def in_post_order(names, reference: dict) -> list[str]:
    """`names` in the order the post prints them (the reference file's order), then the rest
    (variants of our own) in the order given."""
    names = list(names)
    return [n for n in reference if n in names] + [n for n in names if n not in reference]


def load_tables(specs: list[str]) -> dict[str, dict]:
    """`name=path` pairs -> {name: the metrics JSON at path}."""
    return {name: json.loads(Path(path).read_text()) for name, path in _pairs(specs, "--metrics", "mnist_tips=reports/mnist_tips/metrics.json")}


def _pairs(specs: list[str], option: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ConfigError(f"{option} {spec!r}: expected NAME=PATH, e.g. {example}")
        pairs.append((name, path))
    return pairs


def load_claims(path: Path) -> dict:
    data = load_yaml(path)
    if not isinstance(data, dict) or "claims" not in data or "tolerance" not in data:
        raise ConfigError(f"{path}: expected the sections 'tolerance' and 'claims'")
    for claim in data["claims"]:
        if claim.get("source") not in SOURCES:
            raise ConfigError(f"{path}: claim {claim.get('id')!r}: source {claim.get('source')!r} is not allowed; allowed: {', '.join(SOURCES)}")
    return data


def lookup(tables: dict, address: str) -> float | None:
    """`table.key.key...` -> the number there (the mean, for a mean/std entry); None where the
    run has no value (e.g. no overfitting warning); KeyError where the address does not exist."""
    table, *path = address.split(".")
    node = tables[table]
    for key in path:
        node = node[key]
    if isinstance(node, dict):
        node = node["mean"]
    return node


def check(claim: dict, tables: dict, tolerance: dict | None = None) -> Outcome:
    """The claim on the seed means; with `tolerance` (claims.yaml's), also at the ends of the
    figures' 95% prediction intervals least favourable to it (`within_intervals`): where it
    holds there too, no single run inside the intervals would contradict it."""
    outcome = dataclasses.replace(_check(claim, lambda address, end: lookup(tables, address)), source=claim.get("source", "post"))
    if tolerance is None or not outcome.holds:
        return outcome

    def at_end(address: str, end: str):
        table, *path = address.split(".")
        node = tables[table]
        for key in path:
            node = node[key]
        if not isinstance(node, dict) or node.get("mean") is None:
            return node if not isinstance(node, dict) else None
        return seed_interval(node, tolerance_for(path[-1], tolerance))[end]

    return dataclasses.replace(outcome, within_intervals=bool(_check(claim, at_end).holds))


def _check(claim: dict, value) -> Outcome:
    """The claim's check with `value(address, end)` giving each figure: `end` is "low" where a
    smaller value works against the claim, "high" where a larger one does (on the means, both
    are the mean)."""
    spec = claim["check"]
    claim_id, text = claim["id"], claim["text"]
    try:
        if "greater" in spec:
            a = value(spec["greater"], "low")
            others = spec["than_all"] if "than_all" in spec else [spec["than"]]
            values = [value(o, "high") for o in others]
            margin = spec.get("by", 0.0)
            if a is None or any(v is None for v in values):
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            worst = max(values)
            holds = a - worst >= margin if "by" in spec else a > worst
            name = others[values.index(worst)]
            return Outcome(claim_id, text, holds, f"{spec['greater']} = {a:.4g} vs {name} = {worst:.4g} (needs a margin of {margin:g})")
        if "metric" in spec:
            addresses = spec["metric"] if isinstance(spec["metric"], list) else [spec["metric"]]
            values = [value(a, "high" if "at_most" in spec else "low") for a in addresses]
            if any(v is None for v in values):
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            bound, ok = (spec["at_most"], max(values) <= spec["at_most"]) if "at_most" in spec else (spec["at_least"], min(values) >= spec["at_least"])
            worst = max(values) if "at_most" in spec else min(values)
            sign = "<=" if "at_most" in spec else ">="
            return Outcome(claim_id, text, ok, f"{addresses[values.index(worst)]} = {worst:.4g} (needs {sign} {bound:g})")
        if "close" in spec:
            (a_low, a_high), (b_low, b_high) = ((value(x, "low"), value(x, "high")) for x in spec["close"])
            if None in (a_low, a_high, b_low, b_high):
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            apart = max(abs(a_high - b_low), abs(b_high - a_low))  # on the means: |a - b|
            return Outcome(claim_id, text, apart <= spec["within"],
                           f"{spec['close'][0]} = {a_low:.4g}, {spec['close'][1]} = {b_low:.4g} (needs |difference| <= {spec['within']:g})")
    except KeyError as exc:
        return Outcome(claim_id, text, None, f"not measured in this run (no {exc.args[0]!r})")
    raise ConfigError(f"claims.yaml: claim {claim_id!r} has an unknown check {sorted(spec)}")


def tolerance_for(metric: str, tolerance: dict) -> dict:
    kind = "epoch" if metric == "epoch" else ("loss" if "loss" in metric else "accuracy")
    return tolerance[kind]


LEVEL = 0.95  # of the prediction intervals


def prediction_interval(values, minimum: float) -> dict:
    """Where one new run's figure should fall, from the seeds' values: the 95% prediction
    interval mean +- t(0.975, n-1) * s * sqrt(1 + 1/n) (s the sample std), never narrower than
    +- `minimum` (the tolerance, as a stated minimum width; with n = 1, or values all equal,
    the interval is exactly that). None values (a run without a warning) are left out."""
    import math
    import statistics

    from scipy import stats

    x = [float(v) for v in values if v is not None]
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "widened": False}
    mean = statistics.fmean(x)
    spread = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * statistics.stdev(x) * math.sqrt(1 + 1 / n) if n > 1 else 0.0
    half = max(spread, minimum)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "widened": spread < minimum}


def post_rank(values, post: float) -> float | None:
    """The post's rank among itself and the seeds' values, lowest = 1 (ties share the mean
    rank): n + 1 means above every seed, 1 below every seed."""
    x = [v for v in values if v is not None]
    if post is None or not x:
        return None
    return 1 + sum(v < post for v in x) + sum(v == post for v in x) / 2


def interval_verdict(interval: dict, post: float | None) -> str:
    """'consistent' when the post's figure lies inside the prediction interval (its edges
    included), else 'outside'; '-' where the post has no figure or we have no value."""
    if post is None:
        return "-"
    if interval.get("low") is None:
        return "outside (no value)"
    return "consistent" if interval["low"] <= post <= interval["high"] else "outside"


def seed_summary(values: list) -> dict:
    """A figure over the seeds: mean +- sample std and n, and the per-seed values in seed order
    (None where a run has none, e.g. no warning), which the verdicts need. DVC's metrics
    commands show the numbers and leave the list out."""
    return {**mean_std(values), "values": [None if v is None else round(float(v), 6) for v in values]}


def figure_cells(entry: dict | None, post, tol: dict, digits: int, accuracy: bool) -> list[str]:
    """One figure's cells, as every table and the report show it: post | mean +- std (n) |
    95% prediction interval | the post's rank among itself and the seeds | verdict."""
    entry = entry or {}
    shown = "-" if post is None else f"{post:.{digits}f}" if isinstance(post, float) else str(post)
    if entry.get("mean") is None:
        return [shown, "none", "-", "-", interval_verdict({}, post)]
    reproduced = f"{format_mean_std(entry, digits)} ({entry['seeds']})"
    interval = seed_interval(entry, tol)
    rank = post_rank(entry.get("values") or [entry["mean"]], post)
    # Shown within what the figure can be (an accuracy in 0-1, a loss or an epoch above 0); the
    # verdict uses the interval itself, and a post's figure always lies within those limits.
    low, high = max(interval["low"], 0.0), min(interval["high"], 1.0) if accuracy else interval["high"]
    return [shown, reproduced, f"{low:.{digits}f} to {high:.{digits}f}" + (" (tol.)" if interval["widened"] else ""),
            "-" if rank is None else f"{rank:g}/{interval['n'] + 1}", interval_verdict(interval, post)]


def verdict_rule(tolerance: dict) -> list[str]:
    """What the verdict and rank columns mean, for the tables and the report."""
    minimum = ", ".join(f"{t['absolute']:g} for {kind}" for kind, t in tolerance.items())
    return [
        "A figure is *consistent* when the post's value lies inside the 95% prediction interval for one new run,",
        "mean ± t(0.975, n-1) · s · √(1 + 1/n) over our n seeds (s: the sample std), else *outside*; the interval is",
        f"never narrower than ± the tolerance in `claims.yaml` ({minimum}; marked \"tol.\" where",
        "that minimum decides). Rank: the post's place among itself and our seeds' values, from the lowest",
        "(n + 1 of n + 1: above every seed).",
    ]


def count_verdicts(verdicts: list[str], whose: str = "our") -> str:
    """'k of the N figures ... consistent, m outside': the count a post's section states."""
    judged = [v for v in verdicts if v != "-"]
    inside = sum(v == "consistent" for v in judged)
    return (f"{inside} of the post's {len(judged)} figures lie inside {whose} 95% prediction interval (consistent), "
            f"{len(judged) - inside} outside.")


def seed_interval(entry: dict, tol: dict) -> dict:
    """The prediction interval of a summarised figure (a summary without per-seed values, written
    before they were kept, counts as one run at its mean)."""
    values = entry.get("values")
    return prediction_interval(values if values is not None else [entry.get("mean")], tol["absolute"])
