"""README.md's figures are backed by committed results: every decimal figure and speed-up (`1.32x`) in its
prose is, at the precision shown, the value of the one file and key SOURCES names for it; its counts are the
pipeline's own, and its pipeline diagram is DVC's graph."""

from __future__ import annotations

import re

from lib.common.core import load_yaml
from tests.conftest import ROOT
from tools.dag import flowchart, groups, in_readme
from tools.run_parallel import pipeline

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?![\w.])")
SPEEDUP = re.compile(r"(?<![\w.])(\d+\.\d+)x\b")


def prose(text: str) -> str:
    """The text outside fenced code blocks (commands, not claims)."""
    return "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)


def paragraphs(text: str) -> list[str]:
    """Prose paragraphs and list items: where a figure and the file it comes from are named together."""
    return [p for p in re.split(r"\n\s*\n|\n(?=- )", prose(text)) if p.strip()]


def figures(text: str) -> list[str]:
    """A paragraph's decimal figures and speed-ups (not a version such as Python 3.11), signs dropped."""
    found = [m.group().lstrip("+-") for m in NUMBER.finditer(text) if not text[: m.start()].endswith("Python ")]
    return found + SPEEDUP.findall(text)


def keras2_cell(address: str, std: bool = False) -> str:
    """The pattern of a figure's Keras 2 mean (or std) in the report's table of the figures on other backends:
    its fifth column, after the post's, ours and Keras 3 on JAX."""
    mean, spread = (r"[\d.]+", r"([\d.]+)") if std else (r"([\d.]+)", r"[\d.]+")
    return rf"re:\| `{re.escape(address)}` \|[^|]*\|[^|]*\|[^|]*\| {mean} ± {spread} \("


