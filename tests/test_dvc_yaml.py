"""dvc.yaml against the code: every stage declares each project module its command imports
(directly or through other modules, at any depth, lazy imports included), as the file or as a
folder of lib/ holding it, and nothing it does not import; each training unit's `cmd` and `outs`
name the paths lib/common/paths.py gives; results code and training code stay apart."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest
import yaml

from lib.common import paths
from tests.conftest import ROOT, dvc

PACKAGES = ("lib", "stages", "tools", "benchmarks")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The project file that `import name` loads, or None for a module outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every module name an `import` or `from ... import` anywhere in the file may load (for
    `from pkg import name`, both `pkg` and `pkg.name`, which may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_imports(module: str, root: Path = ROOT) -> set[str]:
    """The project files (relative paths) that running `python -m module` imports, transitively,
    each package's __init__.py included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]), root)
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_names(path))
    return {str(p.relative_to(root)) for p in seen}


def stage_module(cmd: str) -> str:
    words = shlex.split(cmd)
    assert words[:2] == ["python", "-m"], f"expected `python -m <module> ...`, got {cmd!r}"
    return words[2]


def missing_and_extra(stage, root: Path = ROOT) -> tuple[set[str], set[str]]:
    """The imported project files no declared file or folder covers, and the declared code (files,
    and folders of lib/) none of whose files is imported."""
    imported = project_imports(stage_module(stage.cmd), root)
    code = [
        str(dep.def_path)
        for dep in stage.deps
        if str(dep.def_path).endswith(".py") or str(dep.def_path).startswith("lib/")
    ]
    covered = {path for path in imported if any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in code)}
    extra = {dep for dep in code if not any(path == dep or path.startswith(dep.rstrip("/") + "/") for path in imported)}
    return imported - covered, extra


PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def stages():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return list(repo.index.stages)


def test_every_stage_declares_exactly_the_modules_it_imports(stages):
    assert len(stages) > 100  # the whole pipeline, every matrix unit resolved
    problems = []
    for stage in stages:
        missing, extra = missing_and_extra(stage)
        if missing:
            problems.append(f"{stage.addressing}: imports but does not declare {sorted(missing)}")
        if extra:
            problems.append(f"{stage.addressing}: declares but does not import {sorted(extra)}")
    assert not problems, "\n".join(problems)


def test_import_scan_sees_transitive_and_lazy_imports(tmp_path):
    """The scan this file relies on: a module reached through another, and one imported inside a
    function, both count; a third-party module does not."""
    pkg = tmp_path / "stages"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import numpy\nfrom stages import b\n")
    (pkg / "b.py").write_text("def f():\n    from stages.c import g\n")
    (pkg / "c.py").write_text("g = 1\n")
    (pkg / "d.py").write_text("")
    assert project_imports("stages.a", tmp_path) == {"stages/__init__.py", "stages/a.py", "stages/b.py", "stages/c.py"}


def test_removing_a_dependency_line_fails_the_check(stages):
    """Breaking a dependency on purpose must be caught: drop `lib/common` from one stage."""
    stage = next(s for s in stages if s.addressing == "fashion_cv@dense64-0")
    stage.deps = [d for d in stage.deps if str(d.def_path) != "lib/common"]
    missing, extra = missing_and_extra(stage)
    assert missing == {"lib/common/core.py", "lib/common/paths.py"} and not extra


def test_no_training_unit_imports_results_code_and_no_table_imports_keras_code(stages):
    """The layout's rule: a unit imports only what can change its result; the tables, the report
    and the params check import the Keras-free configs, never the training core."""
    units = [s for s in stages if paths.parse_unit(s.addressing)]
    assert len(units) == len(stages) - sum(1 for s in stages if "@" not in s.addressing) - sum(
        1 for s in stages if s.addressing.split("@")[0] in ("fetch", "preprocess", "noise")
    )
    search = [s for s in stages if s.addressing == "search"]  # trains too: the search's trials
    assert len(search) == 1
    for stage in units + search:
        assert not any(p.startswith("lib/results/") for p in project_imports(stage_module(stage.cmd))), stage.addressing
    for stage in stages:
        if stage.addressing in (
            "check_params",
            "mnist_tips_table",
            "fashion_table",
            "report",
            "fashion_samples",
            "search_table",
            "search_winner",
        ):
            assert "lib/train/keras_train.py" not in project_imports(stage_module(stage.cmd)), stage.addressing


