"""Report stage: reports/README.md with every table of both posts as `post | reproduced
(mean ± std over seeds) | difference | verdict`, the figures, and the posts' claims and our own
checks tested on our numbers. The rows come from the table stages' renderers, the figures of
the posts from reference/, claims and tolerances from claims.yaml, the prose from params."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.claims import check, count_verdicts, load_claims, load_references, load_tables, verdict_rule
from stages.common import atomic_path, load_params, run_stage
from stages.fashion_table import render_sections, settings_of
from stages.mnist_tips_table import render_rows, settings_sentence

log = logging.getLogger("stages.report")


def seed_counts(tables: dict) -> str:
    """How many seeds each table's figures are over: '10 seeds' or 'MNIST tips 10, Fashion-MNIST 5 seeds'."""
    counts = {"MNIST tips": {e["test_accuracy"]["seeds"] for e in tables["mnist_tips"].values()},
              "Fashion-MNIST": {tables["fashion"]["final"]["test_accuracy"]["seeds"]}}
    if len({n for ns in counts.values() for n in ns}) == 1:
        return f"{next(iter(counts['MNIST tips']))} seeds"
    return ", ".join(f"{name} {'/'.join(map(str, sorted(ns)))}" for name, ns in counts.items()) + " seeds"


def mnist_section(table: dict, reference: dict, tolerance: dict, settings: str) -> list[str]:
    seeds = {e["test_accuracy"]["seeds"] for e in table.values()}
    rows, verdicts = render_rows(table, reference, tolerance)
    return [
        "## MNIST tips (keras-tips-mnist)",
        "",
        f"Accuracy from `evaluate` {settings}, {'/'.join(map(str, sorted(seeds)))} seeds per row.",
        "Details, and the same rows on Keras's JAX backend: [mnist_tips/table.md](mnist_tips/table.md).",
        "",
        *rows,
        "",
        count_verdicts(verdicts),
    ]


def fashion_section(table: dict, reference: dict, tolerance: dict, settings: dict) -> list[str]:
    sections, _ = render_sections(table, reference, tolerance, settings, 3, "fashion/figures/")
    return [
        "## Fashion-MNIST dense nets and CNN (fashion-mnist-dnn-cnn)",
        "",
        "Details: [fashion/table.md](fashion/table.md).",
        "",
        *sections,
        "",
        "![one training image per class](fashion/classes.png)",
    ]


def claims_section(outcomes, seeds: str) -> list[str]:
    """The posts' claims and our own checks, in two tables, each with an honest count. A claim
    holds when it holds on the seed means and at the ends of the figures' 95% prediction
    intervals least favourable to it; one that holds on the means only is counted apart."""
    lines = [f"A claim is checked on the means over our seeds ({seeds}), then at the ends of its figures' 95% prediction",
             "intervals that work against it (the lower end of a figure that must be high, and so on): it *holds* when it",
             "holds both ways, so that no single run inside the intervals would contradict it; *means only* when it holds",
             "on the means but a run inside the intervals could contradict it.", ""]
    for source, title, noun in (("post", "The posts' claims, checked on our numbers", "claims of the posts"),
                                ("project", "Checks of our own", "checks of our own")):
        chosen = [o for o in outcomes if o.source == source]
        if not chosen:
            continue
        lines += [f"## {title}", "", "| | claim | on our numbers (seed means) |", "|---|---|---|"]
        for o in chosen:
            mark = "not measured" if o.holds is None else "**fail**" if not o.holds else "pass" if o.within_intervals else "means only"
            lines.append(f"| {mark} | {o.text} | {o.detail} |")
        measured = [o for o in chosen if o.holds is not None]
        held = sum(bool(o.holds and o.within_intervals) for o in measured)
        means_only = sum(bool(o.holds and not o.within_intervals) for o in measured)
        unmeasured = len(chosen) - len(measured)
        if measured:
            lines += ["", f"{held} of the {len(measured)} {noun} measured in this run hold"
                      + (f", {means_only} more on the means only" if means_only else "")
                      + (f" ({unmeasured} not measured)." if unmeasured else "."), ""]
        else:
            lines += ["", f"None of the {len(chosen)} {noun} was measured in this run.", ""]
    return lines


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="NAME=PATH of each table's metrics.json")
    parser.add_argument("--reference", nargs="+", required=True, help="NAME=PATH of each table's reference/*.yaml")
    parser.add_argument("--claims", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    tables = load_tables(args.metrics)
    references = load_references(args.reference)
    claims = load_claims(args.claims)
    tolerance = claims["tolerance"]
    outcomes = [check(claim, tables, tolerance) for claim in claims["claims"]]
    fashion = {key: load_params(args.params, "fashion", key) for key in ("cross_validation", "training", "overfitting", "final", "cnn")}
    lines = [
        "# Reproduction report",
        "",
        "Generated by `dvc repro report` from the committed runs. Each post's figure is one training run; ours are",
        "several seeds of each.",
        *verdict_rule(tolerance),
        "",
        *mnist_section(tables["mnist_tips"], references["mnist_tips"], tolerance, settings_sentence(args.params)),
        "",
        *fashion_section(tables["fashion"], references["fashion"], tolerance, settings_of(fashion)),
        "",
        *claims_section(outcomes, seed_counts(tables)),
    ]
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    held = {s: f"{sum(bool(o.holds and o.within_intervals) for o in outcomes if o.source == s)}/{sum(o.source == s for o in outcomes)}" for s in ("post", "project")}
    log.info(f"report: {held['post']} claims of the posts and {held['project']} checks of our own hold -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
