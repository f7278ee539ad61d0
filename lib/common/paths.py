"""Every stage name and run folder of the pipeline, in one place: dvc.yaml spells the same paths in
each unit's `cmd` and `outs` (DVC needs them there, and a test checks they agree); the tables, the
tools, the benchmarks and the tests ask these functions."""

from __future__ import annotations

from pathlib import Path

PREPARED = Path("data/prepared")
RUNS = Path("reports/runs")
MNIST_TIPS_RUNS = RUNS / "mnist_tips"
FASHION_RUNS = RUNS / "fashion"
# The `mnist_tips.data` group whose test set is noise drawn per training seed (the `noise` stages).
NOISY = "mnist_tips_noisy"
UNIT_KINDS = ("mnist_tips", "fashion_cv", "fashion_final", "fashion_cnn")


def prepared_file(data: str, seed: int, prepared: Path = PREPARED) -> Path:
    """The file an MNIST tips unit of `mnist_tips.data` group `data` trains on: the preprocess stage's
    `<data>.npz`, or for the noisy rows its seed's draw, `seed<seed>/mnist_tips_noisy.npz`."""
    if data == NOISY:
        return Path(prepared) / f"seed{seed}" / f"{NOISY}.npz"
    return Path(prepared) / f"{data}.npz"


def mnist_tips_run(variant: str, seed: int, runs: Path = MNIST_TIPS_RUNS) -> Path:
    """`<data group>@<variant>-<seed>`: metrics.json, config.json, live/ (dvclive's curves)."""
    return Path(runs) / variant / f"seed{seed}"


def fashion_cv_seed(variant: str, seed: int, runs: Path = FASHION_RUNS) -> Path:
    """`fashion_cv@<variant>-<seed>`: one fold folder per fold."""
    return Path(runs) / "cv" / variant / f"seed{seed}"


def fold_folder(seed_folder: Path, fold: int) -> Path:
    return Path(seed_folder) / f"fold{fold}"


def fashion_cv_run(variant: str, seed: int, fold: int, runs: Path = FASHION_RUNS) -> Path:
    return fold_folder(fashion_cv_seed(variant, seed, runs), fold)


def fashion_final_run(seed: int, runs: Path = FASHION_RUNS) -> Path:
    return Path(runs) / "final" / f"seed{seed}"


def fashion_cnn_run(seed: int, runs: Path = FASHION_RUNS) -> Path:
    return Path(runs) / "cnn" / f"seed{seed}"


def model_file(run: Path) -> Path:
    """Where a unit that keeps its trained model saves it: the run folder's place under models/."""
    return Path("models") / Path(run).relative_to(RUNS).with_suffix(".keras")


def unit_name(kind: str, seed: int, variant: str | None = None, data: str | None = None) -> str:
    """A training unit's stage name: `<data group>@<variant>-<seed>`, `fashion_cv@<variant>-<seed>`,
    `fashion_final@<seed>`, `fashion_cnn@<seed>`."""
    if kind == "mnist_tips":
        return f"{data}@{variant}-{seed}"
    return f"{kind}@{variant}-{seed}" if kind == "fashion_cv" else f"{kind}@{seed}"


def parse_unit(stage: str) -> dict | None:
    """The inverse of unit_name: {kind, variant, seed} of a training unit's stage name, None for any
    other stage."""
    group, at, key = stage.partition("@")
    kind = "mnist_tips" if group.startswith("mnist_tips") else group  # the MNIST groups are `mnist_tips.data`'s
    if not at or kind not in UNIT_KINDS:
        return None
    variant, _, seed = key.rpartition("-") if kind in ("mnist_tips", "fashion_cv") else ("", "", key)
    return {"kind": kind, "group": group, "variant": variant or None, "seed": int(seed)}


def table_of(stage: str) -> str:
    """Which table a stage's time counts towards: mnist_tips, fashion, data or report."""
    name = stage.split("@")[0]
    for table in ("mnist_tips", "fashion"):
        if name.startswith(table):
            return table
    return "data" if name in ("check_params", "fetch", "preprocess", "noise") else "report"
