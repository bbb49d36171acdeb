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
    """Give each peer test a time limit and mark each listed difference xfail(strict=True).

    An entry naming a test that does not exist in a collected class is refused, so a renamed
    test cannot leave a stale reason behind.
    """
    peer = [item for item in items if HERE in item.path.parents]
    keys = {item: f"{item.cls.__name__}.{item.name}" for item in peer if item.cls is not None}
    classes = {key.split(".")[0] for key in keys.values()}
    stale = [key for key in DIFFERENCES if key.split(".")[0] in classes and key not in keys.values()]
    if stale:
        raise pytest.UsageError(f"tests/peer/differences.py lists tests that do not exist: {stale}")
    for item in peer:
        item.add_marker(pytest.mark.timeout(TIMEOUT))
        reason = DIFFERENCES.get(keys.get(item, ""))
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
