"""KeyedStorage.delete_prefix and `keyed_storage delete-prefix`: a whole key, nothing more, nothing less."""

from __future__ import annotations

import os

import pytest
import requests
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile

from keyed_storage import KeyedStorage, upload

from ..helpers import fetch
from ..ops_helpers import run

# The live server serving local links opens database connections.
pytestmark = pytest.mark.django_db(transaction=True)

KEPT = ("events/70/logo", "events/7-old/logo", "events/8/sessions/7/audio")
GONE = ("events/7/logo", "events/7/sessions/3/audio", "events/7/speakers/1/photo")


def stored(mode, settings, s3=None) -> list[str]:
    if mode == "s3":
        return s3.keys()
    root = settings.MEDIA_ROOT
    walked = ((directory, file) for directory, _, files in os.walk(root) for file in files)
    return sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for d, f in walked)


@pytest.fixture
def files(mode, request, settings):
    """One file under each key; returns {key: url}."""
    return {key: upload(ContentFile(key.encode(), name="f.bin"), key) for key in GONE + KEPT}


def test_deletes_the_whole_key_and_nothing_beside_it(mode, files, request, settings):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    before = stored(mode, settings, s3)

    deleted = KeyedStorage().delete_prefix("events/7")

    assert deleted == sorted(name for name in before if name.startswith("events/7/"))
    assert len(deleted) == len(GONE)
    assert stored(mode, settings, s3) == sorted(set(before) - set(deleted))
    for key in KEPT:
        assert fetch(files[key]) == key.encode()
    for key in GONE:
        assert requests.get(files[key], timeout=10).status_code in (403, 404)
    if mode == "local":
        assert not os.path.exists(os.path.join(settings.MEDIA_ROOT, "events", "7"))


def test_a_trailing_slash_means_the_same_key(mode, files, request, settings):
    assert len(KeyedStorage().delete_prefix("events/7/")) == len(GONE)
    assert KeyedStorage().delete_prefix("events/7") == []


def test_exact_object_named_like_the_prefix_goes_too(s3):
    storage = KeyedStorage()
    storage.save("events/7", ContentFile(b"exact"), overwrite=True)
    storage.save("events/7/logo/x.png", ContentFile(b"nested"), overwrite=True)
    storage.save("events/70", ContentFile(b"other"), overwrite=True)

    assert storage.delete_prefix("events/7") == ["events/7", "events/7/logo/x.png"]
    assert s3.keys() == ["events/70"]


@pytest.mark.parametrize("prefix", ["", "/", "//", "../events", "events//7", "events/7/../8", "/events/7"])
def test_refuses_what_is_not_a_whole_key(mode, files, prefix, request, settings):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    before = stored(mode, settings, s3)
    with pytest.raises(SuspiciousFileOperation, match="Refused"):
        KeyedStorage().delete_prefix(prefix)
    assert stored(mode, settings, s3) == before


def test_s3_deletes_in_batches_of_at_most_1000(s3):
    for number in range(1003):
        s3.client.put_object(Bucket=s3.bucket, Key=f"events/9/bulk/{number:04d}.txt", Body=b"x")
    s3.client.put_object(Bucket=s3.bucket, Key="events/90/keep.txt", Body=b"x")
    storage = KeyedStorage()
    batches = []
    requests_sent = []
    client = storage._impl.client
    record = lambda params, **kwargs: batches.append(len(params["Delete"]["Objects"]))  # noqa: E731
    count = lambda **kwargs: requests_sent.append(kwargs["event_name"].rsplit(".", 1)[-1])  # noqa: E731
    client.meta.events.register("provide-client-params.s3.DeleteObjects", record)
    client.meta.events.register("before-send.s3", count)
    try:
        deleted = storage.delete_prefix("events/9")
    finally:
        client.meta.events.unregister("provide-client-params.s3.DeleteObjects", record)
        client.meta.events.unregister("before-send.s3", count)

    assert len(deleted) == 1003
    assert batches == [1000, 3]
    # ceil(1003 / 1000) = 2 DeleteObjects, plus the listing: one probe for an object named
    # exactly 'events/9', then 'events/9/' at 1000 keys a page.
    assert requests_sent.count("DeleteObjects") == 2
    assert requests_sent.count("ListObjectsV2") == 1 + 2
    assert len(requests_sent) == 5
    assert s3.keys() == ["events/90/keep.txt"]


def test_command_lists_without_yes_and_deletes_with_it(mode, files, request, settings):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    before = stored(mode, settings, s3)

    out, _, code = run("delete-prefix", "events/7")
    assert code == 0
    assert "Nothing deleted: add --yes" in out
    assert out.count("would delete events/7/") == len(GONE)
    assert stored(mode, settings, s3) == before

    out, _, code = run("delete-prefix", "events/7", "--yes")
    assert code == 0
    assert out.count("deleted events/7/") == len(GONE)
    assert f"Deleted {len(GONE)} objects under 'events/7'" in out
    assert all(not name.startswith("events/7/") for name in stored(mode, settings, s3))
    assert len(stored(mode, settings, s3)) == len(KEPT)


def test_command_refuses_an_empty_prefix(mode, files, request, settings):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    before = stored(mode, settings, s3)
    _, err, code = run("delete-prefix", "", "--yes")
    assert code != 0
    assert "empty" in err
    assert stored(mode, settings, s3) == before
