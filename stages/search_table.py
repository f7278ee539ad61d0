"""The search's table and plots: the best trials of stages/search.py with the space and each parameter's
importance (table.md), every trial on the parallel coordinates of the space (coordinates.csv), and the
importances as a plot (importance.csv). Beyond the Fashion-MNIST post: its closing advice, done."""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from lib.common.core import ConfigError, atomic_paths, build_config, load_params, run_stage
from lib.results.search import coordinates, read_study, table_lines
from lib.train.configs import Search

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


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--trials", required=True, type=Path, help="the search's trials.json")
    parser.add_argument("--study", required=True, type=Path, help="the search's journal file")
    parser.add_argument("--out", required=True, type=Path, help="the folder of table.md and the plots' CSVs")
    args = parser.parse_args(argv)
    search = build_config(Search, load_params(args.params, "search"), "search")
    if not args.trials.is_file() or not args.study.is_file():
        raise ConfigError(f"{args.trials} or {args.study} is missing: run `dvc repro search` first")
    record = json.loads(args.trials.read_text())
    trials = record["trials"]
    importance = importances(args.study)
    with atomic_paths(args.out) as (tmp,):
        tmp.mkdir()
        (tmp / "table.md").write_text("\n".join(table_lines(trials, record["top"], search.space, importance,
                                                            SHOWN)) + "\n", encoding="utf-8")
        rows = coordinates(trials, search.space)
        with open(tmp / "coordinates.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "importance.csv").write_text("parameter,importance\n" + "".join(
            f"{key},{value}\n" for key, value in importance.items()))
    log.info(f"search_table: {len(trials)} trials -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
