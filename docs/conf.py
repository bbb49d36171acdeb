"""Sphinx configuration of keyed_storage's documentation (`make docs`).

Django is set up here, on the minimal project in docs/docsite/ (local storage in a temporary
MEDIA_ROOT, an in-memory SQLite database), so autodoc can import the package and the pages'
examples run under sphinx.ext.doctest against it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS), str(DOCS / "_ext")]

# The examples run in local mode whatever the shell that builds them has set: a bucket in the
# environment would send them to S3 (keyed_storage chooses its backend from these variables).
for name in list(os.environ):
    if name in {"BUCKET_NAME", "AWS_KEY", "AWS_SECRET", "AWS_ENDPOINT_URL_S3"} or name.startswith(
        "KEYED_STORAGE_"
    ):
        del os.environ[name]
os.environ["DJANGO_SETTINGS_MODULE"] = "docsite.settings"

import django  # noqa: E402

django.setup()

import keyed_storage  # noqa: E402

project = "keyed_storage"
author = "keyed_storage developers"
copyright = "keyed_storage developers"
release = keyed_storage.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosectionlabel",
    "sphinx.ext.doctest",
    "keyed_storage_docs",
]

# Section titles are link targets (:ref:`Safety`); two pages may share a subtitle, so a title
# that is not unique is named with its page (:ref:`howto/operations:policy`).
autosectionlabel_prefix_document = False
suppress_warnings = ["autosectionlabel.*"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

# Every doctest group starts from an empty database with the tables created, and a fresh
# temporary MEDIA_ROOT is made once per build by docsite.settings.
doctest_global_setup = """
from docsite.doctest_setup import fresh_database
fresh_database()
"""
doctest_test_doctest_blocks = ""

html_theme = "furo"
html_title = f"keyed_storage {release}"
exclude_patterns = ["_build", "docsite", "screenshots.py"]
templates_path: list[str] = []
nitpicky = False
