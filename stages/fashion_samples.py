"""Fashion-MNIST class grid: the first training image of each class, labelled with its class
name (the post's first figure)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import atomic_path, run_stage
from lib.data.configs import CLASS_NAMES

log = logging.getLogger("stages.fashion_samples")

def first_of_each_class(labels: np.ndarray) -> list[int]:
    """Index of the first training image of each class 0-9, as the post's search loop finds."""
    return [int(np.flatnonzero(labels == c)[0]) for c in range(len(CLASS_NAMES))]


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.load(args.data) as npz:
        images, labels = npz["x_train"], npz["y_train"]
    fig, axes = plt.subplots(2, 5, figsize=(10, 4.6))
    for ax, (cls, index) in zip(axes.flat, enumerate(first_of_each_class(labels))):
        ax.imshow(images[index].reshape(28, 28), cmap="gray")
        ax.set(xticks=[], yticks=[], xlabel=f"{CLASS_NAMES[cls]} (#{index})")
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    log.info(f"fashion_samples: wrote {args.out}")


if __name__ == "__main__":
    run_stage(main)
