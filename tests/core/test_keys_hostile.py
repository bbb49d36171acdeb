"""Hostile keys: refused everywhere with a reason; accepted keys stay inside their place."""

from __future__ import annotations

import io
import os
import unicodedata
import uuid
from urllib.parse import unquote, urlsplit

import pytest
import requests
from django.core.exceptions import SuspiciousFileOperation
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from keyed_storage import KeyedStorage, key_template, upload
from keyed_storage.keys import validate_key

from ..helpers import examples

HOSTILE = ["../etc/passwd", "a/../../b", "/abs/key", "a\\b", "a//b", "a/", "", "a/\x00b", "a/\x1bb", "./a"]


@pytest.mark.parametrize("key", HOSTILE)
def test_upload_refuses_hostile_keys_and_writes_nothing(key, settings):
    with pytest.raises(SuspiciousFileOperation, match="Refused key"):
        upload(io.BytesIO(b"x"), key)
    assert not os.path.exists(settings.MEDIA_ROOT) or not any(os.scandir(settings.MEDIA_ROOT))


@pytest.mark.parametrize("key", HOSTILE)
def test_storage_save_refuses_hostile_names(key):
    with pytest.raises(SuspiciousFileOperation):
        KeyedStorage().save(key, io.BytesIO(b"x"))


def test_key_templates_refuse_values_that_would_escape():
    class Instance:
        slug = ".."

    with pytest.raises(SuspiciousFileOperation, match=r"'\.\.' segment"):
        key_template("events/{slug}/logo")(Instance(), "x.png")


# Segments drawn from everything printable, including '%', '+', '#', '?', quotes and
# non-ASCII, so literal escapes such as '%2e%2e' are exercised.
segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
)
keys = st.lists(segment, min_size=1, max_size=4).map("/".join)


def accepted(key: str) -> str | None:
    try:
        return validate_key(key)
    except SuspiciousFileOperation:
        return None


@hsettings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=keys)
def test_no_accepted_key_lands_outside_media_root(key, settings, tmp_path_factory):
    key = accepted(key)
    if key is None:
        return
    # Each example under a fresh first segment, so one example's file is never another's directory.
    key = f"{uuid.uuid4().hex}/{key}"
    root = os.path.realpath(settings.MEDIA_ROOT)
    storage = KeyedStorage()
    name = storage.save(key, io.BytesIO(b"x"), overwrite=True)
    path = os.path.realpath(storage.path(name))
    assert path.startswith(root + os.sep), (key, path)
    assert name == unicodedata.normalize("NFC", key)
    with open(path, "rb") as stored:
        assert stored.read() == b"x"


@hsettings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=keys)
def test_the_s3_object_name_and_its_url_point_at_the_same_object(s3, key):
    key = accepted(key)
    if key is None:
        return
    data = key.encode("utf-8")
    url = upload(io.BytesIO(data), key, exact=True)
    assert s3.body(key) == data
    # The link's path, decoded once, is exactly the bucket and the object name.
    assert unquote(urlsplit(url).path) == f"/{s3.bucket}/{key}"
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == data


@hsettings(
    max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=keys)
def test_local_links_serve_the_file_stored_under_the_key(local, key, settings):
    key = accepted(key)
    if key is None:
        return
    data = key.encode("utf-8")
    url = upload(io.BytesIO(data), f"{uuid.uuid4().hex}/{key}", exact=True)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == data, url