# Every figure README.md's prose gives, in its order, with the one committed file and key it comes from: a
# dotted key into that JSON or YAML file ("/"-separated where a key holds dots), divided by `scale` (bytes
# to GB), two keys for a ratio, or "re:<pattern>" for a figure a file states in its text. A figure added,
# removed or changed in README.md without this list fails the test; so does a results file whose figure moved.
SOURCES = [
    ("2.6", "reports/benchmarks.json", "disk.venv_bytes", 1e9),
    ("1.2", "reports/benchmarks.json", "disk.data_bytes", 1e9),
    ("2.2", "reports/benchmarks.json", "disk.models_bytes", 1e9),
    ("2.4", "reports/benchmarks.json", "tests.tmp_peak_bytes", 1e9),
    ("0.9379", "reports/mnist_tips/metrics.json", "unscaled.test_accuracy.mean"),
    ("0.9398", "reports/README.md", keras2_cell("mnist_tips.unscaled.test_accuracy")),
    ("0.1112", "reports/mnist_tips/metrics.json", "unscaled_keras2_loss.test_accuracy.mean"),
    ("0.325", "reports/fashion/metrics.json", "cross_validation.dense64.val_loss.mean"),
    ("0.003", "reports/fashion/metrics.json", "cross_validation.dense64.val_loss.std"),
    ("0.885", "reports/fashion/metrics.json", "cross_validation.dense64.val_accuracy.mean"),
    ("0.001", "reports/fashion/metrics.json", "cross_validation.dense64.val_accuracy.std"),
    ("0.329", "reference/fashion.yaml", "cross_validation.dense64.val_loss"),
    ("0.883", "reference/fashion.yaml", "cross_validation.dense64.val_accuracy"),
    ("0.8882", "reports/fashion/metrics.json", "final.test_accuracy.mean"),
    ("0.0020", "reports/fashion/metrics.json", "final.test_accuracy.std"),
    ("0.8864", "reference/fashion.yaml", "final.test_accuracy"),
    ("0.919", "reports/fashion/metrics.json", "cnn.final_val_accuracy.mean"),
    ("0.002", "reports/fashion/metrics.json", "cnn.final_val_accuracy.std"),
    ("0.02", "claims.yaml", "tolerance.accuracy.absolute"),
    ("0.03", "claims.yaml", "tolerance.loss.absolute"),
    ("0.18", "reports/verdicts.json", "figures/mnist_tips.mse_sigmoid.test_accuracy/p"),
    ("0.1363", "reports/verdicts.json", "figures/mnist_tips.mse_sigmoid.test_accuracy/post"),
    ("0.1148", "reports/verdicts.json", "figures/mnist_tips.mse_sigmoid.test_accuracy/mean"),
    ("0.0033", "reports/verdicts.json", "figures/mnist_tips.mse_sigmoid.test_accuracy/std"),
    ("0.9217", "reports/verdicts.json", "figures/mnist_tips.deep_relu_adam.test_accuracy/post"),
    ("0.9515", "reports/verdicts.json", "figures/mnist_tips.deep_relu_adam.test_accuracy/mean"),
    ("0.0088", "reports/verdicts.json", "figures/mnist_tips.deep_relu_adam.test_accuracy/std"),
    ("0.6225", "reports/verdicts.json", "figures/mnist_tips.noisy_dropout.test_accuracy/post"),
    ("0.6016", "reports/verdicts.json", "figures/mnist_tips.noisy_dropout.test_accuracy/mean"),
    ("0.0062", "reports/verdicts.json", "figures/mnist_tips.noisy_dropout.test_accuracy/std"),
    ("15.6", "reports/verdicts.json", "figures/fashion.cross_validation.dense64x2_dropout02.epoch/mean"),
    ("1.3", "reports/verdicts.json", "figures/fashion.cross_validation.dense64x2_dropout02.epoch/std"),
    ("19.8", "reports/verdicts.json", "figures/fashion.cross_validation.dense64_l2.epoch/mean"),
    ("3.5", "reports/verdicts.json", "figures/fashion.cross_validation.dense64_l2.epoch/std"),
    ("0.9497", "reports/README.md", keras2_cell("mnist_tips.deep_relu_adam.test_accuracy")),
    ("0.5981", "reports/README.md", keras2_cell("mnist_tips.noisy_dropout.test_accuracy")),
    ("0.9217", "reports/verdicts.json", "figures/mnist_tips.deep_relu_adam.test_accuracy/post"),
    ("0.6225", "reports/verdicts.json", "figures/mnist_tips.noisy_dropout.test_accuracy/post"),
    ("0.1225", "reports/README.md", keras2_cell("mnist_tips.mse_sigmoid.test_accuracy")),
    ("0.0245", "reports/README.md", keras2_cell("mnist_tips.mse_sigmoid.test_accuracy", std=True)),
    ("0.1363", "reports/verdicts.json", "figures/mnist_tips.mse_sigmoid.test_accuracy/post"),
    ("17.2", "reports/README.md", keras2_cell("fashion.cross_validation.dense64x2_dropout02.epoch")),
    ("2.1", "reports/README.md", keras2_cell("fashion.cross_validation.dense64x2_dropout02.epoch", std=True)),
    ("0.8981", "reports/search_table/table.md", r"re:\| 1 \| \d+ \| [^|]+ \| ([\d.]+) \|"),
    ("0.8952", "reports/search_table/summary.json", "reruns.top1.val_accuracy.mean"),
    ("0.0017", "reports/search_table/summary.json", "reruns.top1.val_accuracy.std"),
    ("0.32", "reports/search_table/summary.json", "reruns.top2.params.dropout_rate"),
    ("0.8953", "reports/search_table/summary.json", "reruns.top2.val_accuracy.mean"),
    ("0.0015", "reports/search_table/summary.json", "reruns.top2.val_accuracy.std"),
    ("0.8917", "reports/search_table/summary.json", "reruns.top2.interval.low"),
    ("0.8988", "reports/search_table/summary.json", "reruns.top2.interval.high"),
    ("0.893", "reports/fashion/metrics.json", "cross_validation.dense256_dropout04.val_accuracy.mean"),
    ("0.001", "reports/fashion/metrics.json", "cross_validation.dense256_dropout04.val_accuracy.std"),
    ("0.4", "params.yaml", "fashion.variants.dense256_dropout04.dropout_rate"),
    ("0.8909", "reports/search_table/summary.json", "test.winner.mean"),
    ("0.0024", "reports/search_table/summary.json", "test.winner.std"),
    ("0.8882", "reports/search_table/summary.json", "test.post_choice.mean"),
    ("0.0020", "reports/search_table/summary.json", "test.post_choice.std"),
    ("0.0027", "reports/search_table/table.md", r"re:its mean test accuracy is ([\d.]+) above"),
    ("0.9193", "reports/search_table/summary.json", "test.cnn.mean"),
    ("0.02", "floors/full.yaml", r"re:max\(3 x seed std, ([\d.]+)\)"),
    (
        "1.7",
        "reports/benchmarks.json",
        (
            "parallel.fashion_dense64.two_side_by_side_images_per_s",
            "parallel.fashion_dense64.default_threads_images_per_s",
        ),
    ),
    ("1.32", "reports/benchmarks.json", "units.fashion_dense64.speedup"),
    ("1.08", "reports/benchmarks.json", "units.fashion_dense256x2.speedup"),
    ("1.12", "reports/benchmarks.json", "units.mnist_3x689.speedup"),
]


