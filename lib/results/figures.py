"""The figures of the Fashion-MNIST tables (matplotlib, drawn headless): the post's `visualize()`
curves and each seed's overfitting warning epoch beside the post's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.common.core import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    _pyplot().close(fig)


def plot_warning_epochs(path: Path, frame) -> None:
    """One row per variant: each seed's warning epoch as a dot (stacked where seeds agree), the post's a red cross."""
    variants = list(dict.fromkeys(frame["variant"]))
    fig, ax = _pyplot().subplots(figsize=(10, 0.55 * len(variants) + 1.5))
    for row, variant in enumerate(variants):
        ours = frame[(frame["variant"] == variant) & (frame["who"] == "our seed")]["epoch"].tolist()
        seen: dict = {}
        for epoch in ours:  # seeds with the same epoch stack upwards
            ax.scatter(epoch, row - 0.12 * seen.get(epoch, 0), c="tab:blue", s=25, zorder=2,
                       label="our seeds" if row == 0 and not seen else None)
            seen[epoch] = seen.get(epoch, 0) + 1
        post = frame[(frame["variant"] == variant) & (frame["who"] == "post")]["epoch"].tolist()
        if post:
            ax.scatter(post, [row], c="tab:red", marker="x", s=80, zorder=3, label="post" if row == 0 else None)
    ax.set_yticks(range(len(variants)), variants)
    ax.invert_yaxis()  # the post's order, top down
    ax.set(xlabel="overfitting warning epoch", title="Overfitting warning epoch: each seed and the post's one run")
    ax.grid(True, axis="x")
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_curves(path: Path, title: str, curves: dict, warning_epoch: int | None, validation_label: str) -> None:
    """The post's visualize(): loss and accuracy side by side, train as dots, validation as a line."""
    epochs = np.arange(1, len(curves["loss"]) + 1)
    fig, axes = _pyplot().subplots(1, 2, figsize=(12, 4))
    for ax, metric, name in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, curves[metric], "o", label=metric)
        ax.plot(epochs, curves[f"val_{metric}"], label=f"{validation_label} {metric}")
        if warning_epoch is not None:
            ax.scatter([warning_epoch], [curves[f"val_{metric}"][warning_epoch - 1]], c="r", zorder=3,
                       label=f"overfitting warning (epoch {warning_epoch})")
        ax.set(title=f"Training and {validation_label} {metric}", xlabel="Epochs", ylabel=name)
        ax.legend()
        ax.grid(True)
    fig.suptitle(title)
    _save(fig, path)
