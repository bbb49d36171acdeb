"""Settings of the peer run: the demo site's, plus the apps of Django's tests that hold the models."""

import os
import tempfile

from testproject.settings import *  # noqa: F403

from . import django_tests

# Fetching here, not in a conftest: pytest-django sets Django up (and so imports these
# apps) before any conftest is read. If the fetch fails, the apps are left out and the
# test modules fail (CI=true) or skip, saying why.
if django_tests.fetch() is not None:
    INSTALLED_APPS = [*INSTALLED_APPS, "file_storage", "model_fields"]  # noqa: F405

# Django's tests ask for links outside any request (a pickled FieldFile's url); keyed_storage
# refuses to guess an origin there, so the run names one, as a deployed site would.
KEYED_STORAGE = {"KEYED_STORAGE_BASE_URL": "http://testserver"}

# As Django's own test settings (tests/test_sqlite.py): its tests compare file times with
# naive datetimes.
USE_TZ = False

# As Django's runtests.py does: every temporary file of the run (Django's test models make
# their directories at import) goes under one directory, removed when the run ends.
PEER_TEMP_DIR = tempfile.mkdtemp(prefix="keyed-peer-")
tempfile.tempdir = os.environ["TMPDIR"] = PEER_TEMP_DIR
