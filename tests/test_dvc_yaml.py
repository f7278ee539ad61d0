"""dvc.yaml against the code: every stage declares each project module its command imports
(directly or through other modules, at any depth, lazy imports included), and no module it
does not import; each training unit's `outs` is the run folder stages/layout.py names."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest
import yaml

from stages import layout
from tests.conftest import ROOT, dvc

PACKAGES = ("stages", "tools", "benchmarks")


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


def missing_and_extra(stage) -> tuple[set[str], set[str]]:
    imported = project_imports(stage_module(stage.cmd))
    declared = {str(dep.def_path) for dep in stage.deps if str(dep.def_path).endswith(".py")}
    return imported - declared, declared - imported


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
    """Breaking a dependency on purpose must be caught: drop `stages/common.py` from one stage."""
    stage = next(s for s in stages if s.addressing == "fashion_cv@dense64-0-0")
    stage.deps = [d for d in stage.deps if str(d.def_path) != "stages/common.py"]
    missing, extra = missing_and_extra(stage)
    assert missing == {"stages/common.py"} and not extra


def test_training_units_write_where_layout_says(stages):
    expected = {}
    for stage in stages:
        name, _, key = stage.addressing.partition("@")
        parts = key.split("-")
        if name.startswith("mnist_tips") and key:
            expected[stage.addressing] = layout.mnist_tips_run(layout.MNIST_TIPS_RUNS, parts[0], int(parts[1]))
        elif name == "fashion_cv":
            variant, seed, fold = key.rsplit("-", 2)
            expected[stage.addressing] = layout.fashion_cv_run(layout.FASHION_RUNS, variant, int(seed), int(fold))
        elif name == "fashion_final":
            expected[stage.addressing] = layout.fashion_final_run(layout.FASHION_RUNS, int(key))
        elif name == "fashion_cnn":
            expected[stage.addressing] = layout.fashion_cnn_run(layout.FASHION_RUNS, int(key))
    tips, fashion = PARAMS["mnist_tips"], PARAMS["fashion"]
    assert len(expected) == len(tips["variants"]) * len(tips["seeds"]) + len(fashion["seeds"]) * (
        len(fashion["variants"]) * len(fashion["cross_validation"]["folds"]) + 2)  # + final + CNN
    for stage in stages:
        if stage.addressing in expected:
            run = expected[stage.addressing]
            # The units that keep their trained model save it at the run folder's place under models/.
            model = [] if stage.addressing.startswith("fashion_cv") else [f"models/{run.relative_to('reports/runs')}.keras"]
            assert [str(o.def_path) for o in stage.outs] == [str(run), *model], stage.addressing
            assert f"--out {run}" in stage.cmd and all(f"--model {m}" in stage.cmd for m in model)


def test_mnist_units_read_the_file_layout_names_and_the_noise_stages_write_it(stages):
    """Each MNIST tips unit trains on its group's prepared file for its seed (the noisy rows on
    their seed's own draw), which is also what it depends on; each noise stage writes one."""
    units = {s.addressing: s for s in stages if s.addressing.startswith("mnist_tips") and "@" in s.addressing}
    noise = {s.addressing: s for s in stages if s.addressing.startswith("noise@")}
    seeds = PARAMS["mnist_tips"]["seeds"]
    assert len(units) == len(PARAMS["mnist_tips"]["variants"]) * len(seeds) and sorted(noise) == sorted(f"noise@{s}" for s in seeds)
    for name, stage in units.items():
        group, _, key = name.partition("@")
        data = layout.prepared_file(layout.PREPARED, group, int(key.rsplit("-", 1)[1]))
        assert f"--data {data} " in stage.cmd and str(data) in [str(d.def_path) for d in stage.deps], name
    for name, stage in noise.items():
        assert [str(o.def_path) for o in stage.outs] == [str(layout.prepared_file(layout.PREPARED, layout.NOISY, int(name[6:])))]


def test_editing_a_shared_module_makes_every_stage_stale(smoke):
    """The point of the declarations: a one-line edit of stages/common.py, which every stage
    imports, must put every stage of the smoke pipeline out of date (and only until undone)."""
    project = smoke["path"]
    common = project / "stages" / "common.py"
    source = common.read_text()
    all_stages = {line.split()[0] for line in dvc(["stage", "list"], project).stdout.splitlines() if line.strip()}
    assert "up to date" in dvc(["status"], project).stdout
    try:
        common.write_text(source + "# an edit\n")
        stale = set(json.loads(dvc(["status", "--json"], project).stdout))
    finally:
        common.write_text(source)
    assert stale == all_stages and len(stale) > 20
    assert "up to date" in dvc(["status"], project).stdout


def test_every_stage_runs_after_the_params_check(stages):
    for stage in stages:
        deps = [str(d.def_path) for d in stage.deps]
        if stage.addressing == "check_params":
            assert [str(o.def_path) for o in stage.outs] == ["reports/params_check.json"]
        else:
            assert "reports/params_check.json" in deps, stage.addressing
