"""Where every training unit writes its run folder. dvc.yaml names these paths in each unit's
`--out` and `outs` (DVC needs them spelled out there); the table stages, tools and tests find
the folders through these functions, and a test checks that dvc.yaml agrees with them."""

from __future__ import annotations

from pathlib import Path

PREPARED = Path("data/prepared")
MNIST_TIPS_RUNS = Path("reports/runs/mnist_tips")
FASHION_RUNS = Path("reports/runs/fashion")
# The `mnist_tips.data` group whose test set is noise drawn per training seed (the `noise` stages).
NOISY = "mnist_tips_noisy"


def prepared_file(prepared: Path, data: str, seed: int) -> Path:
    """The file an MNIST tips unit of `mnist_tips.data` group `data` and `seed` trains on: the
    preprocess stage's `<data>.npz`, or for the noisy rows `seed<seed>/mnist_tips_noisy.npz`
    (the unit records the file's stem as its `data`, so the name stays the group's)."""
    if data == NOISY:
        return Path(prepared) / f"seed{seed}" / f"{NOISY}.npz"
    return Path(prepared) / f"{data}.npz"


def mnist_tips_run(runs: Path, variant: str, seed: int) -> Path:
    """`mnist_tips*@<variant>-<seed>`: metrics.json, history.json, config.json, live/."""
    return Path(runs) / variant / f"seed{seed}"


def fashion_cv_run(runs: Path, variant: str, seed: int, fold: int) -> Path:
    """`fashion_cv@<variant>-<seed>-<fold>`: history.json, metrics.json, config.json, live/."""
    return Path(runs) / "cv" / variant / f"seed{seed}" / f"fold{fold}"


def fashion_final_run(runs: Path, seed: int) -> Path:
    return Path(runs) / "final" / f"seed{seed}"


def fashion_cnn_run(runs: Path, seed: int) -> Path:
    return Path(runs) / "cnn" / f"seed{seed}"
