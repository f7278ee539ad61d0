"""The data stages' configs (fetch, preprocess, noise) as frozen dataclasses, and the facts about
the datasets that every stage shares. No Keras and no network here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lib.common.core import ConfigError, build_config, require

FILE_ROLES = ("train_images", "train_labels", "test_images", "test_labels")
NUM_CLASSES = 10
LABEL_ENCODINGS = ("integer", "one_hot")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class FileSpec:
    name: str
    sha256: str

    def __post_init__(self):
        require(
            len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256),
            "sha256", self.sha256, "allowed: 64 lower-case hex digits",
        )
        require(
            self.name == Path(self.name).name and self.name.endswith(".gz"),
            "name", self.name, "allowed: a plain file name ending in .gz",
        )


MAX_IMAGES = 10_000_000  # the most training images a dataset (or a train_limit) may name


@dataclass(frozen=True)
class DatasetConfig:
    mirror_dir: str  # the dataset's sub-directory in a user's mirror
    files: dict
    train_images: int  # how many the training files hold (the fetch stage checks it): the params check's bound
    sources: tuple[str, ...] = ()  # fixed locations, tried after the user's mirrors

    def __post_init__(self):
        allowed = f"allowed: exactly {', '.join(FILE_ROLES)}"
        require(set(self.files) == set(FILE_ROLES), "files", sorted(self.files), allowed)
        require(1 <= self.train_images <= MAX_IMAGES, "train_images", self.train_images,
                f"allowed: an integer from 1 to {MAX_IMAGES}")


@dataclass(frozen=True)
class FetchConfig:
    mirrors: tuple[str, ...] = ()
    timeout_s: float = 60.0

    def __post_init__(self):
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "allowed: a number of seconds > 0")


def dataset_config(section: dict, where: str) -> tuple[DatasetConfig, dict[str, FileSpec]]:
    config = build_config(DatasetConfig, section, where)
    return config, file_specs(config.files, f"{where}.files")


def file_specs(files: dict, where: str) -> dict[str, FileSpec]:
    """`datasets.<name>.files`: the four files by role, each a name and the SHA-256 of its content.
    (The preprocess stage reads only this part of a dataset's section, and declares only it.)"""
    if not isinstance(files, dict) or set(files) != set(FILE_ROLES):
        shown = sorted(files) if isinstance(files, dict) else files
        raise ConfigError(f"{where}: {shown!r} is not allowed; allowed: exactly {', '.join(FILE_ROLES)}")
    return {role: build_config(FileSpec, files[role], f"{where}.{role}") for role in FILE_ROLES}


def train_count(preprocess: "PreprocessConfig", dataset: DatasetConfig) -> int:
    """How many training images a preprocess variant's file holds."""
    return min(preprocess.train_limit or dataset.train_images, dataset.train_images)


@dataclass(frozen=True)
class PreprocessConfig:
    dataset: str
    scale: bool = True  # divide by 255, as both posts do; false keeps raw 0-255 values
    train_limit: int | None = None  # keep the first N training images (None: all)
    labels: str = "integer"
    flatten: bool = False  # images as 784-vectors (MNIST tips) instead of 28x28
    channel_axis: bool = False  # add a trailing axis of 1 for Conv2D

    def __post_init__(self):
        require(self.labels in LABEL_ENCODINGS, "labels", self.labels, f"allowed: {', '.join(LABEL_ENCODINGS)}")
        limit = self.train_limit
        require(limit is None or 1 <= limit <= MAX_IMAGES, "train_limit", limit,
                f"allowed: null or an integer from 1 to {MAX_IMAGES}")
        require(not (self.flatten and self.channel_axis), "channel_axis", self.channel_axis,
                "allowed: false when flatten is true")


@dataclass(frozen=True)
class NoiseConfig:
    source: str  # the `preprocess` variant whose arrays are copied and whose test set is drawn from
    test_std: float = 1.0  # each test pixel ~ normal(mean=pixel, std), as np.random.normal(x_test)

    def __post_init__(self):
        require(self.test_std >= 0, "test_std", self.test_std, "allowed: a number >= 0 (0 keeps the test set clean)")


