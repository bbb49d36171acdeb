"""Every save without overwrite gets a name no other save got, decided atomically, and a name is
trusted to be unique because keyed_storage issued it, never because of its shape."""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files import File
from django.core.files.base import ContentFile

from keyed_storage import KeyedStorage, backends, config, upload
from keyed_storage.exceptions import StorageError
from keyed_storage.keys import TOKEN_HEX_CHARS, object_name

from ..helpers import fetch

THREADS = 16


@pytest.fixture(autouse=True)
def patient(request, env):
    """Sixteen PUTs at once to a test server on two cores busy with the rest of the suite may
    wait longer than production's 3 s connect and 10 s read limits; these tests are about
    names, not timeouts (tests/backends/test_timeouts.py has those), so they wait longer."""
    if "mode" in request.fixturenames and request.getfixturevalue("mode") == "s3":
        env(KEYED_STORAGE_CONNECT_TIMEOUT="30", KEYED_STORAGE_READ_TIMEOUT="60")


def read(name: str) -> bytes:
    with KeyedStorage().open(name) as file:
        return file.read()


def save_concurrently(name: str, count: int = THREADS, **kwargs) -> list[tuple[bytes, str]]:
    """`count` saves of `name` released at the same instant; (content, returned name) each."""
    start = threading.Barrier(count)
    storage = KeyedStorage()

    def save(index: int) -> tuple[bytes, str]:
        data = f"writer {index} ".encode() * 1000
        start.wait()
        return data, storage.save(name, ContentFile(data), **kwargs)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(save, range(count)))


def test_concurrent_saves_of_one_plain_name_each_get_their_own_name(mode):
    results = save_concurrently("reports/summary.txt")
    names = [name for _, name in results]
    assert len(set(names)) == THREADS, "two saves returned the same name: one file replaced another"
    for data, name in results:
        assert read(name) == data, name


def test_concurrent_saves_win_the_race_even_when_exists_answers_too_early(mode, monkeypatch):
    # Every save is told the name is free, as all of them would be if they checked at the
    # same instant: only the atomic, conditional write can keep them apart.
    monkeypatch.setattr(KeyedStorage, "exists", lambda self, name: False)
    results = save_concurrently("reports/summary.txt")
    names = [name for _, name in results]
    assert "reports/summary.txt" in names
    assert len(set(names)) == THREADS
    for data, name in results:
        assert read(name) == data


def test_overwrite_stays_last_writer_wins(mode):
    results = save_concurrently("site/terms.txt", overwrite=True)
    assert {name for _, name in results} == {"site/terms.txt"}
    assert read("site/terms.txt") in {data for data, _ in results}


def test_a_name_shaped_like_a_token_is_not_trusted_to_be_unique(mode):
    # Another app's content-addressed name: <md5>/<file>. It looks tokened; it is not ours.
    digest = hashlib.md5(b"first").hexdigest()
    assert len(digest) == TOKEN_HEX_CHARS
    storage = KeyedStorage()
    first = storage.save(f"blobs/{digest}/f.txt", ContentFile(b"first"))
    second = storage.save(f"blobs/{digest}/f.txt", ContentFile(b"second"))
    assert first == f"blobs/{digest}/f.txt"
    assert second != first and second.startswith(f"blobs/{digest}/f_")
    assert read(first) == b"first" and read(second) == b"second"


def test_an_issued_name_is_trusted_once_and_then_checked_like_any_other(mode):
    storage = KeyedStorage()
    name = object_name("users/1/avatar", "a.png")
    assert storage.save(name, ContentFile(b"one")) == name
    again = storage.save(name, ContentFile(b"two"))
    assert again != name
    assert read(name) == b"one" and read(again) == b"two"


def test_an_issued_name_taken_meanwhile_gets_a_new_token(mode):
    storage = KeyedStorage()
    name = object_name("users/1/avatar", "a.png")
    storage.save(name, ContentFile(b"squatter"), overwrite=True)  # the (impossible) collision
    saved = storage.save(name, ContentFile(b"mine"))
    key, token, filename = saved.rsplit("/", 2)
    assert key == "users/1/avatar" and filename == "a.png" and token != name.rsplit("/", 2)[1]
    assert read(name) == b"squatter" and read(saved) == b"mine"


def test_a_stream_that_cannot_be_reread_fails_clearly_when_its_name_is_taken(mode, monkeypatch):
    storage = KeyedStorage()
    storage.save("x/taken.txt", ContentFile(b"first"))
    monkeypatch.setattr(KeyedStorage, "exists", lambda self, name: False)

    class Stream(io.RawIOBase):
        def __init__(self):
            self.data = io.BytesIO(b"second")

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(StorageError, match="cannot be read a second time"):
        storage.save("x/taken.txt", File(Stream(), name="taken.txt"))
    assert read("x/taken.txt") == b"first"


def test_s3_writes_are_conditional_and_a_lost_multipart_race_leaves_no_parts(s3, monkeypatch):
    from keyed_storage.backends.s3 import MULTIPART_THRESHOLD

    writes = []

    def note(request, event_name, **kwargs):
        operation = event_name.rsplit(".", 1)[-1]
        if operation in ("PutObject", "CompleteMultipartUpload"):
            condition = request.headers.get("If-None-Match")
            writes.append((operation, condition.decode() if isinstance(condition, bytes) else condition))

    backends.for_config(config.current()).client.meta.events.register("before-send.s3", note)
    storage = KeyedStorage()
    storage.save("big/video.bin", ContentFile(b"small first"))
    monkeypatch.setattr(KeyedStorage, "exists", lambda self, name: False)
    data = b"v" * (MULTIPART_THRESHOLD + 1024)
    name = storage.save("big/video.bin", ContentFile(data))
    assert name != "big/video.bin" and name.startswith("big/video_")
    assert s3.body("big/video.bin") == b"small first"
    assert s3.body(name) == data
    # Both completions (the losing one, then the alternative name's) and the first PUT
    # carried the condition.
    assert writes == [
        ("PutObject", "*"),
        ("CompleteMultipartUpload", "*"),
        ("CompleteMultipartUpload", "*"),
    ]
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []


def test_upload_and_model_saves_still_need_no_existence_check(s3, monkeypatch):
    def refuse(self, name):
        pytest.fail("an issued name was checked with exists()")

    monkeypatch.setattr(KeyedStorage, "exists", refuse)
    assert fetch(upload(ContentFile(b"x", name="a.png"), "users/1/avatar")) == b"x"
