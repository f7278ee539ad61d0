"""The search's table and plots, beyond the Fashion-MNIST post (its closing advice, done): the space, the
trials, the best ones re-run on every seed (stages/search_winner.py) and the winner's test accuracy beside
the post's chosen model and the CNN, judged as every table judges (table.md, and summary.json, which the
report shows the same way); every trial on the parallel coordinates of the space (coordinates.csv), and
each parameter's importance (importance.csv)."""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from lib.common.core import ConfigError, atomic_paths, build_config, load_params, load_yaml, run_stage, write_json
from lib.common.paths import fashion_cnn_run, fashion_final_run, search_final_run
from lib.results.claims import load_claims
from lib.results.render import judging
from lib.results.runs import read_json
from lib.results.search import coordinates, describe, final_figures, read_study, table_lines
from lib.train.configs import CnnConfig, CrossValidation, FinalModel, Search

SHOWN = 10  # the best trials the table lists
log = logging.getLogger("stages.search_table")


def importances(study_path: Path) -> dict[str, float]:
    """Each parameter's importance to the objective over the complete trials (Optuna's PED-ANOVA)."""
    import optuna

    study = read_study(study_path)
    if len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return {}  # nothing to compare
    found = optuna.importance.get_param_importances(study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    return {key: round(value, 6) for key, value in found.items()}


def summary_of(params: Path, trials: list[dict], winner_dir: Path, runs: Path) -> dict:
    """The figures the search's section shows (lib/results/search.section_lines), as summary.json holds them."""
    search = build_config(Search, load_params(params, "search"), "search")
    fashion = load_params(params, "fashion")
    final = build_config(FinalModel, fashion["final"], "fashion.final")
    cnn = build_config(CnnConfig, fashion["cnn"], "fashion.cnn")
    winner, found = read_json(winner_dir / "winner.json"), read_json(winner_dir / "reruns.json")["places"]
    seeds, runs = fashion["seeds"], Path(runs)
    test = {"winner": final_figures([search_final_run(s, runs / "search") for s in seeds], "test_accuracy",
                                   {"trial": winner["trial"], "epochs": winner["epochs"]}),
            "post_choice": final_figures([fashion_final_run(s, runs / "fashion") for s in seeds], "test_accuracy"),
            "cnn": final_figures([fashion_cnn_run(s, runs / "fashion") for s in seeds], "val_accuracy")}
    model, training = final.model, fashion["training"]
    units = model["hidden_units"]
    choice = {"layers": len(units), **{f"units_{i + 1}": u for i, u in enumerate(units)},
              "activation": "relu", "optimizer": training["optimizer"], "learning_rate": training["learning_rate"],
              "dropout_rate": model.get("dropout_rate", 0.0), "l2": model.get("l2", 0.0)}
    k = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation").k
    return {"trials": len(trials), "pruned": sum(t["state"] == "pruned" for t in trials), "space": search.space, "k": k,
            "search_seed": search.seed, "reruns": found, "winner": winner,
            "post_choice": f"{describe(choice)}, {final.epochs} epochs", "cnn": f"{cnn.epochs} epochs",
            "test": test}


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--trials", required=True, type=Path, help="the search's trials.json")
    parser.add_argument("--study", required=True, type=Path, help="the search's journal file")
    parser.add_argument("--winner", required=True, type=Path, help="the folder of search_winner's reruns.json")
    parser.add_argument("--runs", default=Path("reports/runs"), type=Path, help="the units' run folders")
    parser.add_argument("--reference", required=True, type=Path, help="reference/fashion.yaml, the post's figures")
    parser.add_argument("--claims", required=True, type=Path, help="claims.yaml, for the tolerances of the verdicts")
    parser.add_argument("--out", required=True, type=Path, help="the folder of table.md, summary.json "
                        "and the plots' CSVs")
    args = parser.parse_args(argv)
    search = build_config(Search, load_params(args.params, "search"), "search")
    if not args.trials.is_file() or not args.study.is_file():
        raise ConfigError(f"{args.trials} or {args.study} is missing: run `dvc repro search` first")
    trials = json.loads(args.trials.read_text())["trials"]
    summary = summary_of(args.params, trials, args.winner, args.runs)
    tolerance = judging(load_params(args.params, "profile"), load_claims(args.claims)["tolerance"])
    post = load_yaml(args.reference)["final"]["test_accuracy"]
    importance = importances(args.study)
    with atomic_paths(args.out) as (tmp,):
        tmp.mkdir()
        write_json(tmp / "summary.json", summary)
        (tmp / "table.md").write_text("\n".join(table_lines(summary, trials, importance, SHOWN, post, tolerance))
                                      + "\n", encoding="utf-8")
        rows = coordinates(trials, search.space)
        with open(tmp / "coordinates.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "importance.csv").write_text("parameter,importance\n" + "".join(
            f"{key},{value}\n" for key, value in importance.items()))
    log.info(f"search_table: {len(trials)} trials, winner {summary['winner']['place']} -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
