"""The pipeline's shape as a Mermaid flowchart, for where `dvc dag` is too wide to read (one box per
stage, hundreds of them): one node per stage of dvc.yaml, its foreach or matrix items counted, and an
arrow where a stage of one needs a stage of another (from DVC's own graph), unless a longer path of
arrows already leads there (check_params comes before every stage, through fetch). README.md holds it
between its two `pipeline diagram` markers, and a test keeps it true:
    python -m tools.dag              # print it
    python -m tools.dag --readme README.md   # rewrite it there"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from tools.run_parallel import pipeline

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- pipeline diagram: python -m tools.dag --readme README.md -->", "<!-- end of pipeline diagram -->")


def groups(stages: list[str]) -> Counter:
    """Each stage of dvc.yaml (a foreach or matrix stage: its items' name before the `@`) with its items' count."""
    return Counter(stage.split("@")[0] for stage in stages)


def flowchart(root: Path) -> str:
    stages, upstream, _ = pipeline(root)
    counted = groups(stages)
    needs = {(need.split("@")[0], stage.split("@")[0]) for stage in stages for need in upstream[stage]}
    needs -= {(g, g) for g in counted}

    def reaches(a: str, b: str, skip: tuple[str, str]) -> bool:
        seen, todo = set(), [a]
        while todo:
            node = todo.pop()
            for x, y in needs - {skip}:
                if x == node and y not in seen:
                    seen.add(y)
                    todo.append(y)
        return b in seen

    order = list(counted)  # an arrow a longer path implies is left out (a transitive reduction), so the shape shows
    edges = sorted((e for e in needs if not reaches(*e, e)), key=lambda e: (order.index(e[0]), order.index(e[1])))
    nodes = [f'  {g}["{g}{f" × {n}" if n > 1 else ""}"]' for g, n in counted.items()]
    return "\n".join(["```mermaid", "flowchart LR", *nodes, *(f"  {a} --> {b}" for a, b in edges), "```"])


def in_readme(text: str, chart: str) -> str:
    start, end = (re.escape(m) for m in MARKERS)
    if not re.search(f"{start}.*{end}", text, re.S):
        raise SystemExit(f"tools.dag: README has no {MARKERS[0]!r} ... {MARKERS[1]!r} to write between")
    return re.sub(f"{start}.*{end}", lambda _: f"{MARKERS[0]}\n{chart}\n{MARKERS[1]}", text, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, help="write the chart between this file's markers")
    args = parser.parse_args()
    chart = flowchart(ROOT)
    if args.readme:
        args.readme.write_text(in_readme(args.readme.read_text(encoding="utf-8"), chart), encoding="utf-8")
    else:
        print(chart)


if __name__ == "__main__":
    main()
