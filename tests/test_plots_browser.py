"""`dvc plots show` rendered in headless Chromium with every host name unresolvable: every plot
of dvc.yaml must draw offline, from the project's page (.dvc/plots/page.html, the default in
.dvc/config) and the vega that `npm ci` installs (package.json)."""

import json
import os
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from tests.conftest import dvc, run

pytestmark = pytest.mark.pipeline  # drives DVC and a browser on a project of its own

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no CDN can answer
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
    project, work = smoke["path"], tmp_path_factory.mktemp("plots")
    run([npm, "ci", "--no-audit", "--no-fund"], project)  # the README's set-up for the plots page
    try:
        shown = dvc(["plots", "show"], project)  # no --html-template: the project's default page
        page = project / "dvc_plots" / "index.html"
        profile = ["--user-data-dir=" + str(work / "profile")]
        dom = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *profile, "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
        shot = work / "plots.png"
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, *profile, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
            capture_output=True,
            timeout=180,
            check=True,
        )
        plots = dvc(["plots", "show", "--json"], project).stdout
        status = run(["git", "status", "--porcelain", "--untracked-files=all"], project).stdout
        ignored = run(["git", "check-ignore", "dvc_plots/index.html", "node_modules/vega/package.json"], project).stdout
    finally:
        shutil.rmtree(project / "node_modules", ignore_errors=True)
        shutil.rmtree(project / "dvc_plots", ignore_errors=True)
    return {
        "dom": dom,
        "screenshot": shot,
        "plots": plots,
        "shown": shown.stdout,
        "page": page,
        "git_status": status,
        "ignored": ignored,
    }


def test_the_page_is_the_projects_and_git_ignores_it(rendered):
    assert rendered["page"].as_uri() in rendered["shown"]
    assert not re.findall(r'<script src="https://[^"]*"></script>', rendered["dom"])  # the CDN fallback was not taken
    # dvc_plots/ and node_modules/ are ignored (earlier tests may leave other changes, e.g. the
    # hash of a retrained .keras file in dvc.lock: the archive records when it was saved)
    assert rendered["ignored"].split() == ["dvc_plots/index.html", "node_modules/vega/package.json"]
    assert not [line for line in rendered["git_status"].splitlines() if "dvc_plots" in line or "node_modules" in line]


def test_every_vega_plot_rendered_a_chart(rendered):
    data = json.loads(rendered["plots"])["data"]
    vega = [name for name, items in data.items() if items and items[0]["type"] == "vega"]
    images = [name for name, items in data.items() if items and items[0]["type"] == "image"]
    # dvc.yaml's plot definitions with a template: the MNIST and Fashion-MNIST curves, confusions and warning
    # strip (7), and the search's parallel coordinates, progress and importances (3).
    assert len(vega) == 10 and len(images) >= 4
    assert {"Search, every trial on parallel coordinates of the space (the best trial labelled)"} <= set(vega)
    charts = re.findall(r'<canvas[^>]*class="marks"', rendered["dom"])
    assert len(charts) == len(vega)  # one drawn chart per plot definition
    assert rendered["dom"].count("<img") == len(images)
    assert "Error" not in rendered["dom"]


def test_screenshot_is_not_blank(rendered):
    pixels = matplotlib.image.imread(rendered["screenshot"])[..., :3]
    not_white = np.any(pixels < 0.95, axis=-1).mean()
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 100, (not_white, colours)
