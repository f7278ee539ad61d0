"""MNIST tips table: every (variant, seed) run gathered into mean +- std per variant, written as the
table `post | reproduced | interval | rank, p | statistical | practical` beside its summary (metrics.json)
and the per-epoch curves for `dvc plots`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lib.common.core import atomic_path, load_yaml, require, run_stage, seed_list, write_json
from lib.common.paths import mnist_tips_run, unit_name
from lib.results.claims import load_claims, load_reference
from lib.results.guards import check_unchanged_since_start, check_units
from lib.results.other_backend import backend_summary
from lib.results.render import judging, render_table, settings_sentence
from lib.results.runs import collect_tips, tips_curves, write_curves
from lib.train.configs import check_groups, tips_unit

log = logging.getLogger("stages.mnist_tips_table")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="the post's figures (reference/mnist_tips.yaml)")
    parser.add_argument("--claims", required=True, type=Path, help="claims.yaml, for the tolerances of the verdicts")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path, help="CSV of per-epoch accuracy for dvc plots")
    parser.add_argument("--other-backend", type=Path, nargs="*", default=[],
                        help="tools.run_variants result files to show beside ours, one column each")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--lock", type=Path,
                        help="dvc.lock: refuse when params.yaml changed since this run's check_params")
    args = parser.parse_args(argv)
    params = load_yaml(args.params) or {}
    tips = params["mnist_tips"]
    seeds = seed_list(tips["seeds"], "mnist_tips.seeds")
    variants = list(tips.get("variants") or {})
    require(variants, "mnist_tips.variants", {}, "allowed: at least one variant (a table needs a row)")
    if args.lock:
        check_unchanged_since_start(args.params, args.lock)
    reference = load_reference(args.reference)
    tolerance = judging(params["profile"], load_claims(args.claims)["tolerance"])
    # Read everything before writing anything: a missing run leaves the old outputs in place.
    summary = collect_tips(variants, seeds, args.runs)
    units, configs = {}, {}
    for data, rows in check_groups(tips["data"], variants).items():
        for variant in rows:
            for seed in seeds:
                config = tips_unit(tips["variants"], variant, seed, data)[1]
                units[unit_name("mnist_tips", seed, variant, data)] = (mnist_tips_run(variant, seed, args.runs), config)
            configs[variant] = {k: v for k, v in config.items() if k not in ("variant", "seed")}  # any seed's
    backend = check_units(units)
    curves = tips_curves(variants, seeds, args.runs)
    table = render_table(summary, reference, tolerance, seeds, settings_sentence(params),
                         [backend_summary(path) for path in args.other_backend], configs, backend)
    write_json(args.metrics, summary)
    write_curves(args.curves, curves)
    with atomic_path(args.table) as tmp:
        tmp.write_text(table, encoding="utf-8")
    log.info(f"mnist_tips_table: {len(variants)} variants x {len(seeds)} seeds on {backend} -> {args.table}")


if __name__ == "__main__":
    run_stage(main)