def source_value(path: str, key, scale: float = 1.0) -> float:
    if isinstance(key, tuple):
        return source_value(path, key[0]) / source_value(path, key[1])
    if key.startswith("re:"):
        return float(re.search(key[3:], (ROOT / path).read_text(encoding="utf-8"))[1])
    node = load_yaml(ROOT / path)  # YAML reads JSON too
    for part in key.split("/" if "/" in key else "."):  # "/" where a key holds dots (verdicts.json's addresses)
        node = node[part]
    return node / scale


def shown_as(figure: str, value: float) -> bool:
    return round(abs(value), len(figure.split(".")[1])) == float(figure)


def readme_figures() -> list[str]:
    return [f for paragraph in paragraphs((ROOT / "README.md").read_text()) for f in figures(paragraph)]


def test_every_figure_in_the_readme_is_the_value_of_its_source():
    shown = readme_figures()
    assert len(shown) > 30, "no figure found: the scan is broken"
    assert shown == [figure for figure, *_ in SOURCES], "README.md's figures and SOURCES disagree (order or values)"
    wrong = [
        (figure, path, key)
        for figure, path, key, *scale in SOURCES
        if not shown_as(figure, source_value(path, key, *scale))
    ]
    assert not wrong, f"README.md figures that are not their source's value: {wrong}"


def test_a_figure_one_unit_off_in_its_last_digit_is_caught():
    """Each README figure changed by one unit in its last digit no longer matches its source."""
    for figure, path, key, *scale in SOURCES:
        digits = len(figure.split(".")[1])
        for step in (1, -1):
            changed = f"{float(figure) + step * 10**-digits:.{digits}f}"
            assert not shown_as(changed, source_value(path, key, *scale)), (figure, changed)


def test_the_scan_reads_prose_figures_and_speedups_only():
    text = "Python 3.11; val_accuracy 0.87542, 1.32x faster\n```\ndvc exp run -S lr=0.0001\n```\n"
    assert [f for p in paragraphs(text) for f in figures(p)] == ["0.87542", "1.32"]
    assert shown_as("0.94", 0.9448) and not shown_as("0.87542", 0.8755) and not shown_as("1.37", 1.32)


def readme_counts() -> dict[str, int]:
    """Each count of stages, units, seeds and folds README.md's prose gives, by the words around it, with what
    the pipeline has (DVC's graph, params.yaml)."""
    stages, _, deps = pipeline(ROOT)
    group = groups(stages)
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
