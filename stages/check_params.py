"""Params check stage: the whole params file, validated before any other stage runs.

Every stage of both posts' tables depends on this stage's output, so a misspelled section or
key (`fashon:`, `seed:` beside `seeds:`), an impossible value given with `dvc exp run -S`, or a
variant name a shell would read as commands stops the pipeline here, with one line naming the
key, before DVC removes any earlier result or a stage's command line is built from the name.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from stages.common import ConfigError, build_config, load_yaml, run_stage, seed_list, write_json

log = logging.getLogger("stages.check_params")

# Names go into stage names and command lines (dvc.yaml templates them unquoted).
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
SECTIONS = {
    "datasets": None, "fetch": None, "preprocess": None,
    "mnist_tips": ("seeds", "noise", "data", "variants"),
    "fashion": ("seeds", "training", "cross_validation", "overfitting", "variants", "final", "cnn"),
}
# What the check writes. It never depends on the values, so a change that passes the check
# leaves this file, and so every stage that did not use the changed value, up to date.
RESULT = {"checked": sorted(SECTIONS), "result": "valid"}


def keys_of(node, where: str, allowed) -> None:
    """Refuse a section that is not a mapping, or that has a key not in `allowed`."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {node!r}")
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(allowed)}")
    missing = [key for key in allowed if key not in node]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")


def names_of(node, where: str) -> list[str]:
    """The keys of a mapping of named things (datasets, variants), each a safe name."""
    if not isinstance(node, Mapping) or not node:
        raise ConfigError(f"{where}: {node!r} is not allowed; allowed: a mapping of one or more named entries")
    for name in node:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"{where}: the name {name!r} is not allowed; allowed: letters, digits and _, starting with a letter")
    return list(node)


def check(params: Mapping) -> None:
    """Every section and key of a params file, the way the stages that read them check them."""
    from stages.fashion_cnn import CnnConfig
    from stages.fashion_cv import CrossValidation, DenseVariant
    from stages.fashion_final import FinalModel
    from stages.fashion_table import OverfittingRule
    from stages.fetch import FetchConfig, dataset_config
    from stages.layout import NOISY
    from stages.mnist_tips import TipsVariant
    from stages.mnist_tips_table import check_groups
    from stages.noise import NoiseConfig
    from stages.preprocess import PreprocessConfig
    from stages.training import RunSettings

    keys_of(params, "params", list(SECTIONS))
    datasets = names_of(params["datasets"], "datasets")
    for name in datasets:
        dataset_config(params["datasets"][name], f"datasets.{name}")
    build_config(FetchConfig, params["fetch"], "fetch")
    for name in names_of(params["preprocess"], "preprocess"):
        config = build_config(PreprocessConfig, params["preprocess"][name], f"preprocess.{name}")
        if config.dataset not in datasets:
            raise ConfigError(f"preprocess.{name}.dataset: {config.dataset!r} is not allowed; allowed: {', '.join(datasets)}")

    tips = params["mnist_tips"]
    keys_of(tips, "mnist_tips", SECTIONS["mnist_tips"])
    seed_list(tips["seeds"], "mnist_tips.seeds")
    variants = names_of(tips["variants"], "mnist_tips.variants")
    for name in variants:
        build_config(TipsVariant, tips["variants"][name], f"mnist_tips.variants.{name}")
    noise = build_config(NoiseConfig, tips["noise"], "mnist_tips.noise")
    if noise.source not in params["preprocess"]:
        raise ConfigError(f"mnist_tips.noise.source: {noise.source!r} is not allowed; allowed: {', '.join(params['preprocess'])}")
    files = [*params["preprocess"], NOISY]  # the preprocess variants, and the noise stages' files
    for data in names_of(tips["data"], "mnist_tips.data"):
        if data not in files:
            raise ConfigError(f"mnist_tips.data.{data}: not a prepared file; allowed: {', '.join(files)}")
    check_groups(tips["data"], variants)

    fashion = params["fashion"]
    keys_of(fashion, "fashion", SECTIONS["fashion"])
    seed_list(fashion["seeds"], "fashion.seeds")
    build_config(RunSettings, fashion["training"], "fashion.training")
    build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation")
    build_config(OverfittingRule, fashion["overfitting"], "fashion.overfitting")
    for name in names_of(fashion["variants"], "fashion.variants"):
        build_config(DenseVariant, fashion["variants"][name], f"fashion.variants.{name}")
    final = build_config(FinalModel, fashion["final"], "fashion.final")
    build_config(DenseVariant, final.model, "fashion.final.model")
    build_config(CnnConfig, fashion["cnn"], "fashion.cnn")


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
