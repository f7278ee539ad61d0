"""The posts' figures (reference/*.yaml), their claims and the tolerances (claims.yaml), checked
against the tables' metrics files. Shared by the table stages, the report and the regression
gate, so all of them judge a run the same way."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from stages.common import ConfigError, load_yaml


SOURCES = ("post", "project")  # a claim the posts make, or a check of our own


@dataclass(frozen=True)
class Outcome:
    claim_id: str
    text: str
    holds: bool | None  # None: a metric it needs was not measured (e.g. a smaller profile)
    detail: str
    source: str = "post"


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


def check(claim: dict, tables: dict) -> Outcome:
    return dataclasses.replace(_check(claim, tables), source=claim.get("source", "post"))


def _check(claim: dict, tables: dict) -> Outcome:
    spec = claim["check"]
    claim_id, text = claim["id"], claim["text"]
    try:
        if "greater" in spec:
            a = lookup(tables, spec["greater"])
            others = spec["than_all"] if "than_all" in spec else [spec["than"]]
            values = [lookup(tables, o) for o in others]
            margin = spec.get("by", 0.0)
            if a is None or any(v is None for v in values):
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            worst = max(values)
            holds = a - worst >= margin if "by" in spec else a > worst
            name = others[values.index(worst)]
            return Outcome(claim_id, text, holds, f"{spec['greater']} = {a:.4g} vs {name} = {worst:.4g} (needs a margin of {margin:g})")
        if "metric" in spec:
            addresses = spec["metric"] if isinstance(spec["metric"], list) else [spec["metric"]]
            values = [lookup(tables, a) for a in addresses]
            if any(v is None for v in values):
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            bound, ok = (spec["at_most"], max(values) <= spec["at_most"]) if "at_most" in spec else (spec["at_least"], min(values) >= spec["at_least"])
            worst = max(values) if "at_most" in spec else min(values)
            sign = "<=" if "at_most" in spec else ">="
            return Outcome(claim_id, text, ok, f"{addresses[values.index(worst)]} = {worst:.4g} (needs {sign} {bound:g})")
        if "close" in spec:
            a, b = (lookup(tables, x) for x in spec["close"])
            if a is None or b is None:
                return Outcome(claim_id, text, False, "no value to compare (a run gave none)")
            return Outcome(claim_id, text, abs(a - b) <= spec["within"], f"{spec['close'][0]} = {a:.4g}, {spec['close'][1]} = {b:.4g} (needs |difference| <= {spec['within']:g})")
    except KeyError as exc:
        return Outcome(claim_id, text, None, f"not measured in this run (no {exc.args[0]!r})")
    raise ConfigError(f"claims.yaml: claim {claim_id!r} has an unknown check {sorted(spec)}")


def tolerance_for(metric: str, tolerance: dict) -> dict:
    kind = "epoch" if metric == "epoch" else ("loss" if "loss" in metric else "accuracy")
    return tolerance[kind]


def verdict(reproduced: dict, post: float | None, tol: dict) -> str:
    """'matches' when |mean - post| <= max(absolute, std_factor * std), else 'differs'."""
    if post is None:
        return "-"
    if reproduced.get("mean") is None:
        return "differs (no value)"
    allowed = max(tol["absolute"], tol["std_factor"] * (reproduced.get("std") or 0.0))
    return "matches" if abs(reproduced["mean"] - post) <= allowed else "differs"
