"""Accuracy regression gate: exit 1, naming each failure, when a metric leaves its bounds or a
claim that held when the bounds were set stops holding. (`dvc metrics diff` shows changes but
has no thresholds and always exits 0.)

    python -m tools.gate check --floors floors/full.yaml     # after `dvc repro`
    python -m tools.gate derive --out floors/full.yaml       # set bounds from the current results

Each accuracy gets the bounds that matter for it, mean -/+ max(3 x seed std, 0.02):
- the post's figure lies inside our seeds' prediction interval (the report's verdict
  `consistent`): a floor and a ceiling, so a near-chance row that starts to learn fails as
  surely as a good row that stops learning;
- the post's figure lies outside it: only the bound on the side away from the post, so a fix
  that brings the row towards the post passes, and a row that does not reproduce the post is
  not protected as if it were a result;
- no post figure (a variant of our own): a floor.
A bound at or beyond the metric's range (accuracy 0 to 1) can never fail and is left out.

`check` fails closed: a value that is not a number, a floors file that checks nothing or has a
key it does not know, a malformed floors or claims file, and a metrics file whose bytes are not
the ones dvc.lock recorded (edited by hand, or a stage not rerun) are failures, one line each.
"""

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
        return
    if isinstance(node, dict):
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
    """{floor, ceiling} or either alone, as the module docstring says."""
    width = max(std_factor * (entry["std"] or 0.0), margin)
    low, high = round(entry["mean"] - width, 4), round(entry["mean"] + width, 4)
    if post is None:
        sides = {"floor"}
    elif interval_verdict(seed_interval(entry, tolerance), post) == "consistent":
        sides = {"floor", "ceiling"}
    else:
        sides = {"ceiling"} if entry["mean"] > post else {"floor"}
    found = {}
    if "floor" in sides and low > RANGE[0]:
        found["floor"] = low
    if "ceiling" in sides and high < RANGE[1]:
        found["ceiling"] = high
    return found


def derive(tables: dict, claims: dict, std_factor: float, margin: float, references: dict | None = None) -> dict:
    """Bounds around the current results, each metric in the directions that matter for it; and
    the claims that hold now, which must keep holding."""
    metrics = {}
    for name, table in tables.items():
        for address, entry in accuracy_entries(table, name):
            found = bounds(entry, post_value(references or {}, address), tolerance_for(address.rsplit(".", 1)[-1], claims["tolerance"]), std_factor, margin)
            if found:
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
            continue
        outcome = check(by_id[claim_id], tables)
        if not outcome.holds:
            failures.append(f"claim {claim_id} no longer holds: {outcome.text}; {outcome.detail}")
    return failures


def load_floors(path: Path) -> dict:
    """A floors file, refused with one line if it has a key the gate does not know (a misspelled
    section would otherwise check nothing) or a bound that is not a number."""
    data = load_yaml(path)
    if not isinstance(data, dict) or set(data) - {"metrics", "claims"}:
        keys = sorted(data) if isinstance(data, dict) else data
        raise ConfigError(f"{path}: {keys!r} is not allowed; allowed: the sections metrics and claims")
    metrics, claims = data.get("metrics") or {}, data.get("claims") or []
    if not isinstance(metrics, dict) or not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        raise ConfigError(f"{path}: metrics must map addresses to bounds and claims must list claim ids")
    for address, limits in metrics.items():
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
    recorded = {}
    for stage in (load_yaml(lock) or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            recorded[out["path"]] = out.get("md5")
    failures = []
    for spec in specs:
        path = spec.partition("=")[2]
        if path not in recorded:
            failures.append(f"{path}: not an output in {lock}")
        elif hashlib.md5(Path(path).read_bytes()).hexdigest() != recorded[path]:
            failures.append(f"{path}: not the file {lock} recorded (edited by hand, or its stage not rerun; see `dvc status`)")
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
    parser.add_argument("--reference", nargs="+", default=DEFAULT_REFERENCE, help="NAME=PATH of each table's post figures (derive)")
    parser.add_argument("--claims", type=Path, default=Path("claims.yaml"))
    parser.add_argument("--lock", type=Path, default=Path("dvc.lock"), help="the lock file the metrics must match (check)")
    parser.add_argument("--std-factor", type=float, default=3.0)
    parser.add_argument("--margin", type=float, default=0.02)
    args = parser.parse_args(argv)
    if args.command == "check" and args.floors is None:
        parser.error("check needs --floors")
    if args.command == "derive" and args.out is None:
        parser.error("derive needs --out")
    try:
        tables = _read(", ".join(args.metrics), load_tables, args.metrics)
        claims = _read(args.claims, load_claims, args.claims)
        floors = _read(args.floors, load_floors, args.floors) if args.command == "check" else None
    except ConfigError as exc:
        print(f"FAIL {exc}")
        return 1
    if args.command == "derive":
        floors = derive(tables, claims, args.std_factor, args.margin, load_references(args.reference))
        with atomic_path(args.out) as tmp:
            tmp.write_text(
                f"# Written by `python -m tools.gate derive` from {', '.join(args.metrics)}:\n"
                f"# bounds = mean -/+ max({args.std_factor:g} x seed std, {args.margin:g}): floor and ceiling where the\n"
                "# post's figure is reproduced, the side away from the post where it is not, a floor where the post\n"
                "# has none; bounds outside 0-1 left out (tools/gate.py says why). Claims that held then.\n"
                + yaml.safe_dump(floors, sort_keys=True),
                encoding="utf-8",
            )
        count = sum(len(b) for b in floors["metrics"].values())
        print(f"gate: {count} bounds on {len(floors['metrics'])} metrics and {len(floors['claims'])} claims -> {args.out}")
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
