"""Beyond the Fashion-MNIST post: the search's winner chosen on ten seeds, not one lucky draw. Each of its
best trials re-run on every seed (stages/search_cv.py) gives a 95% prediction interval of its CV figure
(the fold-mean val_accuracy at the warning); the winner has the highest lower end. Writes reruns.json (each
re-run trial's figures) and winner.json (what the winner's final models train, stages/search_final.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lib.common.core import ConfigError, atomic_paths, build_config, load_params, run_stage, write_json
from lib.common.paths import SEARCH_RUNS
from lib.results.search import reruns, winner
from lib.train.configs import CrossValidation, OverfittingRule, Search

log = logging.getLogger("stages.search_winner")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--trials", required=True, type=Path, help="the search's trials.json")
    parser.add_argument("--runs", default=SEARCH_RUNS, type=Path, help="the re-runs' and final models' run folders")
    parser.add_argument("--out", required=True, type=Path, help="the folder of reruns.json and winner.json")
    args = parser.parse_args(argv)
    search = build_config(Search, load_params(args.params, "search"), "search")
    fashion = load_params(args.params, "fashion")
    k = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation").k
    rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
    if not args.trials.is_file():
        raise ConfigError(f"{args.trials}: no such file; run `dvc repro search` first")
    record = json.loads(args.trials.read_text())
    if len(record["top"]) < len(search.top):
        raise ConfigError(f"{args.trials}: {len(record['top'])} complete trials, fewer than search.top's "
                          f"{len(search.top)} places; run a longer search (search.trials) or name fewer places")
    found = reruns(record, list(search.top), fashion["seeds"], k, rule, args.runs)
    best = winner(found)
    with atomic_paths(args.out) as (tmp,):
        tmp.mkdir()
        write_json(tmp / "reruns.json", {"places": found, "winner": best["place"]})
        write_json(tmp / "winner.json", best)
    for place, entry in found.items():
        interval = entry["interval"]
        log.info(f"search_winner: {place} (trial {entry['trial']}): val_accuracy {entry['val_accuracy']['mean']:.4f} "
                 f"± {entry['val_accuracy']['std']:.4f}, interval {interval['low']:.4f} to {interval['high']:.4f}")
    log.info(f"search_winner: {best['place']} (trial {best['trial']}), its final models train {best['epochs']} epochs")


if __name__ == "__main__":
    run_stage(main)
