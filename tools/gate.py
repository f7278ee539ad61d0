"""Accuracy regression gate: exit 1, naming each failure, when a metric falls below its floor
or a claim that held when the floors were set stops holding. (`dvc metrics diff` shows
changes but has no thresholds and always exits 0.)

    python -m tools.gate check --floors floors/full.yaml     # after `dvc repro`
    python -m tools.gate derive --out floors/full.yaml       # set floors from the current results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from stages.claims import check, load_claims, load_tables, lookup
from stages.common import atomic_path, load_yaml

DEFAULT_METRICS = ["mnist_tips=reports/mnist_tips/metrics.json", "fashion=reports/fashion/metrics.json"]


def accuracy_entries(node, prefix=""):
    """Every `address -> {mean, std, seeds}` entry of a metrics table whose name is an accuracy."""
    if isinstance(node, dict) and "mean" in node and "std" in node:
        if "accuracy" in prefix.rsplit(".", 1)[-1] and node["mean"] is not None:
            yield prefix, node
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from accuracy_entries(value, f"{prefix}.{key}" if prefix else key)


def derive(tables: dict, claims: dict, std_factor: float, margin: float) -> dict:
    """Floors a little under the current results: mean - max(std_factor x seed std, margin);
    and the claims that hold now, which must keep holding."""
    floors = {}
    for name, table in tables.items():
        for address, entry in accuracy_entries(table, name):
            floors[address] = round(entry["mean"] - max(std_factor * (entry["std"] or 0.0), margin), 4)
    holding = [o.claim_id for o in (check(c, tables) for c in claims["claims"]) if o.holds]
    return {"metrics": floors, "claims": holding}


def run_check(tables: dict, claims: dict, floors: dict) -> list[str]:
    failures = []
    for address, floor in floors.get("metrics", {}).items():
        try:
            value = lookup(tables, address)
        except KeyError:
            failures.append(f"{address}: not measured in this run (floor {floor})")
            continue
        if value is None or value < floor:
            failures.append(f"{address}: {value} is below its floor {floor}")
    by_id = {c["id"]: c for c in claims["claims"]}
    for claim_id in floors.get("claims", []):
        if claim_id not in by_id:
            failures.append(f"claim {claim_id}: not in the claims file")
            continue
        outcome = check(by_id[claim_id], tables)
        if not outcome.holds:
            failures.append(f"claim {claim_id} no longer holds: {outcome.text}; {outcome.detail}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "derive"))
    parser.add_argument("--floors", type=Path, help="floors file to check against (check)")
    parser.add_argument("--out", type=Path, help="floors file to write (derive)")
    parser.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS, help="NAME=PATH of each table's metrics.json")
    parser.add_argument("--claims", type=Path, default=Path("claims.yaml"))
    parser.add_argument("--std-factor", type=float, default=3.0)
    parser.add_argument("--margin", type=float, default=0.02)
    args = parser.parse_args(argv)

    tables = load_tables(args.metrics)
    claims = load_claims(args.claims)
    if args.command == "derive":
        if args.out is None:
            parser.error("derive needs --out")
        floors = derive(tables, claims, args.std_factor, args.margin)
        with atomic_path(args.out) as tmp:
            tmp.write_text(
                f"# Written by `python -m tools.gate derive` from {', '.join(args.metrics)}:\n"
                f"# floor = mean - max({args.std_factor:g} x seed std, {args.margin:g}); claims that held then.\n"
                + yaml.safe_dump(floors, sort_keys=True),
                encoding="utf-8",
            )
        print(f"gate: {len(floors['metrics'])} floors and {len(floors['claims'])} claims -> {args.out}")
        return 0
    if args.floors is None:
        parser.error("check needs --floors")
    floors = load_yaml(args.floors)
    failures = run_check(tables, claims, floors)
    for failure in failures:
        print(f"FAIL {failure}")
    checked = len(floors.get("metrics", {})) + len(floors.get("claims", []))
    print(f"gate: {checked - len(failures)} of {checked} checks pass ({args.floors})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
