"""Accuracy regression gate: `check --floors FILE` exits 1, naming each failure, when a metric leaves its bounds or
a claim that held when they were set (`derive --out FILE`, from the current results) stops holding; `dvc metrics
diff` has no thresholds and always exits 0. It fails closed: a value that is not a number, a floors file that
checks nothing or has an unknown key, a malformed floors or claims file, and metrics that are not the bytes
dvc.lock recorded are failures, one line each."""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

import yaml
from ruamel.yaml import YAMLError

from lib.common.core import ConfigError, DataError, atomic_path, load_yaml
from lib.results.claims import check, load_claims, load_references, load_tables, lookup
from lib.results.stats import interval_verdict, seed_interval, tolerance_for

DEFAULT_METRICS = ["mnist_tips=reports/mnist_tips/metrics.json", "fashion=reports/fashion/metrics.json"]
DEFAULT_REFERENCE = ["mnist_tips=reference/mnist_tips.yaml", "fashion=reference/fashion.yaml"]
RANGE = (0.0, 1.0)  # every gated metric is an accuracy


def accuracy_entries(node, prefix=""):
    """Every `address -> {mean, std, seeds}` entry of a metrics table whose name is an accuracy."""
    if isinstance(node, dict) and "mean" in node and "std" in node:
        if "accuracy" in prefix.rsplit(".", 1)[-1] and node["mean"] is not None:
            yield prefix, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from accuracy_entries(value, f"{prefix}.{key}" if prefix else key)


def post_value(references: dict, address: str):
    """The post's figure for a metrics address (reference files mirror the metrics files), or None."""
    try:
        value = lookup(references, address)
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, (int, float)) else None


def bounds(entry: dict, post, tolerance: dict, std_factor: float, margin: float) -> dict:
    """The bounds that matter for an accuracy, mean -/+ max(std_factor x seed std, margin): where the post's
    figure lies inside our seeds' prediction interval, a floor and a ceiling (a near-chance row that starts
    to learn fails as surely as a good row that stops); where it lies outside, only the side away from the
    post (a fix towards the post passes, and a row that does not reproduce it is not protected as a result);
    with no post figure (a variant of our own), a floor. A bound at or beyond 0-1 can never fail: left out."""
    width = max(std_factor * (entry["std"] or 0.0), margin)
    low, high = round(entry["mean"] - width, 4), round(entry["mean"] + width, 4)
    if post is None:
        sides = {"floor"}
    elif interval_verdict(seed_interval(entry, tolerance), post) == "consistent":
        sides = {"floor", "ceiling"}
    else:
        sides = {"ceiling"} if entry["mean"] > post else {"floor"}
    inside = {"floor": low > RANGE[0], "ceiling": high < RANGE[1]}
    return {side: value for side, value in (("floor", low), ("ceiling", high)) if side in sides and inside[side]}


def derive(tables: dict, claims: dict, std_factor: float, margin: float, references: dict | None = None) -> dict:
    """Bounds around the current results, and the claims that hold now, which must keep holding."""
    metrics = {}
    for name, table in tables.items():
        for address, entry in accuracy_entries(table, name):
            tolerance = tolerance_for(address.rsplit(".", 1)[-1], claims["tolerance"])
            if found := bounds(entry, post_value(references or {}, address), tolerance, std_factor, margin):
                metrics[address] = found
    holding = [o.claim_id for o in (check(c, tables) for c in claims["claims"]) if o.holds]
    return {"metrics": metrics, "claims": holding}


def run_check(tables: dict, claims: dict, floors: dict) -> list[str]:
    failures = []
    for address, limits in floors.get("metrics", {}).items():
        try:
            value = lookup(tables, address)
        except KeyError:
            failures.append(f"{address}: not measured in this run ({limits})")
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            failures.append(f"{address}: {value} is not a number ({limits})")
        elif "floor" in limits and value < limits["floor"]:
            failures.append(f"{address}: {value} is below its floor {limits['floor']}")
        elif "ceiling" in limits and value > limits["ceiling"]:
            failures.append(f"{address}: {value} is above its ceiling {limits['ceiling']}")
    by_id = {c["id"]: c for c in claims["claims"]}
    for claim_id in floors.get("claims", []):
        if claim_id not in by_id:
            failures.append(f"claim {claim_id}: not in the claims file")
        elif not (outcome := check(by_id[claim_id], tables)).holds:
            failures.append(f"claim {claim_id} no longer holds: {outcome.text}; {outcome.detail}")
    return failures


