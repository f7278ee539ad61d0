"""The smoke profile: the real pipeline, code and data at a tiny scale (four small MNIST tips rows, one per
data file at least; Fashion-MNIST on 1,000 images with 2 folds, two seeds each), so that a whole `dvc repro`
takes a few minutes; CI runs it through DVC and the gate:
    python -m tools.smoke /tmp/smoke && cd /tmp/smoke && dvc repro \\
        && python -m tools.gate check --floors floors/smoke.yaml"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("dvc.yaml", "params.yaml", "claims.yaml", ".dvcignore", ".gitignore",
                 "reports/mnist_tips_jax_h100.json", "reports/fashion_jax_cpu.json",
                 "reports/fashion_jax_cpu_replayed.json", "reports/mnist_tips_tf_keras_cpu.json",
                 "reports/fashion_tf_keras_cpu.json", "package.json", "package-lock.json", ".npmrc")
PROJECT_DIRS = ("lib", "stages", "tools", "benchmarks", "floors", "reference", ".dvc/plots")


def smoke_params(params: dict) -> dict:
    params = copy.deepcopy(params)
    params["profile"] = "smoke"  # not the posts' setup: the tables and the report judge nothing
    tips, fashion = params["mnist_tips"], params["fashion"]
    keep = ["deep_relu", "deep_relu_adam", "noisy_dropout", "unscaled"]
    tips["seeds"] = [0, 1]
    tips["variants"] = {k: {**tips["variants"][k], "hidden_units": [32, 32], "epochs": 2} for k in keep}
    tips["data"] = {data: [k for k in rows if k in keep] for data, rows in tips["data"].items()}
    for variant in ("fashion_dense", "fashion_cnn"):
        params["preprocess"][variant]["train_limit"] = 1000
    fashion["seeds"] = [0, 1]
    fashion["training"].update(epochs=24, batch_size=16)
    # 5 epochs, not the post's 10, so that the rule warns on dense64 in both seeds: reshuffled every epoch, a
    # seed's noisy curve on 500 images can dip again late and run out the 24 epochs under a 10-epoch patience.
    fashion["overfitting"]["patience"] = 5
    fashion["cross_validation"] = {"k": 2}
    fashion["variants"] = {k: fashion["variants"][k] for k in ("dense64", "dense256_dropout04_early_stopping")}
    fashion["variants"]["dense256_dropout04_early_stopping"]["early_stopping_patience"] = 1
    fashion["final"]["epochs"] = fashion["cnn"]["epochs"] = 2
    params["search"].update(trials=3, workers=1, startup_trials=2, warmup_epochs=2, top=["top1"])
    params["search"]["space"]["units"] = {"choices": [16, 32]}
    return params


def _run(cwd: Path, *cmd: str) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)


def make_project(dest: Path, smoke: bool = True, cache: Path | None = None) -> Path:
    """A fresh git + DVC repository holding the pipeline (not its data or results), with the
    smoke params if `smoke`. Copies given the same `cache` share DVC's cache and run-cache."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    if smoke:
        params = smoke_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = (sys.executable, "-m", "dvc")
    _run(dest, "git", "init", "-q")
    _run(dest, *dvc, "init", "-q")
    for name in PROJECT_DIRS:  # after `dvc init`, which creates .dvc/
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shutil.copy2(ROOT / ".dvc" / "config", dest / ".dvc" / "config")  # the project's settings (the plots page)
    if cache is not None:
        _run(dest, *dvc, "cache", "dir", str(cache))
    _run(dest, "git", "add", "-A")  # and commit: dvclive needs a commit to exist, as in any clone
    _run(dest, "git", "-c", "user.name=smoke", "-c", "user.email=smoke@example.invalid", "commit", "-qm",
         "pipeline copy")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="an empty or new directory")
    parser.add_argument("--full", action="store_true", help="copy the full params instead of the smoke profile")
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        parser.error(f"{args.dest} is not empty")
    make_project(args.dest, smoke=not args.full)
    print(f"smoke project ready in {args.dest}")


if __name__ == "__main__":
    main()
