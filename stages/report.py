"""Report stage: reports/README.md with every table of both posts as `post | reproduced
(mean ± std over seeds) | difference | verdict`, the figures, and the posts' claims and our own
checks tested on our numbers. The rows come from the table stages' renderers, the figures of
the posts from reference/, claims and tolerances from claims.yaml, the prose from params."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import yaml

from stages.claims import (check, count_verdicts, figure_cells, load_claims, load_references, load_tables, lookup, post_rank,
                           seed_interval, tolerance_for, verdict_rule)
from stages.common import ConfigError, atomic_path, load_params, run_stage, write_json
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
            mark = "**fail**" if claim_mark(o) == "fail" else claim_mark(o)
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


def post_figures(reference: dict, path: tuple = ()):
    """(path, post value) of every figure a post printed: the numeric leaves of its reference
    file, whose keys mirror the table's metrics.json (`row` only orders the MNIST rows)."""
    for key, value in reference.items():
        if isinstance(value, dict):
            yield from post_figures(value, path + (key,))
        elif key != "row" and isinstance(value, (int, float)):
            yield path + (key,), value


def fill(text: str, tables: dict) -> str:
    """A differences.yaml text with each `{table.path:format}` replaced by that figure (the seed
    mean), or by "(not in this run)" where this run's tables lack it (a smoke run keeps a few
    variants); a test checks every address against the committed full run."""
    def one(match: re.Match) -> str:
        try:
            value = lookup(tables, match[1])
        except (KeyError, TypeError):
            return f"(`{match[1]}`: not in this run)"
        return "none" if value is None else format(value, match[2] or "g")
    return re.sub(r"\{([A-Za-z0-9_.]+)(?::([^}]*))?\}", one, text)


def figure_verdicts(tables: dict, references: dict, tolerance: dict) -> list[tuple[str, list[str], dict]]:
    """Every figure of the posts that this run measured: its address (`table.path`), its cells as
    the tables show them, and a record for reports/verdicts.json (post, mean, std, n, the 95%
    prediction interval, the post's rank among itself and the seeds, verdict)."""
    found = []
    for table, reference in references.items():
        for path, post in post_figures(reference):
            node = tables[table]
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            digits = 1 if path[-1] == "epoch" else 4 if table == "mnist_tips" or path[0] == "final" else 3
            tol = tolerance_for(path[-1], tolerance)
            cells = figure_cells(node, post, tol, digits, "accuracy" in path[-1])
            interval = seed_interval(node, tol) if node.get("mean") is not None else {}
            values = node.get("values") or ([node["mean"]] if node.get("mean") is not None else [])
            record = {"post": post, "mean": node.get("mean"), "std": node.get("std"), "n": interval.get("n"),
                      "low": interval.get("low"), "high": interval.get("high"), "widened": interval.get("widened"),
                      "rank": post_rank(values, post), "verdict": cells[-1]}
            found.append((".".join((table, *path)), cells, record))
    return found


def differences_section(tables: dict, references: dict, tolerance: dict, differences: list[dict]) -> list[str]:
    """Every figure of the posts that lies outside our 95% prediction interval, each with what
    `differences.yaml` says of it (the cause an experiment showed, or the candidates tested and
    what they gave), then the entries about patterns rather than single figures."""
    by_figure = {f: entry for entry in differences for f in entry.get("figures", [])}
    lines = ["## Where we differ from the posts, and why", "",
             "Every figure outside its interval, with the cause an experiment showed or the candidates tested. "
             "The numbers in the text are seed means from the committed results.", ""]
    outside = [(address, cells) for address, cells, _ in figure_verdicts(tables, references, tolerance) if cells[-1] == "outside"]
    if not outside:
        lines.append("No figure of the posts lies outside its interval.")
    # One item per entry of differences.yaml (its figures together), then the unexplained ones.
    groups: dict[int, list] = {}
    for address, cells in outside:
        groups.setdefault(id(by_figure.get(address)), []).append((address, cells))
    for key, figures in groups.items():
        entry = by_figure.get(figures[0][0])
        shown = "; ".join(f"`{a}`: post {c[0]}, ours {c[1]}, interval {c[2]}, the post's rank {c[3]}" for a, c in figures)
        found = f"*{entry['found'].capitalize()}:* {fill(entry['text'], tables)}" if entry else "*No cause investigated yet.*"
        lines += [f"- {shown}.", f"  {found}"]
    patterns = [e for e in differences if not e.get("figures")]
    for entry in patterns:
        lines += ["", f"**{entry['title']}** *{entry['found'].capitalize()}:* {fill(entry['text'], tables)}"]
    return lines


