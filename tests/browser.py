"""Helpers of the page's browser tests: Debian's Chromium driven by Playwright, a small trained model with two
messages on two channels, and one real ``uplift serve`` over it (shared by the browser tests of a session)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from apiserver import _SHARED, ROOT, TOKENS, running_server, train_version

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SCREENSHOTS = ROOT / "out" / "screenshots"
"""Where the browser tests write a screenshot of each page (test artifacts)."""
PAGE_SETTINGS = {"min_segment_size": 50, "compute_processes": 1}


def page_world_table():
    """2 messages x 2 channels (meta, flyer), 30,000 people, 2 waves, a 10x baseline: a plan has channels and
    messages to split over, the shipped flyer minimum applies, and training takes about half a minute."""
    from conftest import feature_set_for
    from uplift.features import build_training_table
    from uplift.simulate import simulate
    from uplift.specs import load_spec
    from uplift.specs.region import RegionSpec

    region = load_spec(ROOT / "features" / "regions" / "haaglanden.yaml", RegionSpec)
    spec = region.subset(messages=["heavy_work_future", "fresh_start"], channels=["meta", "flyer"])
    spec = spec.updated(baseline=spec.baseline.model_copy(update={"registration": 0.018}))
    world = simulate(spec, people=30_000, waves=2, seed=11)
    return build_training_table(world.audience, world.exposures, world.enrolments, feature_set_for(world),
                                source="page world")


def page_server(request, tmp_path_factory) -> tuple[str, Path]:
    """One server over one trained page-world store per test session: (base URL, store folder)."""
    if "page_server" not in _SHARED:
        store = tmp_path_factory.mktemp("page_store")
        train_version(store, page_world_table())
        context = running_server(store, costs=page_costs(store), **PAGE_SETTINGS)
        _SHARED["page_server"] = (context.__enter__(), store)
        request.config.add_cleanup(lambda: context.__exit__(None, None, None))
    return _SHARED["page_server"]


def page_costs(store: Path) -> Path:
    """The shipped cost catalogue without the channels' smallest lines: the page world's segments are of a few
    hundred people, and no EUR 28 Meta ad set fits one (the pages are tested here; whole lines at their minimums
    in tests/test_channellines.py and tests/test_handoff.py)."""
    costs = yaml.safe_load((ROOT / "serve" / "costs.yaml").read_text())
    for channel in costs["channels"].values():
        channel.pop("min_line_spend", None)
        channel.pop("min_print_run", None)
    path = store / "costs.yaml"
    path.write_text(yaml.safe_dump(costs, sort_keys=False))
    return path


def launch(playwright):
    """Headless Debian Chromium with a fresh profile (no browser download: ``executable_path``)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium package")
    profile = tempfile.mkdtemp(prefix="uplift-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, accept_downloads=True,
        viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    return context, profile


def close(context, profile: str) -> None:
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


def sign_in(page, base: str, token: str = TOKENS[0]) -> None:
    page.goto(f"{base}/ui/sign-in")
    page.get_by_label("Service token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/$"))


def screenshot(page, name: str) -> Path:
    """The whole page as ``out/screenshots/<name>.png`` and its first screen as ``<name>-screen.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-screen.png"))
    return path


def serious_violations(page) -> list[str]:
    """axe-core's serious or critical violations on the page (axe.min.js as axe-playwright-python ships it)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = results.response.get("violations", [])
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
            for v in found if v.get("impact") in ("serious", "critical")]


def eur_value(text: str) -> float:
    """``€12,345`` -> 12345.0."""
    return float(text.replace("€", "").replace(",", "").strip())
