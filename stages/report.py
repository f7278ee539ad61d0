"""The reproduction report (reports/README.md): both posts' tables with every figure's verdict, rendered
as the tables render them, the posts' claims and our own checks tested on our numbers, and where and why
we differ; every verdict also goes to reports/verdicts.json."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from lib.common.core import ConfigError, atomic_path, build_config, load_yaml, run_stage, write_json
from lib.results.claims import _pairs, check, headline, load_claims, load_references, load_tables
from lib.results.guards import units_backend
from lib.results.other_backend import INFO, backend_info, backend_summary, expected_params, gap_pattern, other_backend
from lib.results.render import claim_mark, judging, report_lines, verdicts_record
from lib.results.search import section_lines
from lib.train.configs import OverfittingRule

log = logging.getLogger("stages.report")


def other_tables(specs: list[str], fashion: dict, tables: dict, references: dict) -> tuple[dict, dict]:
    """The other-backend files (NAME=PATH) as tables `NAME_other` the differences' texts can address: for a NAME
    starting with `mnist_tips`, `NAME_other.<variant>.<metric>`; with `fashion`, other_backend's with `pattern`.
    Also what trained each and which post's figures it holds: {NAME_other: {post, name, label, file, epoch_order}}."""
    out, shown = {}, {}
    for name, path in _pairs(specs, "--other-backend", "fashion=reports/fashion_jax_cpu.json"):
        if f"{name}_other" in out:
            raise ConfigError(f"--other-backend {name}: given twice")
        if name.startswith("mnist_tips"):
            out[f"{name}_other"], data = backend_summary(Path(path))
            shown[f"{name}_other"] = {"post": "mnist_tips", **backend_info(data, Path(path))}
        elif name.startswith("fashion"):
            rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
            other = other_backend(Path(path), rule, expected_params(fashion))
            pattern = gap_pattern(tables["fashion"]["cross_validation"], other, references["fashion"])
            out[f"{name}_other"] = {**other, "pattern": pattern}
            shown[f"{name}_other"] = {"post": "fashion", **{k: other[k] for k in INFO}}
        else:
            raise ConfigError(f"--other-backend {name}: allowed: a name starting with mnist_tips or fashion")
    return out, shown


def load_differences(path: Path | None) -> list[dict]:
    if path is None:
        return []
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    for i, entry in enumerate(entries):
        missing = {"found", "text"} - set(entry) or ({"title"} - set(entry) if not entry.get("figures") else set())
        if missing:
            raise ConfigError(f"{path}: entry {i + 1} lacks {', '.join(sorted(missing))}")
    return entries


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="NAME=PATH of each table's metrics.json")
    parser.add_argument("--reference", nargs="+", required=True, help="NAME=PATH of each table's reference/*.yaml")
    parser.add_argument("--claims", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--runs", type=Path, help="the units' run folders, for the Keras backend they recorded")
    parser.add_argument("--differences", type=Path,
                        help="reference/differences.yaml: why figures differ from the posts")
    parser.add_argument("--other-backend", nargs="*", default=[], help="NAME=PATH of tools.run_variants files "
                        "(mnist_tips...=..., fashion...=...), as tables NAME_other")
    parser.add_argument("--verdicts", type=Path,
                        help="also write every figure's verdict and every claim's outcome as JSON")
    parser.add_argument("--headline", type=Path,
                        help="also write claims.yaml's headline figures as JSON (the pipeline's DVC metric)")
    parser.add_argument("--search", type=Path, help="reports/search_table/summary.json: the search, beyond the post")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    params = load_yaml(args.params) or {}
    tables = load_tables(args.metrics)
    references = load_references(args.reference)
    claims = load_claims(args.claims)
    outcomes = [check(claim, tables, claims["tolerance"]) for claim in claims["claims"]]
    others, shown = other_tables(args.other_backend, params["fashion"], tables, references)
    backend = units_backend(args.runs) if args.runs else None
    tolerance = judging(params["profile"], claims["tolerance"])
    lines = report_lines(tables, references, tolerance, outcomes, load_differences(args.differences), others, params,
                         backend, shown)
    if args.search:  # beyond the post: the search, as reports/search_table/table.md shows it
        lines += ["", "## Beyond the post: automated search", "", "Details, with every trial: "
                  "[search_table/table.md](search_table/table.md).", "",
                  *section_lines(load_yaml(args.search), references["fashion"]["final"]["test_accuracy"], tolerance, 2)]
    if args.headline:
        write_json(args.headline, headline(tables, claims.get("headline", {})))
    if args.verdicts:  # none on a profile that is not the posts' setup
        write_json(args.verdicts, verdicts_record(tables, references, tolerance, outcomes) if tolerance is not None else
                   {"profile": params["profile"], "figures": {}, "counts": {}, "claims": {}})
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    if tolerance is None:
        log.info(f"report: the {params['profile']} profile, not judged against the posts -> {args.out}")
        return
    held = {s: f"{sum(claim_mark(o) == 'pass' for o in outcomes if o.source == s)}/"
               f"{sum(o.source == s for o in outcomes)}" for s in ("post", "project")}
    log.info(f"report: {held['post']} claims of the posts and {held['project']} checks of our own hold -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
