"""Fashion-MNIST tables: mean curves over folds, the post's overfitting warning, mean +- std over
seeds, the final model and the CNN, next to the post's figures; plus the post's `visualize()`
figures (loss and accuracy, train vs validation, warning marked) and the data of the dvc plots."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import atomic_path, build_config, load_params, require, run_stage, seed_list, write_json
from lib.common.paths import fashion_cnn_run, fashion_cv_run, fashion_final_run, unit_name
from lib.results.claims import load_claims, load_reference
from lib.results.figures import plot_curves, plot_warning_epochs
from lib.results.guards import check_unchanged_since_start, check_units
from lib.results.other_backend import expected_params, other_backend
from lib.results.render import BACKENDS, judging, render_other_backend, render_sections, settings_of, verdict_rule
from lib.results.runs import confusion_rows, read_curves, read_json, summarize_cv, warning_epochs, write_curves
from lib.results.stats import mean_std, seed_summaries
from lib.train.configs import CrossValidation, OverfittingRule, cnn_unit, cv_unit, final_unit
from lib.train.overfitting import CURVES, WARNING, mean_curves, warning_summary

log = logging.getLogger("stages.fashion_table")


def units_of(fashion: dict, seeds: list[int], k: int, runs: Path) -> dict[str, tuple[Path, dict]]:
    """Every unit of the tables: stage name -> (run folder, the effective config its params give)."""
    units = {}
    for seed in seeds:
        for variant in fashion["variants"]:
            for fold in range(k):
                units[f"{unit_name('fashion_cv', seed, variant)} fold {fold}"] = (
                    fashion_cv_run(variant, seed, fold, runs), cv_unit(fashion, variant, seed, fold)[3])
        units[unit_name("fashion_final", seed)] = (fashion_final_run(seed, runs), final_unit(fashion, seed)[2])
        units[unit_name("fashion_cnn", seed)] = (fashion_cnn_run(seed, runs), cnn_unit(fashion, seed)[2])
    return units


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path, help="the post's figures (reference/fashion.yaml)")
    parser.add_argument("--claims", required=True, type=Path, help="claims.yaml, for the tolerances of the verdicts")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--figures", required=True, type=Path)
    parser.add_argument("--curves", required=True, type=Path, help="CSV of per-epoch mean curves for dvc plots")
    parser.add_argument("--predictions", required=True, type=Path, help="folder for the confusion-matrix data")
    parser.add_argument("--warnings", required=True, type=Path, help="CSV of each seed's and the post's warning epoch")
    parser.add_argument("--other-backend", type=Path, nargs="*", default=[],
                        help="tools.run_variants --post fashion files to show beside ours")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--lock", type=Path,
                        help="dvc.lock: refuse when params.yaml changed since this run's check_params")
    args = parser.parse_args(argv)
    fashion = load_params(args.params, "fashion")
    require(fashion.get("variants"), "fashion.variants", fashion.get("variants"),
            "allowed: at least one variant (a table needs a row)")
    if args.lock:
        check_unchanged_since_start(args.params, args.lock)
    seeds = seed_list(fashion["seeds"], "fashion.seeds")
    k = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation").k
    rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
    reference = load_reference(args.reference)
    tolerance = judging(load_params(args.params, "profile"), load_claims(args.claims)["tolerance"])

    # Read everything before writing anything: a missing run leaves the old outputs in place.
    summary, curves = summarize_cv(list(fashion["variants"]), seeds, k, rule, args.runs)
    finals = [read_json(fashion_final_run(s, args.runs) / "metrics.json") for s in seeds]
    cnn_runs = [read_json(fashion_cnn_run(s, args.runs) / "metrics.json") for s in seeds]
    cnn_curves = [mean_curves([read_curves(fashion_cnn_run(s, args.runs))]) for s in seeds]
    backend = check_units(units_of(fashion, seeds, k, args.runs))
    metrics = {"cross_validation": summary, "final": seed_summaries(finals, ("test_loss", "test_accuracy")),
               "cnn": {"warning": seed_summaries([warning_summary(c, rule) for c in cnn_curves], WARNING),
                       "final_val_accuracy": mean_std([c["val_accuracy"][-1] for c in cnn_curves])}}
    sections, _ = render_sections(metrics, reference, tolerance, settings_of(fashion), 2, "figures/")
    for path in args.other_backend:
        sections += render_other_backend(other_backend(path, rule, expected_params(fashion)), metrics, reference,
                                         tolerance, 2, backend)
    table = "\n".join([
        "# Fashion-MNIST: reproduced tables", "",
        f"Mean ± sample std over the seeds {', '.join(map(str, seeds))}. The warning is taken on the "
        "per-epoch mean over",
        f"folds, as the post's `visualize()` does. Trained with Keras 3 on {BACKENDS.get(backend, backend)}.",
        *verdict_rule(tolerance),
        *sections,
    ]) + "\n"
    epochs = {**{v: e["epoch"] for v, e in summary.items()}, "cnn": metrics["cnn"]["warning"]["epoch"]}
    warnings = warning_epochs({v: list(zip(seeds, e["values"])) for v, e in epochs.items()}, reference)

    write_json(args.metrics, metrics)
    write_curves(args.curves, curves)
    with atomic_path(args.warnings) as tmp:
        warnings.to_csv(tmp, index=False)
    with atomic_path(args.predictions) as tmp:
        tmp.mkdir()
        for name, runs in (("final", finals), ("cnn", cnn_runs)):
            confusion_rows(np.sum([r["confusion"] for r in runs], axis=0)).to_csv(tmp / f"{name}.csv", index=False)
    with atomic_path(args.figures) as tmp:
        tmp.mkdir()
        for variant, c in curves.items():
            plot_curves(tmp / f"{variant}.png", f"dense: {variant} (mean over {k} folds)", c,
                        warning_summary(c, rule)["epoch"], "validation")
        cnn = {name: np.mean([c[name] for c in cnn_curves], axis=0) for name in CURVES}
        plot_curves(tmp / "cnn.png", "CNN (validation = test set)", cnn, warning_summary(cnn, rule)["epoch"], "test")
        plot_warning_epochs(tmp / "warning_epochs.png", warnings)
    with atomic_path(args.table) as tmp:
        tmp.write_text(table, encoding="utf-8")
    log.info(f"fashion_table: {len(summary)} variants x {len(seeds)} seeds on {backend} -> {args.table}")


if __name__ == "__main__":
    run_stage(main)
