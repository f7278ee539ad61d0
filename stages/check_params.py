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
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from lib.common.core import ConfigError, build_config, load_yaml, run_stage, seed_list, write_json
from lib.common.paths import NOISY
from lib.data.configs import FetchConfig, NoiseConfig, PreprocessConfig, dataset_config
from lib.train import configs

log = logging.getLogger("stages.check_params")

# Names go into stage names and command lines (dvc.yaml templates them unquoted).
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Params:
    datasets: dict
    fetch: dict
    preprocess: dict
    training: dict
    mnist_tips: dict
    fashion: dict


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
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"{where}: the name {name!r} is not allowed; "
                              "allowed: letters, digits and _, starting with a letter")
    return list(node)


def check(params: Mapping) -> None:
    """Every section and key of a params file, the way the stages that read them check them."""
    top = build_config(Params, params, "params")
    datasets = names_of(top.datasets, "datasets")
    for name in datasets:
        dataset_config(top.datasets[name], f"datasets.{name}")
    build_config(FetchConfig, top.fetch, "fetch")
    for name in names_of(top.preprocess, "preprocess"):
        config = build_config(PreprocessConfig, top.preprocess[name], f"preprocess.{name}")
        if config.dataset not in datasets:
            raise ConfigError(f"preprocess.{name}.dataset: {config.dataset!r} is not allowed; "
                              f"allowed: {', '.join(datasets)}")
    build_config(configs.Training, top.training, "training")

    tips = build_config(TipsSection, top.mnist_tips, "mnist_tips")
    seed_list(tips.seeds, "mnist_tips.seeds")
    variants = names_of(tips.variants, "mnist_tips.variants")
    for name in variants:
        configs.tips_unit(tips.variants, name, 0, "")
    noise = build_config(NoiseConfig, tips.noise, "mnist_tips.noise")
    if noise.source not in top.preprocess:
        raise ConfigError(f"mnist_tips.noise.source: {noise.source!r} is not allowed; "
                          f"allowed: {', '.join(top.preprocess)}")
    files = [*top.preprocess, NOISY]  # the preprocess variants, and the noise stages' files
    for data in names_of(tips.data, "mnist_tips.data"):
        if data not in files:
            raise ConfigError(f"mnist_tips.data.{data}: not a prepared file; allowed: {', '.join(files)}")
    configs.check_groups(tips.data, variants)

    fashion = build_config(FashionSection, top.fashion, "fashion")
    seed_list(fashion.seeds, "fashion.seeds")
    build_config(configs.OverfittingRule, fashion.overfitting, "fashion.overfitting")
    sections = top.fashion
    for name in names_of(fashion.variants, "fashion.variants"):
        configs.cv_unit(sections, name, 0, 0)
    configs.final_unit(sections, 0)
    configs.cnn_unit(sections, 0)


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
