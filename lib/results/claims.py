"""The posts' figures (reference/*.yaml), their claims and the tolerances (claims.yaml), checked
against the tables' metrics files, and every figure's verdict. Shared by the tables, the report and
the regression gate, so all of them judge a run the same way."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from lib.common.core import ConfigError, load_yaml
from lib.results.stats import seed_interval, tolerance_for


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


