"""The posts' figures (reference/*.yaml), their claims and the tolerances (claims.yaml), checked
against the tables' metrics files: shared by the tables, the report and the regression gate, so that
all of them judge a run the same way."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from lib.common.core import ConfigError, load_yaml
from lib.results.stats import seed_interval, tolerance_for

SOURCES = ("post", "project")  # a claim the posts make, or a check of our own
NO_VALUE = "no value to compare (a run gave none)"


@dataclass(frozen=True)
class Outcome:
    claim_id: str
    text: str
    holds: bool | None  # None: a metric it needs was not measured (e.g. a smaller profile)
    detail: str
    source: str = "post"
    within_intervals: bool | None = None  # holds at the least favourable ends of the intervals too (None: not asked)


def load_reference(path: Path) -> dict:
    """A post's printed figures (reference/<table>.yaml): reference data, never params."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of the post's figures")
    return data


def load_references(specs: list[str]) -> dict[str, dict]:
    """`name=path` pairs -> {name: the post's figures at path}."""
    pairs = _pairs(specs, "--reference", "mnist_tips=reference/mnist_tips.yaml")
    return {name: load_reference(Path(path)) for name, path in pairs}


def load_tables(specs: list[str]) -> dict[str, dict]:
    """`name=path` pairs -> {name: the metrics JSON at path}."""
    pairs = _pairs(specs, "--metrics", "mnist_tips=reports/mnist_tips/metrics.json")
    tables = {name: json.loads(Path(path).read_text()) for name, path in pairs}
    for (name, path), table in zip(pairs, tables.values()):
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: a JSON {type(table).__name__}, not a table's metrics; "
                              "expected a JSON object (what the table stage writes)")
    return tables


def _pairs(specs: list[str], option: str, example: str) -> list[tuple[str, str]]:
    pairs = [spec.partition("=") for spec in specs]
    for spec, (_, sep, _) in zip(specs, pairs):
        if not sep:
            raise ConfigError(f"{option} {spec!r}: expected NAME=PATH, e.g. {example}")
    return [(name, path) for name, _, path in pairs]


def in_post_order(names, reference: dict) -> list[str]:
    """`names` in the order the post prints them (the reference file's), then the rest in the order given."""
    names = list(names)
    return [n for n in reference if n in names] + [n for n in names if n not in reference]


def load_claims(path: Path) -> dict:
    data = load_yaml(path)
    if not isinstance(data, dict) or "claims" not in data or "tolerance" not in data:
        raise ConfigError(f"{path}: expected the sections 'tolerance' and 'claims'")
    if not isinstance(data["tolerance"], dict):
        raise ConfigError(f"{path}: tolerance: {data['tolerance']!r} is not allowed; allowed: a mapping")
    claims = data["claims"]
    bad = [claims] if not isinstance(claims, list) else [
        c for c in claims if not (isinstance(c, dict) and isinstance(c.get("id"), str))]
    if bad:
        raise ConfigError(f"{path}: claims: {repr(bad[0])[:80]} is not allowed; allowed: a list of claims, each a "
                          "mapping with an id")
    headline = data.get("headline", {})
    if not isinstance(headline, dict) or not all(isinstance(k, str) and "." in k and isinstance(a, str)
                                                 for k, a in headline.items()):
        raise ConfigError(f"{path}: headline: {repr(headline)[:80]} is not allowed; allowed: a mapping of "
                          "<post>.<key>: <table>.<metric address>")
    for claim in claims:
        if claim.get("source") not in SOURCES:
            raise ConfigError(f"{path}: claim {claim.get('id')!r}: source {claim.get('source')!r} is not allowed; "
                              f"allowed: {', '.join(SOURCES)}")
    return data


def lookup(tables: dict, address: str, end: str | None = None, tolerance: dict | None = None) -> float | None:
    """`table.key.key...` -> the number there: a mean/std entry's mean, or with `tolerance` the `end` of its
    95% prediction interval; None where the run has none (no warning), KeyError where there is no such address."""
    node = functools.reduce(lambda node, key: node[key], address.split("."), tables)
    if not isinstance(node, dict):
        return node
    if tolerance is None or node["mean"] is None:
        return node["mean"]
    return seed_interval(node, tolerance_for(address.split(".")[-1], tolerance))[end]


def headline(tables: dict, spec: dict) -> dict:
    """claims.yaml's `headline` -> {post: {key: the figure's mean over seeds}} (reports/headline.json);
    a figure this run does not have (a smaller profile, a removed variant) is left out."""
    found = {}
    for name, address in spec.items():
        try:
            value = lookup(tables, address)
        except KeyError:
            continue
        if value is not None:
            post, _, key = name.partition(".")
            found.setdefault(post, {})[key] = value
    return found


def check(claim: dict, tables: dict, tolerance: dict | None = None) -> Outcome:
    """The claim on the seed means; with claims.yaml's `tolerance`, also at the ends of its figures' 95%
    prediction intervals least favourable to it (`within_intervals`): then no run inside them contradicts it."""
    outcome = dataclasses.replace(_check(claim, tables), source=claim.get("source", "post"))
    if tolerance is None or not outcome.holds:
        return outcome
    return dataclasses.replace(outcome, within_intervals=bool(_check(claim, tables, tolerance).holds))


def _check(claim: dict, tables: dict, tolerance: dict | None = None) -> Outcome:
    """The claim's check on the means, or with `tolerance` on each figure's interval end that works against it
    ("low" where a smaller value does, "high" where a larger one does)."""
    spec, outcome = claim["check"], functools.partial(Outcome, claim["id"], claim["text"])

    def value(address: str, end: str):
        return lookup(tables, address, end, tolerance)
    try:
        if "greater" in spec:
            a = value(spec["greater"], "low")
            others = spec["than_all"] if "than_all" in spec else [spec["than"]]
            values = [value(o, "high") for o in others]
            if a is None or None in values:
                return outcome(False, NO_VALUE)
            worst, margin = max(values), spec.get("by", 0.0)
            return outcome(a - worst >= margin if "by" in spec else a > worst,
                           f"{spec['greater']} = {a:.4g} vs {others[values.index(worst)]} = {worst:.4g} "
                           f"(needs a margin of {margin:g})")
        if "metric" in spec:
            addresses = spec["metric"] if isinstance(spec["metric"], list) else [spec["metric"]]
            at_most = "at_most" in spec
            values = [value(a, "high" if at_most else "low") for a in addresses]
            if None in values:
                return outcome(False, NO_VALUE)
            worst, bound = (max(values), spec["at_most"]) if at_most else (min(values), spec["at_least"])
            return outcome(worst <= bound if at_most else worst >= bound, f"{addresses[values.index(worst)]} = "
                           f"{worst:.4g} (needs {'<=' if at_most else '>='} {bound:g})")
        if "close" in spec:
            (a_low, a_high), (b_low, b_high) = ((value(x, "low"), value(x, "high")) for x in spec["close"])
            if None in (a_low, a_high, b_low, b_high):
                return outcome(False, NO_VALUE)
            apart = max(abs(a_high - b_low), abs(b_high - a_low))  # on the means: |a - b|
            return outcome(apart <= spec["within"], f"{spec['close'][0]} = {a_low:.4g}, {spec['close'][1]} = "
                           f"{b_low:.4g} (needs |difference| <= {spec['within']:g})")
    except KeyError as exc:
        return outcome(None, f"not measured in this run (no {exc.args[0]!r})")
    raise ConfigError(f"claims.yaml: claim {claim['id']!r} has an unknown check {sorted(spec)}")