def other_tables(specs: list[str], params: Path, tables: dict, references: dict) -> dict:
    """The other-backend files as tables the differences' texts can address, each NAME=PATH as
    `NAME_other`: `mnist_tips_other.<variant>.<metric>`; for a NAME starting with `fashion`,
    `<NAME>_other.variants.<variant>.<logits|clipped|keras>.<figure>` and `<NAME>_other.pattern` (stages.fashion_table.gap_pattern: which side of the seed mean the
    post's dense-net figures fall on, on TensorFlow and on the other backend)."""
    from stages.claims import _pairs
    from stages.common import build_config
    from stages.fashion_cv import CrossValidation
    from stages.fashion_table import OverfittingRule, expected_backend_params, gap_pattern, other_backend
    from stages.mnist_tips_table import backend_summary

    out = {}
    for name, path in _pairs(specs, "--other-backend", "fashion=reports/fashion_jax_cpu.json"):
        if name == "mnist_tips":
            out["mnist_tips_other"] = backend_summary(Path(path))[0]
        elif name.startswith("fashion"):
            fashion = load_params(params, "fashion")
            cv = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation")
            rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
            other = other_backend(Path(path), rule, expected_backend_params(fashion, cv))
            out[f"{name}_other"] = {**other, "pattern": gap_pattern(tables["fashion"]["cross_validation"], other, references["fashion"])}
        else:
            raise ConfigError(f"--other-backend {name}: allowed: mnist_tips, or a name starting with fashion")
    return out


def claim_mark(outcome) -> str:
    """A claim's outcome as the claims tables show it."""
    if outcome.holds is None:
        return "not measured"
    return "fail" if not outcome.holds else "pass" if outcome.within_intervals else "means only"


def verdicts_record(tables: dict, references: dict, tolerance: dict, outcomes: list) -> dict:
    """reports/verdicts.json: every post figure's verdict with its interval and rank, and every
    claim's outcome, one entry per line of `git diff`, so that what a change of seeds or code
    moved is read off the diff."""
    def rounded(value):
        return round(value, 6) if isinstance(value, float) else value

    figures = {address: {k: rounded(v) for k, v in record.items()} for address, _, record in figure_verdicts(tables, references, tolerance)}
    counts = {}
    for address, record in figures.items():
        table = counts.setdefault(address.split(".")[0], {"consistent": 0, "outside": 0})
        table["consistent" if record["verdict"] == "consistent" else "outside"] += 1
    return {"figures": figures, "counts": counts, "claims": {o.claim_id: claim_mark(o) for o in outcomes}}


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
    parser.add_argument("--differences", type=Path, help="reference/differences.yaml: why figures differ from the posts")
    parser.add_argument("--other-backend", nargs="*", default=[],
                        help="NAME=PATH of tools.run_variants files (mnist_tips=..., fashion...=...), as tables NAME_other for the differences' texts")
    parser.add_argument("--verdicts", type=Path,
                        help="also write every figure's verdict and every claim's outcome as JSON (git diff shows what changed)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    tables = load_tables(args.metrics)
    differences = load_differences(args.differences)
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
        *differences_section({**tables, **other_tables(args.other_backend, args.params, tables, references)}, references, tolerance, differences),
    ]
    if args.verdicts:
        write_json(args.verdicts, verdicts_record(tables, references, tolerance, outcomes))
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    held = {s: f"{sum(bool(o.holds and o.within_intervals) for o in outcomes if o.source == s)}/{sum(o.source == s for o in outcomes)}" for s in ("post", "project")}
    log.info(f"report: {held['post']} claims of the posts and {held['project']} checks of our own hold -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
