"""Helpers for the tests of the demo site: links in a page, and a storage that must not be read."""

from __future__ import annotations

import re
from contextlib import contextmanager
from html import unescape

import pytest

from keyed_storage import KeyedStorage


def attribute_values(html: str, tag: str, attribute: str) -> list[str]:
    """Every `attribute` of every <tag> in `html`, unescaped as a browser would."""
    pattern = rf"<{tag}\b[^>]*?\s{attribute}=\"([^\"]*)\""
    return [unescape(value) for value in re.findall(pattern, html)]


@contextmanager
def storage_untouched():
    """Fail if anything opens, sizes or looks for a stored file while the block runs."""

    def refuse(*args, **kwargs):
        pytest.fail("rendering read from storage")

    with pytest.MonkeyPatch.context() as patch:
        for method in ("_open", "exists", "size", "listdir", "get_modified_time"):
            patch.setattr(KeyedStorage, method, refuse)
        yield


def file_links(html: str, tag: str, attribute: str = "src") -> list[str]:
    """Like attribute_values, without the admin's own /static/ icons."""
    return [value for value in attribute_values(html, tag, attribute) if not value.startswith("/static/")]
