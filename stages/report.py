"""Report stage: reports/README.md with every table of both posts as `post | reproduced
(mean ± std over seeds) | difference | verdict`, the figures, and each claim of the posts
checked on our numbers (claims and tolerances come from claims.yaml)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stages.claims import check, load_claims, load_tables, tolerance_for, verdict
from stages.common import atomic_path, format_difference, format_mean_std, load_params, run_stage

log = logging.getLogger("stages.report")


def _compare(entry: dict | None, post, digits: int, tolerance: dict, metric: str) -> list[str]:
    entry = entry or {}
    return ["-" if post is None else f"{post:.{digits}f}" if isinstance(post, float) else str(post),
            format_mean_std(entry, digits), format_difference(entry, post, digits),
            verdict(entry, post, tolerance_for(metric, tolerance))]


def mnist_section(table: dict, post: dict, tolerance: dict) -> list[str]:
    seeds = {e["test_accuracy"]["seeds"] for e in table.values()}
    lines = [
        "## MNIST tips (keras-tips-mnist)",
        "",
        f"Accuracy from `evaluate` after 20 epochs on the first 10,000 training images, {'/'.join(map(str, sorted(seeds)))} seeds per row.",
        "Details, and the same rows on Keras's JAX backend: [mnist_tips/table.md](mnist_tips/table.md).",
        "",
        "| row | variant | post train | reproduced train | diff | verdict | post test | reproduced test | diff | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, entry in table.items():
        ref = post.get(variant, {})
        cells = [str(ref.get("row", "-")), f"`{variant}`"]
        for metric in ("train_accuracy", "test_accuracy"):
            cells += _compare(entry[metric], ref.get(metric), 4, tolerance, metric)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fashion_section(table: dict, post: dict, tolerance: dict) -> list[str]:
    cv = table["cross_validation"]
    seeds = {e["val_accuracy"]["seeds"] for e in cv.values()} | {table["final"]["test_accuracy"]["seeds"]}
    lines = [
        "## Fashion-MNIST dense nets and CNN (fashion-mnist-dnn-cnn)",
        "",
        f"{'/'.join(map(str, sorted(seeds)))} seed(s). Overfitting warning: the first epoch after which no epoch of the next 10",
        "improves the fold-mean val_loss by more than 2%. Details: [fashion/table.md](fashion/table.md).",
        "",
        "### 5-fold cross-validation",
        "",
        "| variant | post epoch | reproduced | diff | verdict | post val_loss | reproduced | diff | verdict | post val_accuracy | reproduced | diff | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    refs = post.get("cross_validation", {})
    for variant, entry in cv.items():
        ref = refs.get(variant, {})
        cells = [f"`{variant}`"]
        for metric, digits in (("epoch", 1), ("val_loss", 3), ("val_accuracy", 3)):
            cells += _compare(entry[metric], ref.get(metric), digits, tolerance, metric)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### The chosen model (dense(256), dropout 0.4, 20 epochs) on the test set", "",
              "| metric | post | reproduced | diff | verdict |", "|---|---|---|---|---|"]
    for metric in ("test_loss", "test_accuracy"):
        lines.append(f"| {metric} | " + " | ".join(_compare(table["final"][metric], post.get("final", {}).get(metric), 4, tolerance, metric)) + " |")
    lines += ["", "### CNN, validated on the test set as the post does", "",
              "| at the warning epoch | post | reproduced | diff | verdict |", "|---|---|---|---|---|"]
    for metric, digits in (("epoch", 1), ("val_loss", 3), ("val_accuracy", 3)):
        lines.append(f"| {metric} | " + " | ".join(_compare(table["cnn"]["warning"][metric], post.get("cnn", {}).get(metric), digits, tolerance, metric)) + " |")
    lines += ["", "### Figures", "", "![one training image per class](fashion/classes.png)", ""]
    lines += [f"![{variant}](fashion/figures/{variant}.png)" for variant in cv] + ["![cnn](fashion/figures/cnn.png)"]
    return lines


def claims_section(outcomes) -> list[str]:
    lines = ["## The posts' claims, checked on our numbers", "", "| | claim | on our numbers |", "|---|---|---|"]
    for o in outcomes:
        mark = {True: "pass", False: "**fail**", None: "not measured"}[o.holds]
        lines.append(f"| {mark} | {o.text} | {o.detail} |")
    measured = [o for o in outcomes if o.holds is not None]
    held = sum(bool(o.holds) for o in measured)
    return lines + ["", f"{held} of the {len(measured)} claims measured in this run hold ({len(outcomes)} in claims.yaml)."]


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="NAME=PATH of each table's metrics.json")
    parser.add_argument("--claims", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    tables = load_tables(args.metrics)
    claims = load_claims(args.claims)
    outcomes = [check(claim, tables) for claim in claims["claims"]]
    lines = [
        "# Reproduction report",
        "",
        "Generated by `dvc repro report` from the committed runs; verdict `matches` means",
        "|reproduced - post| <= max(absolute tolerance, 2 x seed std) (tolerances in `claims.yaml`).",
        "",
    ]
    lines += mnist_section(tables["mnist_tips"], load_params(args.params, "mnist_tips", "post"), claims["tolerance"]) + [""]
    lines += fashion_section(tables["fashion"], load_params(args.params, "fashion", "post"), claims["tolerance"]) + [""]
    lines += claims_section(outcomes)
    with atomic_path(args.out) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info(f"report: {sum(o.holds is True for o in outcomes)}/{len(outcomes)} claims hold -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
