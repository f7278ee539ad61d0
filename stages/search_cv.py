"""Beyond the Fashion-MNIST post: one of the search's best trials (`top<n>`, from reports/search/trials.json)
re-run on one seed of `fashion.seeds`, its folds side by side until the post's overfitting warning, as the
search trained it on `search.seed`; each fold's curves in its own fold folder. So that the winner is chosen
on ten seeds, not one lucky draw (stages/search_winner.py); each (place, seed) is a DVC stage."""

from __future__ import annotations

import json
import logging
import time

from lib.common.core import ConfigError, build_config, config_dict, load_params, run_stage
from lib.common.paths import fold_folder, rank_of
from lib.train.configs import CrossValidation, OverfittingRule, check_fits, searched_unit
from lib.train.unit import arguments, load_arrays, start_keras

TRIALS = "reports/search/trials.json"
log = logging.getLogger("stages.search_cv")


def searched_trial(path, rank: str) -> dict:
    """The `rank` (top<n>) best trial of the search's record: its number and params."""
    record = json.loads(open(path).read())
    place = rank_of(rank, "search_cv")
    if place > len(record["top"]):
        raise ConfigError(f"search_cv {rank}: the search kept its {len(record['top'])} best trials (search.top); "
                          f"dvc.yaml's search_cv matrix names one more")
    number = record["top"][place - 1]
    return next(t for t in record["trials"] if t["number"] == number)


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "search_cv")
    fashion = load_params(args.params, "fashion")
    trial = searched_trial(TRIALS, args.variant)
    variant, settings, activation = searched_unit(trial["params"], fashion["training"])
    cv = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation")
    rule = build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
    arrays = load_arrays(args.data)
    images, labels = arrays["x_train"], arrays["y_train"]
    check_fits(settings.batch_size, len(images) - len(images) // cv.k, "fashion.training.batch_size",
               "the images a fold trains on")
    keras_train = start_keras(args.backend)
    label, started = f"{args.variant} (trial {trial['number']}) seed {args.seed}", time.perf_counter()
    log.info(f"{label}: {cv.k} folds side by side until the warning, {variant}, {activation}, {settings}")

    def each_epoch(epoch: int, mean: dict, warned: int | None) -> None:
        log.info(f"{label} epoch {epoch + 1}: fold-mean val_loss {mean['val_loss'][epoch]:.4f} "
                 f"val_accuracy {mean['val_accuracy'][epoch]:.4f}"
                 + ("" if warned is None else f"; the warning is at epoch {warned + 1}"))

    curves, _ = keras_train.folds_until_warning(variant, settings, activation, args.seed, images, labels, cv.k,
                                                rule, each_epoch)
    config = {"rank": args.variant, "trial": trial["number"], "seed": args.seed, "k": cv.k, "activation": activation,
              **config_dict(variant), **config_dict(settings), "overfitting": config_dict(rule)}
    with keras_train.run_outputs([args.out]) as ([out], _):
        out.mkdir()
        for fold, found in enumerate(curves):
            keras_train.record_curves(fold_folder(out, fold), found, {**config, "fold": fold})
    log.info(f"{label}: done in {time.perf_counter() - started:.0f} s, {len(curves[0]['loss'])} epochs")


if __name__ == "__main__":
    run_stage(main)