def test_training_units_are_named_and_write_where_paths_says(stages):
    expected = {}
    for stage in stages:
        unit = paths.parse_unit(stage.addressing)
        if unit is None:
            continue
        kind, variant, seed = unit["kind"], unit["variant"], unit["seed"]
        assert paths.unit_name(kind, seed, variant, unit["group"]) == stage.addressing
        expected[stage.addressing] = {
            "mnist_tips": lambda: paths.mnist_tips_run(variant, seed),
            "fashion_cv": lambda: paths.fashion_cv_seed(variant, seed),
            "fashion_final": lambda: paths.fashion_final_run(seed),
            "fashion_cnn": lambda: paths.fashion_cnn_run(seed),
            "search_cv": lambda: paths.search_cv_seed(variant, seed),
            "search_final": lambda: paths.search_final_run(seed),
        }[kind]()
    tips, fashion = PARAMS["mnist_tips"], PARAMS["fashion"]
    # One stage per MNIST row and seed, per dense variant and seed (its folds inside), + final + CNN; per
    # re-run place of the search and seed, + the search winner's final models.
    assert len(expected) == len(tips["variants"]) * len(tips["seeds"]) + len(fashion["seeds"]) * (
        len(fashion["variants"]) + 2 + len(PARAMS["search"]["top"]) + 1
    )
    assert (
        sum(name.startswith("fashion_cv@") for name in expected)
        == len(fashion["variants"]) * len(fashion["seeds"])
        == 80
    )
    for stage in stages:
        if stage.addressing in expected:
            run = expected[stage.addressing]
            # The units that keep their trained model save it at the run folder's place under models/.
            model = [] if stage.addressing.split("@")[0].endswith("_cv") else [str(paths.model_file(run))]
            assert [str(o.def_path) for o in stage.outs] == [str(run), *model], stage.addressing
            # The unit finds the same files from its stage name, which is all its command gives it.
            files = paths.unit_files(stage.addressing)
            assert [str(files["out"]), *([str(files["model"])] if files["model"] else [])] == [str(run), *model]
            assert str(files["data"]) in [str(d.def_path) for d in stage.deps], stage.addressing
            assert all(o.persist for o in stage.outs), (
                f"{stage.addressing}: an output DVC would delete before the unit runs"
            )


def test_no_command_holds_a_value_of_params(stages):
    """DVC pastes templated values into a shell command unquoted, and `dvc repro --single-item` skips the
    params check: a command must not take any value from params.yaml (a stage reads its own name)."""
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in raw.items():
        cmd = (stage.get("do") or stage)["cmd"]
        assert "${" not in cmd, f"{name}: {cmd}"
    assert {stage.cmd for stage in stages if "@" in stage.addressing} == {
        f"python -m stages.{module}"
        for module in (
            "fetch",
            "preprocess",
            "noise",
            "mnist_tips",
            "fashion_cv",
            "fashion_final",
            "fashion_cnn",
            "search_cv",
            "search_final",
        )
    }
    assert all(o.persist for stage in stages for o in stage.outs if str(o.def_path).startswith("data/"))


def test_mnist_units_read_the_file_layout_names_and_the_noise_stages_write_it(stages):
    """Each MNIST tips unit trains on its group's prepared file for its seed (the noisy rows on
    their seed's own draw), which is also what it depends on; each noise stage writes one."""
    units = {s.addressing: s for s in stages if s.addressing.startswith("mnist_tips") and "@" in s.addressing}
    noise = {s.addressing: s for s in stages if s.addressing.startswith("noise@")}
    seeds = PARAMS["mnist_tips"]["seeds"]
    assert len(units) == len(PARAMS["mnist_tips"]["variants"]) * len(seeds) and sorted(noise) == sorted(
        f"noise@{s}" for s in seeds
    )
    for name, stage in units.items():
        group, _, key = name.partition("@")
        data = paths.prepared_file(group, int(key.rsplit("-", 1)[1]))
        assert paths.unit_files(name)["data"] == data and str(data) in [str(d.def_path) for d in stage.deps], name
    for name, stage in noise.items():
        assert [str(o.def_path) for o in stage.outs] == [str(paths.prepared_file(paths.NOISY, int(name[6:])))]


def _stale_after_editing(project: Path, module: str) -> set[str]:
    """The stages `dvc status` lists after a one-line edit of `module` (undone afterwards)."""
    path = project / module
    source = path.read_text()
    assert "up to date" in dvc(["status"], project).stdout
    try:
        path.write_text(source + "# an edit\n")
        return set(json.loads(dvc(["status", "--json"], project).stdout))
    finally:
        path.write_text(source)
        assert "up to date" in dvc(["status"], project).stdout


def test_an_edit_reruns_exactly_the_stages_that_import_it(smoke):
    """The point of the declarations and the layout: an edit of lib/common/core.py, which every
    stage imports, puts every stage of the smoke pipeline out of date; an edit of results code
    (rendering, claims, figures) only the table and report stages, retraining nothing; an edit of
    the training core every training unit and the search, and nothing else (the search's winner is results
    code: its re-runs' and final models' stages read its choice, and only retrain if the choice changes)."""
    project = smoke["path"]
    all_stages = {line.split()[0] for line in dvc(["stage", "list"], project).stdout.splitlines() if line.strip()}
    units = {stage for stage in all_stages if paths.parse_unit(stage)}
    assert _stale_after_editing(project, "lib/common/core.py") == all_stages and len(all_stages) > 20
    results = {"mnist_tips_table", "fashion_table", "report", "search_table", "search_winner"}
    for module in ("lib/results/render.py", "lib/results/claims.py", "lib/results/figures.py"):
        assert _stale_after_editing(project, module) == results, module
    assert _stale_after_editing(project, "lib/train/keras_train.py") == units | {"search"} and len(units) == 20


def test_every_stage_runs_after_the_params_check(stages):
    for stage in stages:
        deps = [str(d.def_path) for d in stage.deps]
        if stage.addressing == "check_params":
            assert [str(o.def_path) for o in stage.outs] == ["reports/params_check.json"]
        else:
            assert "reports/params_check.json" in deps, stage.addressing
