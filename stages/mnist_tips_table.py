"""MNIST tips table: gather every (variant, seed) run into mean +- std per variant, and write
the table `post | reproduced | difference` next to a small metrics file for `dvc exp show`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from stages.common import atomic_path, format_difference, format_mean_std, load_params, mean_std, run_stage, seed_list, write_json
from stages.idx import DataError

log = logging.getLogger("stages.mnist_tips_table")

METRICS = ("train_accuracy", "test_accuracy")


def collect(runs: Path, variants: list[str], seeds: list[int]) -> dict[str, dict[str, dict]]:
    """Per variant and metric, the summary over the seeds params.yaml lists (stale runs of
    removed seeds or variants in the folder are ignored, missing ones are an error)."""
    summary = {}
    for variant in variants:
        per_metric = {m: [] for m in METRICS}
        for seed in seeds:
            path = runs / variant / f"seed{seed}" / "metrics.json"
            if not path.is_file():
                raise DataError(f"{path}: missing; run `dvc repro mnist_tips` first")
            run = json.loads(path.read_text())
            for m in METRICS:
                per_metric[m].append(run[m])
        summary[variant] = {m: mean_std(v) for m, v in per_metric.items()}
    return summary


def mean_curves(runs: Path, variants: list[str], seeds: list[int]):
    """Per-epoch train and test accuracy, mean over seeds, in long form (one row per variant
    and epoch) for `dvc plots`. Train accuracy is fit's running mean over each epoch."""
    import pandas as pd

    frames = []
    for variant in variants:
        per_seed = []
        for seed in seeds:
            live = runs / variant / f"seed{seed}" / "live" / "plots" / "metrics"
            train = pd.read_csv(live / "train" / "accuracy.tsv", sep="\t")["accuracy"]
            test = pd.read_csv(live / "eval" / "accuracy.tsv", sep="\t")["accuracy"]
            per_seed.append(pd.DataFrame({"train_accuracy": train, "test_accuracy": test}))
        mean = pd.concat(per_seed).groupby(level=0).mean()
        mean.insert(0, "variant", variant)
        mean.insert(0, "epoch", mean.index + 1)
        frames.append(mean)
    return pd.concat(frames, ignore_index=True)


def backend_summary(path: Path | None) -> tuple[dict, str]:
    """Mean +- std per variant from a `tools.run_variants` result file (another backend or
    machine, run outside DVC), and a label naming where it ran."""
    if path is None:
        return {}, ""
    data = json.loads(path.read_text())
    per_variant: dict[str, dict[str, list]] = {}
    for run in data["runs"]:
        for m in METRICS:
            per_variant.setdefault(run["variant"], {k: [] for k in METRICS})[m].append(run[m])
    label = f"{data['backend']} on {', '.join(data['devices']) or data['machine']}"
    return {v: {m: mean_std(vals) for m, vals in ms.items()} for v, ms in per_variant.items()}, label


def render_table(summary: dict, post: dict, seeds: list[int], other: tuple[dict, str] = ({}, "")) -> str:
    lines = [
        "# MNIST tips: reproduced table",
        "",
        f"Accuracy from `evaluate` after training, mean ± sample std over {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}). Difference = reproduced mean - post.",
        "",
        "| row | variant | post train | reproduced train | difference | post test | reproduced test | difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, stats in summary.items():
        ref = post.get(variant, {})
        cells = [str(ref.get("row", "-")), f"`{variant}`"]
        for m in METRICS:
            cells.append(f"{ref[m]:.4f}" if m in ref else "-")
            cells.append(format_mean_std(stats[m]))
            cells.append(format_difference(stats[m], ref.get(m)))
        lines.append("| " + " | ".join(cells) + " |")
    runs, label = other
    if runs:
        lines += [
            "",
            f"## The same rows with Keras on {label}",
            "",
            "Run outside DVC by `tools/run_variants.py` with the same code, params and seeds. Keras 3's",
            "JAX backend computes cross-entropy from clipped probabilities, as Keras 2 did; on TensorFlow",
            "it uses the logits behind the softmax.",
            "",
            "| row | variant | post test | this machine (TensorFlow, CPU) | " + label + " |",
            "|---|---|---|---|---|",
        ]
        for variant, stats in summary.items():
            ref = post.get(variant, {})
            there = format_mean_std(runs[variant]["test_accuracy"]) if variant in runs else "-"
            post_test = f"{ref['test_accuracy']:.4f}" if "test_accuracy" in ref else "-"
            lines.append(f"| {ref.get('row', '-')} | `{variant}` | {post_test} | {format_mean_std(stats['test_accuracy'])} | {there} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path, help="CSV of per-epoch accuracy for dvc plots")
    parser.add_argument("--other-backend", type=Path, help="a tools.run_variants result file to show beside ours")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    seeds = seed_list(load_params(args.params, "mnist_tips", "seeds"), "mnist_tips.seeds")
    variants = list(load_params(args.params, "mnist_tips", "variants"))
    post = load_params(args.params, "mnist_tips", "post")
    summary = collect(args.runs, variants, seeds)
    write_json(args.metrics, summary)
    with atomic_path(args.curves) as tmp:
        mean_curves(args.runs, variants, seeds).to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.table) as tmp:
        tmp.write_text(render_table(summary, post, seeds, backend_summary(args.other_backend)), encoding="utf-8")
    log.info(f"mnist_tips_table: {len(variants)} variants x {len(seeds)} seeds -> {args.table}")


if __name__ == "__main__":
    run_stage(main)
