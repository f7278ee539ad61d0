"""MNIST tips table: gather every (variant, seed) run into mean +- std per variant, and write
the table `post | reproduced | difference | verdict` next to a small metrics file for
`dvc exp show`. Its row renderer is the one the report uses too."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from stages.claims import count_verdicts, figure_cells, in_post_order, load_claims, load_reference, seed_summary, tolerance_for, verdict_rule
from stages.common import ConfigError, atomic_path, format_mean_std, load_params, mean_std, run_stage, seed_list, write_json
from stages.idx import DataError
from stages.layout import NOISY, mnist_tips_run
from stages.run_guard import check_one_backend, check_trained_with, check_unchanged_since_start

log = logging.getLogger("stages.mnist_tips_table")

METRICS = ("train_accuracy", "test_accuracy")


def collect(runs: Path, variants: list[str], seeds: list[int]) -> dict[str, dict[str, dict]]:
    """Per variant and metric, the summary over the seeds params.yaml lists (stale runs of
    removed seeds or variants in the folder are ignored, missing ones are an error)."""
    summary = {}
    for variant in variants:
        per_metric = {m: [] for m in METRICS}
        for seed in seeds:
            path = mnist_tips_run(runs, variant, seed) / "metrics.json"
            if not path.is_file():
                raise DataError(f"{path}: missing; run `dvc repro mnist_tips mnist_tips_noisy mnist_tips_unscaled` first")
            run = json.loads(path.read_text())
            for m in METRICS:
                per_metric[m].append(run[m])
        summary[variant] = {m: seed_summary(v) for m, v in per_metric.items()}
    return summary


def mean_curves(runs: Path, variants: list[str], seeds: list[int]):
    """Per-epoch train and test accuracy, mean over seeds, in long form (one row per variant
    and epoch) for `dvc plots`. Train accuracy is fit's running mean over each epoch."""
    import pandas as pd

    frames = []
    for variant in variants:
        per_seed = []
        for seed in seeds:
            live = mnist_tips_run(runs, variant, seed) / "live" / "plots" / "metrics"
            train = pd.read_csv(live / "train" / "accuracy.tsv", sep="\t")["accuracy"]
            test = pd.read_csv(live / "eval" / "accuracy.tsv", sep="\t")["accuracy"]
            per_seed.append(pd.DataFrame({"train_accuracy": train, "test_accuracy": test}))
        mean = pd.concat(per_seed).groupby(level=0).mean()
        mean.insert(0, "variant", variant)
        mean.insert(0, "epoch", mean.index + 1)
        frames.append(mean)
    return pd.concat(frames, ignore_index=True)


def check_groups(groups, variants: list[str]) -> None:
    """`mnist_tips.data` (prepared file -> the rows that train on it) against the variants: every
    variant in exactly one group (dvc.yaml runs each group's rows on its file), every name a variant."""
    if not isinstance(groups, dict) or not all(isinstance(g, list) for g in groups.values()):
        raise ConfigError(f"mnist_tips.data: {groups!r} is not allowed; allowed: a mapping of prepared file -> list of variants")
    named = [v for group in groups.values() for v in group]
    for name in named:
        if name not in variants:
            raise ConfigError(f"mnist_tips.data: {name!r} is not a variant; allowed: {', '.join(variants)}")
    twice = sorted({v for v in named if named.count(v) > 1})
    unplaced = [v for v in variants if v not in named]
    if twice or unplaced:
        raise ConfigError(f"mnist_tips.data: every variant must be in exactly one group; twice: {twice or 'none'}, in none: {unplaced or 'none'}")


def data_groups(params: Path) -> dict[str, list[str]]:
    """`mnist_tips.data` of a params file, checked."""
    groups = load_params(params, "mnist_tips", "data")
    check_groups(groups, list(load_params(params, "mnist_tips", "variants")))
    return groups


def preprocess_variant(params: Path, group: str) -> str:
    """The `preprocess` variant whose images a `mnist_tips.data` group trains on: its own name,
    or for the noisy rows `mnist_tips.noise.source` (their test set is that file's, with noise)."""
    return load_params(params, "mnist_tips", "noise", "source") if group == NOISY else group


def settings_sentence(params: Path) -> str:
    """What every row shares, from params: '20 epochs on the first 10,000 training images'."""
    variants = load_params(params, "mnist_tips", "variants")
    epochs = sorted({v["epochs"] for v in variants.values()})
    limits = sorted({load_params(params, "preprocess", preprocess_variant(params, group)).get("train_limit")
                     for group in data_groups(params)}, key=str)
    epoch_words = f"{epochs[0]} epochs" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs (per row: params.yaml)"
    image_words = "all training images" if limits == [None] else f"the first {', '.join(f'{n:,}' for n in limits if n)} training images"
    return f"after {epoch_words} on {image_words}"


