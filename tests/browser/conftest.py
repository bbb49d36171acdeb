"""Playwright fixtures driving Debian's Chromium (/usr/bin/chromium); a screenshot is kept on failure.

Playwright's own browser download cannot work on our machines, so the browser is the one
`apt-get install chromium` puts at /usr/bin/chromium (.ci/run installs it). Without it
these tests skip on a developer's machine and fail under CI=true.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("KEYED_STORAGE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps trying to reach Google's hosts, which the sandbox refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Let the tests press play from a script, and keep the machine quiet.
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]


def _missing(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: browser tests must run; .ci/run installs Chromium)", pytrace=False)
    pytest.skip(f"{reason}; install it with `make browser-deps` (apt-get install chromium)")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def browser():
    """Chromium, for one test module.

    Playwright's sync API marks its event loop as running in this thread for as long as it
    is started, and Django then refuses ORM calls here (SynchronousOnlyOperation) although
    no coroutine of ours runs. The browser is therefore scoped to the module, and only while
    it runs is Django told the calls are safe.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"Chromium is not at {CHROMIUM}")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser profile for each test; on failure its screenshot goes to test-artifacts/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
