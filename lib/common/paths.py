"""Every stage name and run folder of the pipeline, in one place: dvc.yaml spells the same paths in
each unit's `outs` (DVC needs them there, and a test checks they agree); the stages, the tables, the
tools, the benchmarks and the tests ask these functions.

A stage's command holds no value from params.yaml: DVC pastes templated values into the shell command
unquoted, and `dvc repro --single-item` runs a stage without the params check, so a name such as
`adam;touch x` would reach a shell. A stage reads what it is instead from its own name, which DVC passes
in the environment (DVC_STAGE), and each name is checked here before it names a file."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lib.common.core import MAX_SEED, ConfigError

RAW = Path("data/raw")
PREPARED = Path("data/prepared")
RUNS = Path("reports/runs")
MNIST_TIPS_RUNS = RUNS / "mnist_tips"
FASHION_RUNS = RUNS / "fashion"
SEARCH_RUNS = RUNS / "search"  # beyond the post: the search's top trials re-run, the winner's final models
# The `mnist_tips.data` group whose test set is noise drawn per training seed (the `noise` stages).
NOISY = "mnist_tips_noisy"
UNIT_KINDS = ("mnist_tips", "fashion_cv", "fashion_final", "fashion_cnn", "search_cv", "search_final")
VARIANT_KINDS = ("mnist_tips", "fashion_cv", "search_cv")  # units named <variant>-<seed>
# A search_cv unit's "variant": the place of its trial among the search's best, top1 first.
RANK = re.compile(r"top([1-9][0-9]{0,2})")
# A name of params.yaml (dataset, preprocess variant, variant) becomes a stage name and a file name.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
NAME_RULE = "allowed: letters, digits and _, starting with a letter, at most 64 characters"
SEED = re.compile(r"0|[1-9][0-9]{0,9}")  # the digits of a seed, 0 .. MAX_SEED


def check_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        shown = f"{name[:64]!r}... ({len(name)} characters)" if isinstance(name, str) and len(name) > 64 else repr(name)
        raise ConfigError(f"{where}: the name {shown} is not allowed; {NAME_RULE}")
    return name


def check_seed(seed, where: str) -> int:
    text = str(seed) if isinstance(seed, int) and not isinstance(seed, bool) else seed
    if not isinstance(text, str) or not SEED.fullmatch(text) or int(text) > MAX_SEED:
        raise ConfigError(f"{where}: the seed {seed!r} is not allowed; allowed: an integer from 0 to {MAX_SEED}")
    return int(text)


def this_stage(given: str | None = None) -> str:
    """The stage this process runs as: `given` (--stage), else the DVC_STAGE that dvc sets."""
    stage = given or os.environ.get("DVC_STAGE")
    if not stage:
        raise ConfigError("no stage named: run this through `dvc repro`, or name one with --stage, e.g. fetch@mnist")
    return stage


def stage_key(stage: str, group: str) -> str:
    """The part after `@` of a `foreach` stage of `group` (fetch@<dataset>, noise@<seed>)."""
    found, at, key = stage.partition("@")
    if found != group or not at:
        raise ConfigError(f"stage {stage!r}: not a stage of {group}; expected {group}@<name>")
    return key


def raw_folder(dataset: str) -> Path:
    """Where `fetch@<dataset>` writes the dataset's four verified IDX files."""
    return RAW / dataset


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


def search_cv_seed(rank: str, seed: int, runs: Path = SEARCH_RUNS) -> Path:
    """`search_cv@top<n>-<seed>`: the search's n-th best trial on one seed, one fold folder per fold."""
    return Path(runs) / "cv" / rank / f"seed{seed}"


def search_final_run(seed: int, runs: Path = SEARCH_RUNS) -> Path:
    return Path(runs) / "final" / f"seed{seed}"


def rank_of(rank: str, where: str) -> int:
    """The n of a search_cv unit's `top<n>`."""
    found = RANK.fullmatch(rank) if isinstance(rank, str) else None
    if not found:
        raise ConfigError(f"{where}: {rank!r} is not a place among the search's best; allowed: top1, top2, ...")
    return int(found[1])


def model_file(run: Path) -> Path:
    """Where a unit that keeps its trained model saves it: the run folder's place under models/."""
    return Path("models") / Path(run).relative_to(RUNS).with_suffix(".keras")


def unit_name(kind: str, seed: int, variant: str | None = None, data: str | None = None) -> str:
    """A training unit's stage name: `<data group>@<variant>-<seed>`, `fashion_cv@<variant>-<seed>`,
    `fashion_final@<seed>`, `fashion_cnn@<seed>`, `search_cv@top<n>-<seed>`, `search_final@<seed>`."""
    if kind == "mnist_tips":
        return f"{data}@{variant}-{seed}"
    return f"{kind}@{variant}-{seed}" if kind in VARIANT_KINDS else f"{kind}@{seed}"


def parse_unit(stage: str) -> dict | None:
    """The inverse of unit_name: {kind, group, variant, seed} of a training unit's stage name, None for
    any other stage; a ConfigError for a unit's name whose variant or seed is not allowed."""
    group, at, key = stage.partition("@")
    kind = "mnist_tips" if group.startswith("mnist_tips") else group  # the MNIST groups are `mnist_tips.data`'s
    if not at or kind not in UNIT_KINDS:
        return None
    variant, _, seed = key.rpartition("-") if kind in VARIANT_KINDS else ("", "", key)
    if kind in VARIANT_KINDS:
        check_name(variant, f"stage {stage!r}")
    if kind == "search_cv":
        rank_of(variant, f"stage {stage!r}")
    if kind == "mnist_tips":
        check_name(group, f"stage {stage!r}")
    return {"kind": kind, "group": group, "variant": variant or None, "seed": check_seed(seed, f"stage {stage!r}")}


FASHION_DATA = {"fashion_cv": "fashion_dense", "fashion_final": "fashion_dense", "fashion_cnn": "fashion_cnn",
                "search_cv": "fashion_dense", "search_final": "fashion_dense"}


def unit_files(stage: str) -> dict:
    """What a training unit's stage name means: its kind, variant, seed, the prepared file it trains on,
    its run folder (`out`) and its model (None for the cross-validation units, which keep none)."""
    unit = parse_unit(stage)
    if unit is None:
        raise ConfigError(f"stage {stage!r}: not a training unit; expected one of {', '.join(UNIT_KINDS)}@...")
    kind, variant, seed = unit["kind"], unit["variant"], unit["seed"]
    out = {"mnist_tips": lambda: mnist_tips_run(variant, seed), "fashion_cv": lambda: fashion_cv_seed(variant, seed),
           "fashion_final": lambda: fashion_final_run(seed), "fashion_cnn": lambda: fashion_cnn_run(seed),
           "search_cv": lambda: search_cv_seed(variant, seed), "search_final": lambda: search_final_run(seed)}[kind]()
    data = prepared_file(unit["group"], seed) if kind == "mnist_tips" else PREPARED / f"{FASHION_DATA[kind]}.npz"
    return {**unit, "data": data, "out": out, "model": None if kind.endswith("_cv") else model_file(out)}


def table_of(stage: str) -> str:
    """Which table a stage's time counts towards: mnist_tips, fashion, data or report."""
    name = stage.split("@")[0]
    for table in ("mnist_tips", "fashion"):
        if name.startswith(table):
            return table
    return "data" if name in ("check_params", "fetch", "preprocess", "noise") else "report"