def render_rows(summary: dict, reference: dict, tolerance: dict) -> tuple[list[str], list[str]]:
    """The table's rows in the post's order, each figure as post | reproduced (mean ± std, n) |
    95% prediction interval | post's rank | verdict; and the verdicts, for the count."""
    lines = [
        "| row | variant | post train | reproduced train | 95% interval | rank | verdict "
        "| post test | reproduced test | 95% interval | rank | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for variant in in_post_order(summary, reference):
        stats, ref = summary[variant], reference.get(variant, {})
        cells = [str(ref.get("row", "-")), f"`{variant}`"]
        for m in METRICS:
            figure = figure_cells(stats[m], ref.get(m), tolerance_for(m, tolerance), 4, accuracy=True)
            cells += figure
            verdicts.append(figure[-1])
        lines.append("| " + " | ".join(cells) + " |")
    return lines, verdicts


def backend_summary(path: Path | None) -> tuple[dict, dict]:
    """Mean +- std per variant from a `tools.run_variants` result file (another backend or
    machine, run outside DVC), and the file itself (what it records of how it was made)."""
    if path is None:
        return {}, {}
    data = json.loads(path.read_text())
    per_variant: dict[str, dict[str, list]] = {}
    for run in data["runs"]:
        for m in METRICS:
            per_variant.setdefault(run["variant"], {k: [] for k in METRICS})[m].append(run[m])
    return {v: {m: mean_std(vals) for m, vals in ms.items()} for v, ms in per_variant.items()}, data


def provenance(data: dict, configs: dict[str, dict]) -> str:
    """What the other backend's file says of its params and code, compared with our units'."""
    if "params" not in data or "code" not in data:
        return ("The file records the backend, the Keras version and the devices, but not the params or the code that "
                "made it (it predates `tools/run_variants.py` recording them), so this table cannot say they were ours. "
                "Its noisy rows (7-8) were made when the pipeline tested every seed on one noise draw; ours test each seed on its own.")
    differ = sorted(v for v, p in data["params"].items() if v in configs and p != configs[v])
    same = "identical to" if not differ else f"different from ({', '.join(differ)})"
    return (f"Made at commit `{data['code']['commit'][:12]}`; its params are {same} those in our units' config.json, "
            f"and it records the MD5 of each module it ran ({len(data['code']['md5'])} files).")


def render_table(summary: dict, reference: dict, tolerance: dict, seeds: list[int], settings: str,
                 other: tuple[dict, dict] = ({}, {}), configs: dict | None = None) -> str:
    rows, verdicts = render_rows(summary, reference, tolerance)
    lines = [
        "# MNIST tips: reproduced table",
        "",
        f"Accuracy from `evaluate` {settings}, mean ± sample std over {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}).",
        *verdict_rule(tolerance),
        "",
        *rows,
        "",
        count_verdicts(verdicts),
    ]
    runs, data = other
    if runs:
        label = f"{data['backend']} on {', '.join(data['devices']) or data['machine']}"
        lines += [
            "",
            f"## The same rows with Keras on {label}",
            "",
            "Run outside DVC by `tools/run_variants.py`. " + provenance(data, configs or {}),
            "Keras 3's JAX backend computes cross-entropy from clipped probabilities, as Keras 2 did; on",
            "TensorFlow it uses the logits behind the softmax.",
            "",
            "| row | variant | post test | this pipeline (TensorFlow, CPU) | " + label + " |",
            "|---|---|---|---|---|",
        ]
        for variant in in_post_order(summary, reference):
            ref = reference.get(variant, {})
            there = format_mean_std(runs[variant]["test_accuracy"]) if variant in runs else "-"
            post_test = f"{ref['test_accuracy']:.4f}" if "test_accuracy" in ref else "-"
            lines.append(f"| {ref.get('row', '-')} | `{variant}` | {post_test} | {format_mean_std(summary[variant]['test_accuracy'])} | {there} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="the post's figures (reference/mnist_tips.yaml)")
    parser.add_argument("--claims", required=True, type=Path, help="claims.yaml, for the tolerances of the verdicts")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path, help="CSV of per-epoch accuracy for dvc plots")
    parser.add_argument("--other-backend", type=Path, help="a tools.run_variants result file to show beside ours")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--lock", type=Path, help="dvc.lock: refuse when params.yaml changed since this run's check_params")
    args = parser.parse_args(argv)
    seeds = seed_list(load_params(args.params, "mnist_tips", "seeds"), "mnist_tips.seeds")
    variant_params = load_params(args.params, "mnist_tips", "variants") or {}
    variants = list(variant_params)
    if not variants:
        raise ConfigError("mnist_tips.variants: {} is not allowed; allowed: at least one variant (a table needs a row)")
    if args.lock:
        check_unchanged_since_start(args.params, args.lock)
    settings = settings_sentence(args.params)
    reference = load_reference(args.reference)
    tolerance = load_claims(args.claims)["tolerance"]
    # Read everything before writing anything: a missing run leaves the old outputs in place.
    summary = collect(args.runs, variants, seeds)
    trained, configs = {}, {}
    for data, rows in data_groups(args.params).items():
        for variant in rows:
            for seed in seeds:
                unit = f"{data}@{variant}-{seed}"
                trained[unit] = check_trained_with(mnist_tips_run(args.runs, variant, seed), {**variant_params[variant], "data": data}, unit)
            first = trained[f"{data}@{variant}-{seeds[0]}"]
            configs[variant] = {k: v for k, v in first.items() if k not in ("variant", "seed", "backend")}
    check_one_backend(trained)
    curves = mean_curves(args.runs, variants, seeds)
    table = render_table(summary, reference, tolerance, seeds, settings, backend_summary(args.other_backend), configs)
    write_json(args.metrics, summary)
    with atomic_path(args.curves) as tmp:
        curves.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.table) as tmp:
        tmp.write_text(table, encoding="utf-8")
    log.info(f"mnist_tips_table: {len(variants)} variants x {len(seeds)} seeds -> {args.table}")


if __name__ == "__main__":
    run_stage(main)
