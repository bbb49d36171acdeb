"""Helpers for the tests of the demo site: links and pictures in a page, a storage that must not be read."""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from html import unescape
from html.parser import HTMLParser

import pytest
from PIL import Image

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


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.found.append(dict(attrs))


def img_tags(html: str, *, own_icons: bool = False) -> list[dict[str, str | None]]:
    """The attributes of every <img> in `html`, unescaped as a browser reads them (the admin's
    /static/ icons left out unless own_icons)."""
    parser = _Images()
    parser.feed(html)
    parser.close()
    return [tag for tag in parser.found if own_icons or not (tag.get("src") or "").startswith("/static/")]


def srcset_entries(srcset: str) -> list[tuple[str, int]]:
    """[(url, width), ...] from a srcset of width descriptors ("a.webp 160w, b.webp 320w")."""
    entries = []
    for candidate in srcset.split(", "):
        url, descriptor = candidate.rsplit(" ", 1)
        assert descriptor.endswith("w"), srcset
        entries.append((url, int(descriptor[:-1])))
    return entries


def pixel_size(data: bytes) -> tuple[int, int]:
    """The (width, height) of an encoded picture, decoded with Pillow."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size
