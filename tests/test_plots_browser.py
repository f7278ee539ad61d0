"""`dvc plots show` rendered in headless Chromium: every plot of dvc.yaml must actually draw.

DVC's page loads vega from a CDN; machines here are offline, so the page is rendered with
the same vega versions taken from the npm registry and served next to it."""

import json
import os
import re
import shutil
import subprocess
import tarfile

import matplotlib.image
import numpy as np
import pytest

from tests.conftest import dvc

# The versions DVC's HTML page asks the CDN for (dvc_render/vega.py).
VEGA = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}
TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>DVC plots</title>
<script src="vega.min.js"></script><script src="vega-lite.min.js"></script><script src="vega-embed.min.js"></script>
</head><body>{plot_divs}</body></html>
"""
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=20000",
]


def need(tool, *alternatives):
    path = next(filter(None, map(shutil.which, (tool, *alternatives))), None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: .ci/run must install it")
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture(scope="module")
def rendered(smoke, tmp_path_factory):
    chromium, npm = need("chromium", "google-chrome", "chromium-browser"), need("npm")
    work = tmp_path_factory.mktemp("plots")
    subprocess.run([npm, "pack", "--silent", *(f"{k}@{v}" for k, v in VEGA.items())], cwd=work, check=True, capture_output=True)
    out = work / "html"
    (work / "template.html").write_text(TEMPLATE)
    dvc(["plots", "show", "-o", str(out), "--html-template", str(work / "template.html")], smoke["path"])
    for name, version in VEGA.items():
        with tarfile.open(work / f"{name}-{version}.tgz") as tar:
            (out / f"{name}.min.js").write_bytes(tar.extractfile(f"package/build/{name}.min.js").read())
    page = (out / "index.html").as_uri()
    profile = ["--user-data-dir=" + str(work / "profile")]
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, *profile, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    shot = work / "plots.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, *profile, f"--screenshot={shot}", "--window-size=1280,4000", page],
                   capture_output=True, timeout=180, check=True)
    plots = dvc(["plots", "show", "--json"], smoke["path"]).stdout
    return {"dom": dom, "screenshot": shot, "plots": plots, "html": out}


def test_every_vega_plot_rendered_a_chart(rendered):
    data = json.loads(rendered["plots"])["data"]
    vega = [name for name, items in data.items() if items and items[0]["type"] == "vega"]
    images = [name for name, items in data.items() if items and items[0]["type"] == "image"]
    assert len(vega) == 6 and len(images) >= 4
    charts = re.findall(r'<canvas[^>]*class="marks"', rendered["dom"])
    assert len(charts) == len(vega)  # one drawn chart per plot definition
    assert rendered["dom"].count("<img") == len(images)
    assert "Error" not in rendered["dom"]


def test_screenshot_is_not_blank(rendered):
    pixels = matplotlib.image.imread(rendered["screenshot"])[..., :3]
    not_white = np.any(pixels < 0.95, axis=-1).mean()
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 100, (not_white, colours)
