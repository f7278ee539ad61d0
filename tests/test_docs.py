"""README.md's figures are backed by committed results: every decimal figure in its prose
appears, at the precision shown, in a committed results file under reports/ (the JSON files,
or the reports the stages generate from them) or in the posts' figures under reference/."""

from __future__ import annotations

import re

from tests.conftest import ROOT

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
