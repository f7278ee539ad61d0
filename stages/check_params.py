"""Params check stage: the whole params file, validated before any other stage runs.

Every stage of both posts' tables depends on this stage's output, so a misspelled section or key
(`fashon:`, `seed:` beside `seeds:`), an impossible value given with `dvc exp run -S`, or a variant
name a shell would read as commands stops the pipeline here, with one line naming the key, before
DVC removes any earlier result or a stage's command line is built from the name. Each section is
checked by the dataclass its stages build from it, so the stages and this check cannot disagree.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from lib.common.core import ConfigError, build_config, load_yaml, run_stage, seed_list, write_json
from lib.common.paths import FASHION_DATA, NOISY, check_name
from lib.data.configs import FetchConfig, NoiseConfig, PreprocessConfig, dataset_config, train_count
from lib.train import configs

log = logging.getLogger("stages.check_params")


@dataclass(frozen=True)
class Params:
    profile: str
    datasets: dict
    fetch: dict
    preprocess: dict
    training: dict
    mnist_tips: dict
    fashion: dict
    search: dict


@dataclass(frozen=True)
class TipsSection:
    seeds: list
    noise: dict
    data: dict
    variants: dict


@dataclass(frozen=True)
class FashionSection:
    seeds: list
    training: dict
    cross_validation: dict
    overfitting: dict
    variants: dict
    final: dict
    cnn: dict


# What the check writes. It never depends on the values, so a change that passes the check leaves
# this file, and so every stage that did not use the changed value, up to date.
RESULT = {"checked": sorted(f.name for f in fields(Params)), "result": "valid"}


def names_of(node, where: str) -> list[str]:
    """The keys of a mapping of named things (datasets, variants), each a safe name."""
    if not isinstance(node, Mapping) or not node:
        raise ConfigError(f"{where}: {node!r} is not allowed; allowed: a mapping of one or more named entries")
    for name in node:
        check_name(name, where)
    return list(node)


def check(params: Mapping) -> None:
    """Every section and key of a params file, the way the stages that read them check them, and each
    unit's batch against the training images of its file, as the unit checks it (configs.check_fits)."""
    top = build_config(Params, params, "params")
    check_name(top.profile, "profile")
    datasets = {name: dataset_config(top.datasets[name], f"datasets.{name}")[0]
                for name in names_of(top.datasets, "datasets")}
    build_config(FetchConfig, top.fetch, "fetch")
    images = {}  # prepared file -> its training images
    for name in names_of(top.preprocess, "preprocess"):
        config = build_config(PreprocessConfig, top.preprocess[name], f"preprocess.{name}")
        if config.dataset not in datasets:
            raise ConfigError(f"preprocess.{name}.dataset: {config.dataset!r} is not allowed; "
                              f"allowed: {', '.join(datasets)}")
        images[name] = train_count(config, datasets[config.dataset])
    build_config(configs.Training, top.training, "training")

    tips = build_config(TipsSection, top.mnist_tips, "mnist_tips")
    seed_list(tips.seeds, "mnist_tips.seeds")
    variants = names_of(tips.variants, "mnist_tips.variants")
    noise = build_config(NoiseConfig, tips.noise, "mnist_tips.noise")
    if noise.source not in top.preprocess:
        raise ConfigError(f"mnist_tips.noise.source: {noise.source!r} is not allowed; "
                          f"allowed: {', '.join(top.preprocess)}")
    images[NOISY] = images[noise.source]  # the noise stages copy its training images
    for data in names_of(tips.data, "mnist_tips.data"):
        if data not in images:
            raise ConfigError(f"mnist_tips.data.{data}: not a prepared file; allowed: {', '.join(images)}")
    for data, rows in configs.check_groups(tips.data, variants).items():
        for name in rows:
            variant = configs.tips_unit(tips.variants, name, 0, data)[0]
            configs.check_fits(variant.batch_size, images[data], f"mnist_tips.variants.{name}.batch_size",
                               f"the training images of {data}.npz")

    fashion = build_config(FashionSection, top.fashion, "fashion")
    seed_list(fashion.seeds, "fashion.seeds")
    build_config(configs.OverfittingRule, fashion.overfitting, "fashion.overfitting")
    if missing := sorted(set(FASHION_DATA.values()) - set(images)):
        raise ConfigError(f"preprocess.{missing[0]}: missing; the Fashion-MNIST units train on "
                          f"data/prepared/{missing[0]}.npz")
    sections = top.fashion
    for name in names_of(fashion.variants, "fashion.variants"):
        configs.cv_unit(sections, name, 0, 0)
    # Every variant shares fashion.training and fashion.cross_validation, so one fold's size holds for all.
    _, settings, cv, _ = configs.cv_unit(sections, next(iter(fashion.variants)), 0, 0)
    fold = images[FASHION_DATA["fashion_cv"]] - images[FASHION_DATA["fashion_cv"]] // cv.k
    configs.check_fits(settings.batch_size, fold, "fashion.training.batch_size", "the images a fold trains on")
    _, settings, _ = configs.final_unit(sections, 0)
    configs.check_fits(settings.batch_size, images[FASHION_DATA["fashion_final"]], "fashion.training.batch_size",
                       "the images the final model trains on")
    _, settings, _ = configs.cnn_unit(sections, 0)
    configs.check_fits(settings.batch_size, images[FASHION_DATA["fashion_cnn"]], "fashion.training.batch_size",
                       "the images the CNN trains on")
    build_config(configs.Search, top.search, "search")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the check's result, which every stage depends on")
    args = parser.parse_args(argv)
    check(load_yaml(args.params) or {})
    write_json(args.out, RESULT)
    log.info(f"check_params: {args.params} is valid -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
