"""The peer run: Django's tests on KeyedStorage, in a pytest process of its own.

`pytest tests/peer --ds=tests.peer.settings` (make test does). Under any other settings,
such as the main run's, this directory is not collected: its tests need Django's test apps
installed, which only the peer settings do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .differences import DIFFERENCES

PEER_SETTINGS = "tests.peer.settings"
HERE = Path(__file__).resolve().parent
TIMEOUT = 60  # seconds a test may take; a name that loops forever fails alone, not the run

PEER_RUN = os.environ.get("DJANGO_SETTINGS_MODULE") == PEER_SETTINGS

if not PEER_RUN:
    collect_ignore_glob = ["*"]


def pytest_configure(config):
    asked = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if not PEER_RUN and any(path == HERE or HERE in path.parents for path in asked):
        raise pytest.UsageError(
            f"The peer tests run with their own settings: pytest tests/peer --ds={PEER_SETTINGS}"
        )


@pytest.fixture(scope="session", autouse=True)
def keyed_storages_on_test_models():
    from .harness import keyed_storages_on_test_models

    with keyed_storages_on_test_models():
        yield


def pytest_unconfigure(config):
    if PEER_RUN:
        from django.conf import settings

        shutil.rmtree(settings.PEER_TEMP_DIR, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Give each peer test a time limit, and refuse differences that name no collected test.

    Listed tests run as expected failures (harness.PeerMixin); an entry naming a test that
    does not exist in a collected class is an error, so a renamed test leaves no stale reason.
    """
    peer = [item for item in items if HERE in item.path.parents]
    names = {_key(item) for item in peer if item.cls is not None}
    classes = {name.split(".")[0] for name in names}
    stale = [key for key in DIFFERENCES if key.split(".")[0] in classes and key not in names]
    if stale:
        raise pytest.UsageError(f"tests/peer/differences.py lists tests that do not exist: {stale}")
    for item in peer:
        item.add_marker(pytest.mark.timeout(TIMEOUT))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Report a listed test's reason with its expected failure, and say what to do if it passes."""
    report = yield
    reason = DIFFERENCES.get(_key(item)) if item.cls is not None else None
    if reason and hasattr(report, "wasxfail"):
        report.wasxfail = reason
    elif reason and report.failed and "Unexpected success" in str(report.longrepr):
        report.longrepr = (
            f"Unexpected success: {_key(item)} now passes. If the difference is gone, remove it from "
            f"tests/peer/differences.py; it was listed as: {reason}"
        )
    return report


def _key(item) -> str:
    return f"{item.cls.__name__}.{item.name}"
