"""Where every training unit writes its run folder. dvc.yaml names these paths in each unit's
`--out` and `outs` (DVC needs them spelled out there); the table stages, tools and tests find
the folders through these functions, and a test checks that dvc.yaml agrees with them."""

from __future__ import annotations

from pathlib import Path

MNIST_TIPS_RUNS = Path("reports/runs/mnist_tips")
FASHION_RUNS = Path("reports/runs/fashion")


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
