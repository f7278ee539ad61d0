"""The Fashion-MNIST post's overfitting warning on a fold-mean validation-loss curve: what its tables
report, and what the search (stages/search.py) maximises the validation accuracy at. NumPy only."""

from __future__ import annotations

import numpy as np

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy")
WARNING = ("epoch", "val_loss", "val_accuracy")  # a warning_summary's figures


def overfitting_warning(val_loss, rule) -> int | None:
    """The post's rule: the first epoch i (0-based) none of whose next `patience` has a val_loss below
    (1 - min_decrease) * val_loss[i]; None if none."""
    val_loss = np.asarray(val_loss, dtype=float)
    for i in range(len(val_loss) - rule.patience):
        if not np.any(val_loss[i + 1 : i + 1 + rule.patience] < (1 - rule.min_decrease) * val_loss[i]):
            return i
    return None


def warning_summary(curves: dict, rule) -> dict:
    """The warning's epoch (1-based) and the validation loss and accuracy there."""
    i = overfitting_warning(curves["val_loss"], rule)
    if i is None:
        return dict.fromkeys(WARNING)
    return {"epoch": i + 1, "val_loss": float(curves["val_loss"][i]), "val_accuracy": float(curves["val_accuracy"][i])}


def mean_curves(histories: list[dict]) -> dict[str, np.ndarray]:
    """Per-epoch mean over folds (the post's np.mean(axis=0)); where some stopped early, over those that went on."""
    length = max(len(h["loss"]) for h in histories)
    return {name: np.nanmean([np.pad(np.asarray(h[name], dtype=float), (0, length - len(h[name])),
                                     constant_values=np.nan) for h in histories], axis=0) for name in CURVES}
