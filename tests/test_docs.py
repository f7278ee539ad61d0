"""README.md's figures are backed by committed results: every decimal figure in its prose
appears, at the precision shown, in a committed results file under reports/ (the JSON files,
or the reports the stages generate from them) or in the posts' figures under reference/."""

from __future__ import annotations

import re
from collections import Counter

from lib.common.core import load_yaml
from tests.conftest import ROOT
from tools.dag import flowchart, in_readme
from tools.run_parallel import pipeline

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?![\w.])")


def prose(text: str) -> str:
    """The text outside fenced code blocks (commands, not claims)."""
    return "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)


def figures(text: str) -> list[str]:
    found = []
    for match in NUMBER.finditer(prose(text)):
        before = prose(text)[max(0, match.start() - 8) : match.start()]
        if before.endswith("Python "):  # a version, not a figure
            continue
        found.append(match.group().lstrip("+-"))
    return found


def backing_numbers() -> list[float]:
    files = [*ROOT.glob("reports/**/*.json"), *ROOT.glob("reports/**/*.md"), *ROOT.glob("reference/*.yaml")]
    files = [f for f in files if "runs" not in f.relative_to(ROOT).parts]  # the run folders are summed up in the tables
    return [float(m.group()) for f in files for m in NUMBER.finditer(f.read_text())] + [
        float(n) for f in files for n in re.findall(r"(?<![\w.])\d+(?![\w.])", f.read_text())
    ]


def is_backed(figure: str, pool: list[float]) -> bool:
    digits = len(figure.split(".")[1])
    value = float(figure)
    return any(round(abs(x), digits) == value for x in pool)


def test_every_figure_in_the_readme_is_in_a_committed_results_file():
    pool = backing_numbers()
    readme = (ROOT / "README.md").read_text()
    unbacked = [f for f in figures(readme) if not is_backed(f, pool)]
    assert figures(readme), "no figure found: the scan is broken"
    assert not unbacked, f"README.md figures with no committed results file behind them: {unbacked}"


def test_the_check_catches_an_unbacked_figure():
    pool = [0.87550, 1.32, 0.9448]
    assert is_backed("0.9448", pool) and is_backed("0.94", pool) and is_backed("1.32", pool)
    assert not is_backed("0.87542", pool) and not is_backed("1.37", pool)
    assert figures("Python 3.11; val_accuracy 0.87542\n```\ndvc exp run -S lr=0.0001\n```\n") == ["0.87542"]


def readme_counts() -> dict[str, int]:
    """Each count of stages, units, seeds and folds README.md's prose gives, by the words around it, with what
    the pipeline has (DVC's graph, params.yaml)."""
    stages, _, deps = pipeline(ROOT)
    group = Counter(stage.split("@")[0] for stage in stages)
    tips = group["mnist_tips"] + group["mnist_tips_noisy"] + group["mnist_tips_unscaled"]
    params = load_yaml(ROOT / "params.yaml")
    return {
        r"the (\d+) MNIST units,": tips,
        r"(\d+) final dense nets and": group["fashion_final"],
        r"dense nets and (\d+) CNNs": group["fashion_cnn"],
        r"keeps the (\d+) cross-validation units": group["fashion_cv"],
        r"per variant and seed \((\d+)\)": group["fashion_cv"],
        r"The pipeline\shas (\d+) stages": len(stages),
        r"for each of the (\d+) stages that declare\sparams": sum("params.yaml" in d for d in deps.values()),
        r"rests on (\d+) seeds of every training unit": len(params["mnist_tips"]["seeds"]),
        r"retrain of the (\d+) units that keep a model": tips + group["fashion_final"] + group["fashion_cnn"],
        r"at most its (\d+) folds": params["fashion"]["cross_validation"]["k"],
    }


def test_the_readme_counts_are_the_pipeline_s():
    readme = " ".join((ROOT / "README.md").read_text().split())  # a phrase may break across lines
    for pattern, count in readme_counts().items():
        found = re.findall(pattern, readme)
        assert found and {int(n) for n in found} == {count}, (pattern, found, count)


def test_the_readme_pipeline_diagram_is_dvc_s_graph():
    """README.md's Mermaid chart is what `python -m tools.dag` draws now: every stage of dvc.yaml, counted."""
    readme = (ROOT / "README.md").read_text()
    chart = flowchart(ROOT)
    assert in_readme(readme, chart) == readme, (
        "README's pipeline diagram is stale: python -m tools.dag --readme README.md"
    )
    for name in load_yaml(ROOT / "dvc.yaml")["stages"]:
        assert f'  {name}["{name}' in chart, name
