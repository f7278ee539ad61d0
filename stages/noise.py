"""Noise stage: the noisy test set of MNIST tips rows 7-8, one draw per training seed.

The post trains on clean images and evaluates on `x_test = np.random.normal(x_test)`, a new
draw in every run, so a row's spread over runs includes the noise. Each seed S gets its own
draw (numpy's `default_rng(S)`) from the `mnist_tips.noise.source` prepared file; the training
arrays and labels are copied unchanged. `dvc.yaml` runs one stage per seed, writing
data/prepared/seed<S>/mnist_tips_noisy.npz (lib/common/paths.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import ConfigError, atomic_path, build_config, load_params, run_stage
from lib.common.paths import NOISY, check_name, check_seed, prepared_file, stage_key, this_stage
from lib.data.configs import NoiseConfig

log = logging.getLogger("stages.noise")


def add_test_noise(x: np.ndarray, std: float, seed: int) -> np.ndarray:
    """The MNIST post's `np.random.normal(x_test)`: each pixel ~ normal(mean=pixel, std), seeded."""
    if std == 0:
        return x
    return np.random.default_rng(seed).normal(loc=x, scale=std).astype("float32")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", help="noise@<the training seed this test set is for> (default: DVC_STAGE)")
    parser.add_argument("--data", type=Path, help="the prepared file of `mnist_tips.noise.source` (default: its name)")
    parser.add_argument("--out", type=Path, help=".npz file to write (default: data/prepared/seed<S>/...)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    args.seed = check_seed(stage_key(this_stage(args.stage), "noise"), "mnist_tips.seeds")

    config = build_config(NoiseConfig, load_params(args.params, "mnist_tips", "noise"), "mnist_tips.noise")
    args.data = args.data or prepared_file(check_name(config.source, "mnist_tips.noise.source"), args.seed)
    args.out = args.out or prepared_file(NOISY, args.seed)
    if args.data.stem != config.source:
        raise ConfigError(f"mnist_tips.noise.source: {config.source!r} is not allowed; "
                          f"allowed: {args.data.stem!r}, the file --data names ({args.data})")
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such prepared file; "
                          f"run `dvc repro preprocess@{config.source}` first")
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x_test"] = add_test_noise(arrays["x_test"], config.test_std, args.seed)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as stream:  # a file object: np.savez would append .npz to a path
            np.savez(stream, **arrays)
    log.info(f"noise seed {args.seed}: wrote {args.out} (x_test ~ normal(pixel, {config.test_std}) from {args.data})")


if __name__ == "__main__":
    run_stage(main)