def load_floors(path: Path) -> dict:
    """A floors file, refused if it has a key the gate does not know (a misspelled section would check nothing)."""
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) - {"metrics", "claims"}:
        keys = sorted(data) if isinstance(data, dict) else data
        raise ConfigError(f"{path}: {keys!r} is not allowed; allowed: the sections metrics and claims")
    metrics, claims = data.get("metrics") or {}, data.get("claims") or []
    if not isinstance(metrics, dict) or not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        raise ConfigError(f"{path}: metrics must map addresses to bounds and claims must list claim ids")
    for address, limits in metrics.items():
        if not isinstance(address, str):
            raise ConfigError(f"{path}: metrics: the address {address!r} is not allowed; "
                              "allowed: a table's dotted address, e.g. fashion.final.test_accuracy")
        if not isinstance(limits, dict) or not limits or set(limits) - {"floor", "ceiling"}:
            raise ConfigError(f"{path}: metrics.{address}: {limits!r} is not allowed; allowed: floor and/or ceiling")
        for side, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{path}: metrics.{address}.{side}: {value!r} is not allowed; allowed: a number")
    return {"metrics": metrics, "claims": claims}


def lock_mismatches(specs: list[str], lock: Path) -> list[str]:
    """Each metrics file whose bytes differ from what dvc.lock recorded for it."""
    if not lock.is_file():
        return [f"{lock}: missing, so the metrics cannot be checked against the run that made them"]
    stages = (load_yaml(lock) or {}).get("stages", {}).values()
    recorded = {out["path"]: out.get("md5") for stage in stages for out in stage.get("outs", [])}
    failures = []
    for path in (spec.partition("=")[2] for spec in specs):
        if path not in recorded:
            failures.append(f"{path}: not an output in {lock}")
        elif hashlib.md5(Path(path).read_bytes()).hexdigest() != recorded[path]:
            failures.append(f"{path}: not the file {lock} recorded (edited by hand, or its stage not rerun; "
                            "see `dvc status`)")
    return failures


def _read(what, loader, *args):
    """`loader(*args)`, with any unreadable or malformed file turned into one ConfigError line."""
    try:
        return loader(*args)
    except ConfigError:
        raise
    except (DataError, OSError, ValueError, YAMLError) as exc:  # JSON errors are ValueErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{what}: cannot be read ({first})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "derive"))
    parser.add_argument("--floors", type=Path, help="floors file to check against (check)")
    parser.add_argument("--out", type=Path, help="floors file to write (derive)")
    parser.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS, help="NAME=PATH of each table's metrics.json")
    parser.add_argument("--reference", nargs="+", default=DEFAULT_REFERENCE,
                        help="NAME=PATH of each table's post figures (derive)")
    parser.add_argument("--claims", type=Path, default=Path("claims.yaml"))
    parser.add_argument("--lock", type=Path, default=Path("dvc.lock"),
                        help="the lock file the metrics must match (check)")
    parser.add_argument("--std-factor", type=float, default=3.0)
    parser.add_argument("--margin", type=float, default=0.02)
    args = parser.parse_args(argv)
    needs = {"check": "floors", "derive": "out"}[args.command]
    if getattr(args, needs) is None:
        parser.error(f"{args.command} needs --{needs}")
    try:
        tables = _read(", ".join(args.metrics), load_tables, args.metrics)
        claims = _read(args.claims, load_claims, args.claims)
        floors = _read(args.floors, load_floors, args.floors) if args.command == "check" else None
    except ConfigError as exc:
        print(f"FAIL {exc}")
        return 1
    if args.command == "derive":
        floors = derive(tables, claims, args.std_factor, args.margin, load_references(args.reference))
        rule = f"mean -/+ max({args.std_factor:g} x seed std, {args.margin:g})"
        header = (f"# Written by `python -m tools.gate derive` from {', '.join(args.metrics)}:\n"
                  f"# bounds = {rule}: floor and ceiling where the\n"
                  "# post's figure is reproduced, the side away from the post where it is not, a floor where the post\n"
                  "# has none; bounds outside 0-1 left out (tools/gate.py says why). Claims that held then.\n")
        with atomic_path(args.out) as tmp:
            tmp.write_text(header + yaml.safe_dump(floors, sort_keys=True), encoding="utf-8")
        count = sum(len(b) for b in floors["metrics"].values())
        print(f"gate: {count} bounds on {len(floors['metrics'])} metrics and {len(floors['claims'])} claims "
              f"-> {args.out}")
        return 0
    failures = lock_mismatches(args.metrics, args.lock) + run_check(tables, claims, floors)
    for failure in failures:
        print(f"FAIL {failure}")
    checked = len(floors["metrics"]) + len(floors["claims"])
    if checked == 0:
        print(f"FAIL {args.floors}: no metric and no claim to check")
        return 1
    print(f"gate: {checked - len(failures)} of {checked} checks pass ({args.floors})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
