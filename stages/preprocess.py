"""Preprocess stage: verified IDX files -> one .npz of arrays per named variant in params.yaml.

Carries the input transformations of both posts: scaling by 1/255 (or not, MNIST tips row 9),
the first N training images (MNIST tips uses 10,000), one-hot or integer labels, and the channel
axis of the Fashion-MNIST CNN. The noisy test sets of the MNIST dropout rows, one per training
seed, are made from this stage's file by stages/noise.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import ConfigError, DataError, atomic_path, build_config, load_params, run_stage, select
from lib.common.paths import check_name, prepared_file, raw_folder, stage_key, this_stage
from lib.data.configs import FILE_ROLES, NUM_CLASSES, PreprocessConfig, file_specs
from lib.data.idx import read_idx_gz

log = logging.getLogger("stages.preprocess")

def transform_images(images: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    x = images.astype("float32")
    if config.scale:
        x /= 255.0
    if config.flatten:
        x = x.reshape(len(x), -1)
    if config.channel_axis:
        x = x[..., np.newaxis]
    return x


def encode_labels(labels: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(f"label {int(labels.max())} found; expected class numbers 0-{NUM_CLASSES - 1}")
    if config.labels == "one_hot":
        return np.eye(NUM_CLASSES, dtype="float32")[labels]
    return labels.astype("int64")


def preprocess(raw: dict[str, np.ndarray], config: PreprocessConfig) -> dict[str, np.ndarray]:
    """Pure core: uint8 IDX arrays keyed by file role -> the arrays a training stage loads."""
    n_train = len(raw["train_images"])
    if config.train_limit is not None and config.train_limit > n_train:
        raise ConfigError(f"train_limit: {config.train_limit} is not allowed; "
                          f"the dataset has {n_train} training images")
    keep = slice(0, config.train_limit)
    return {
        "x_train": transform_images(raw["train_images"][keep], config),
        "y_train": encode_labels(raw["train_labels"][keep], config),
        "x_test": transform_images(raw["test_images"], config),
        "y_test": encode_labels(raw["test_labels"], config),
    }


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", help="preprocess@<key under `preprocess`> (default: DVC_STAGE, which dvc sets)")
    parser.add_argument("--raw", type=Path, help="directory the fetch stage wrote (default: data/raw/<dataset>)")
    parser.add_argument("--out", type=Path, help=".npz file to write (default: data/prepared/<variant>.npz)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    args.variant = check_name(stage_key(this_stage(args.stage), "preprocess"), "preprocess")

    section = select(load_params(args.params, "preprocess"), args.variant, "preprocess")
    config = build_config(PreprocessConfig, section, f"preprocess.{args.variant}")
    args.raw = args.raw or raw_folder(check_name(config.dataset, f"preprocess.{args.variant}.dataset"))
    args.out = args.out or prepared_file(args.variant, 0)
    # Only `datasets.<name>.files` (what dvc.yaml declares): a new mirror must not rerun this stage.
    dataset = select(load_params(args.params, "datasets"), config.dataset, "datasets")
    specs = file_specs(dataset.get("files") if isinstance(dataset, dict) else None, f"datasets.{config.dataset}.files")

    # Re-verify: a file changed under data/raw since the fetch must never reach training.
    raw = {role: read_idx_gz(args.raw / specs[role].name, specs[role].sha256) for role in FILE_ROLES}
    arrays = preprocess(raw, config)
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as stream:  # a file object: np.savez would append .npz to a path
            np.savez(stream, **arrays)
    shapes = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items())
    log.info(f"preprocess {args.variant}: wrote {args.out} ({shapes})")


if __name__ == "__main__":
    run_stage(main)
