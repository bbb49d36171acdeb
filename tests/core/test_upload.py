"""upload(file, key): every kind of file in, an absolute link out, the key's old objects swept."""

from __future__ import annotations

import io
import os
import re
from urllib.parse import urlsplit

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.db import transaction

from keyed_storage import KeyedStorage, upload
from keyed_storage.exceptions import NoOrigin
from keyed_storage.keys import TOKEN_HEX_CHARS, object_name

from ..helpers import fetch

pytestmark = pytest.mark.django_db(transaction=True)

OBJECT_NAME = re.compile(rf"^users/42/avatar/[0-9a-f]{{{TOKEN_HEX_CHARS}}}/me\.png$")


def stored_names(mode, s3=None, settings=None) -> list[str]:
    if mode == "s3":
        return s3.keys()
    root = settings.MEDIA_ROOT
    return sorted(
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
        for d, _, files in os.walk(root)
        for f in files
    )


@pytest.fixture
def names(mode, request, settings):
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    return lambda: stored_names(mode, s3, settings)


def name_of(url: str) -> str:
    """The object name a link points at: its path after MEDIA_URL or the bucket."""
    path = urlsplit(url).path
    from urllib.parse import unquote

    return unquote(re.sub(r"^/(media|ks-[0-9a-f]+)/", "", path))


class WerkzeugStyleFile:
    """What Flask or Starlette hands over: .filename, .read(), no .name."""

    def __init__(self, data: bytes, filename: str):
        self._stream = io.BytesIO(data)
        self.filename = filename

    def read(self, size=-1):
        return self._stream.read(size)

    def seek(self, *args):
        return self._stream.seek(*args)

    def tell(self):
        return self._stream.tell()


def make_files(tmp_path):
    data = os.urandom(3000)
    disk = tmp_path / "on-disk.bin"
    disk.write_bytes(data)
    temporary = TemporaryUploadedFile("me.png", "image/png", len(data), None)
    temporary.write(data)
    temporary.seek(0)
    buffer = io.BytesIO(data)
    buffer.name = "me.png"
    return data, {
        "SimpleUploadedFile": lambda: SimpleUploadedFile("me.png", data, "image/png"),
        "TemporaryUploadedFile": lambda: temporary,
        "django File": lambda: File(open(disk, "rb"), name="me.png"),
        "open binary file": lambda: open(disk, "rb"),
        "BytesIO with .name": lambda: buffer,
        "object with .filename": lambda: WerkzeugStyleFile(data, "me.png"),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "SimpleUploadedFile",
        "TemporaryUploadedFile",
        "django File",
        "open binary file",
        "BytesIO with .name",
        "object with .filename",
    ],
)
def test_upload_accepts_every_kind_of_file_and_returns_a_working_absolute_url(mode, kind, tmp_path):
    data, files = make_files(tmp_path)
    file = files[kind]()
    url = upload(file, "users/42/avatar")
    assert urlsplit(url).scheme == "http" and urlsplit(url).netloc.startswith("127.0.0.1:")
    assert fetch(url) == data
    if kind == "open binary file":
        assert name_of(url).endswith("/on-disk.bin")
    else:
        assert OBJECT_NAME.match(name_of(url)), url
    if hasattr(file, "close"):
        file.close()


def test_every_upload_gets_a_new_unguessable_token(mode):
    urls = [upload(SimpleUploadedFile("me.png", b"x"), "users/42/avatar") for _ in range(3)]
    tokens = [name_of(url).split("/")[-2] for url in urls]
    assert len(set(tokens)) == 3
    assert all(len(token) * 4 >= 64 + 56 for token in tokens)  # 72 random bits + the time


def test_replacing_a_key_deletes_its_earlier_objects_only(mode, names):
    nested_logo = upload(SimpleUploadedFile("logo.png", b"nested logo"), "events/7/logo")
    nested_exact = upload(SimpleUploadedFile("x", b"exact nested"), "events/7/logo/thumb", exact=True)
    sibling = upload(SimpleUploadedFile("brochure.pdf", b"sibling"), "events/70")
    first = upload(SimpleUploadedFile("one.pdf", b"first"), "events/7")
    second = upload(SimpleUploadedFile("two.pdf", b"second"), "events/7")

    assert fetch(second) == b"second"
    assert name_of(first) not in names(), "the key's earlier object is gone"
    # Longer keys under events/7 and the neighbouring key events/70 are untouched.
    assert fetch(nested_logo) == b"nested logo"
    assert fetch(nested_exact) == b"exact nested"
    assert fetch(sibling) == b"sibling"
    assert sorted(names()) == sorted(
        [name_of(nested_logo), "events/7/logo/thumb", name_of(sibling), name_of(second)]
    )


def test_old_objects_are_kept_until_the_transaction_commits(mode, names):
    first = upload(SimpleUploadedFile("one.txt", b"first"), "users/5/cv")
    with transaction.atomic():
        second = upload(SimpleUploadedFile("two.txt", b"second"), "users/5/cv")
        assert fetch(first) == b"first", "deleted before the commit"
    assert name_of(first) not in names()
    assert fetch(second) == b"second"


def test_a_rolled_back_transaction_keeps_the_old_object(mode, names):
    first = upload(SimpleUploadedFile("one.txt", b"first"), "users/6/cv")
    with pytest.raises(RuntimeError), transaction.atomic():
        upload(SimpleUploadedFile("two.txt", b"second"), "users/6/cv")
        raise RuntimeError("the view failed")
    assert fetch(first) == b"first"


def test_a_failing_clean_up_after_commit_never_fails_the_upload(mode, names, monkeypatch, caplog):
    """Found by the lifecycle state machine: a clean-up that failed after the commit raised
    AttributeError out of the committed block (Django's robust on_commit logs the callback's
    __qualname__, which a functools.partial lacks), and the callbacks after it never ran."""
    first = upload(SimpleUploadedFile("one.txt", b"first"), "users/8/cv")
    after: list[str] = []

    def refuse(self, names):
        raise OSError("the storage refused the delete")

    monkeypatch.setattr(KeyedStorage, "delete_many", refuse)
    with transaction.atomic():
        second = upload(SimpleUploadedFile("two.txt", b"second"), "users/8/cv")
        transaction.on_commit(lambda: after.append("ran"))
    assert after == ["ran"]
    assert fetch(second) == b"second"
    assert fetch(first) == b"first"  # kept, for `keyed_storage orphans` to find
    assert "could not delete the earlier objects" in caplog.text


def test_exact_stores_at_the_key_itself_and_overwrites(mode, names):
    first = upload(SimpleUploadedFile("a.txt", b"version 1"), "site/terms.txt", exact=True)
    second = upload(SimpleUploadedFile("b.txt", b"version 2"), "site/terms.txt", exact=True)
    assert first == second
    assert urlsplit(first).path.endswith("/site/terms.txt")
    assert fetch(second) == b"version 2"
    assert names() == ["site/terms.txt"]


def test_filenames_are_sanitised_and_keep_their_extension(mode):
    url = upload(
        SimpleUploadedFile("C:\\fakepath\\../My Talk (final).mp3", b"a"), "events/1/sessions/2/audio"
    )
    assert name_of(url).endswith("/My_Talk_final.mp3")


def test_a_file_without_a_name_gets_a_safe_default(mode):
    url = upload(io.BytesIO(b"anonymous"), "users/9/blob")
    assert name_of(url).endswith("/file")
    assert fetch(url) == b"anonymous"


def test_zero_byte_files_are_stored_and_served(mode):
    url = upload(SimpleUploadedFile("empty.txt", b""), "users/9/empty")
    assert fetch(url) == b""


@pytest.mark.parametrize("bad", [None, "a string path", b"bytes", 42, object()])
def test_things_that_are_not_files_get_a_type_error_naming_what_is_accepted(bad):
    with pytest.raises(TypeError, match="UploadedFile"):
        upload(bad, "users/1/avatar")


def test_a_text_mode_file_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("text")
    with open(path) as text, pytest.raises(TypeError, match="'rb'"):
        upload(text, "users/1/avatar")


def test_upload_uses_a_shared_storage_whose_backend_follows_the_environment(s3):
    url = upload(SimpleUploadedFile("a.txt", b"to s3"), "users/1/doc")
    assert url.startswith(s3.endpoint + "/" + s3.bucket + "/")
    assert KeyedStorage().backend == "s3"


def test_text_content_files_are_stored_as_utf8(mode):
    from django.core.files.base import ContentFile

    storage = KeyedStorage()
    name = storage.save("notes/1/text/hello.txt", ContentFile("héllo wörld"))
    with storage.open(name) as stored:
        assert stored.read() == "héllo wörld".encode()
    assert fetch(storage.url(name)) == "héllo wörld".encode()


def test_a_stream_with_a_refusing_seek_is_read_once_from_the_start(mode, tmp_path):
    # A pipe: it has seek() and tell(), but seekable() is False and seek() raises.
    read_end, write_end = os.pipe()
    data = os.urandom(100_000)
    with open(write_end, "wb") as writer:
        import threading

        feeder = threading.Thread(target=lambda: (writer.write(data), writer.close()))
        feeder.start()
        with open(read_end, "rb") as reader:
            url = upload(reader, "users/7/stream", exact=True)
        feeder.join()
    assert fetch(url) == data


def test_a_large_temporary_upload_is_moved_into_place_not_copied(local, settings):
    data = os.urandom(3 * 1024 * 1024)
    temporary = TemporaryUploadedFile("big.bin", "application/octet-stream", len(data), None)
    temporary.write(data)
    temporary.seek(0)
    source = temporary.temporary_file_path()
    inode = os.stat(source).st_ino
    url = upload(temporary, "users/8/big")
    stored = os.path.join(settings.MEDIA_ROOT, name_of(url))
    assert os.stat(stored).st_ino == inode, "the bytes were copied, not renamed into place"
    assert not os.path.exists(source)
    temporary.seek(0)
    assert temporary.read() == data, "the upload object still reads its bytes"
    temporary.close()
    assert fetch(url) == data


def test_a_temporary_upload_that_cannot_be_moved_is_copied(local, settings, monkeypatch):
    data = os.urandom(100_000)
    temporary = TemporaryUploadedFile("big.bin", "application/octet-stream", len(data), None)
    temporary.write(data)
    temporary.seek(0)
    # As if the temporary directory were on another file system.
    monkeypatch.setattr(temporary, "temporary_file_path", lambda: "/nonexistent/upload.tmp")
    url = upload(temporary, "users/8/big")
    assert fetch(url) == data


def test_without_an_origin_upload_fails_before_storing_or_deleting_anything(settings):
    # Local mode, no KEYED_STORAGE_BASE_URL, outside any request: no link can be made.
    storage = KeyedStorage()
    earlier = storage.save(object_name("users/1/avatar", "old.png"), ContentFile(b"old"))
    with pytest.raises(NoOrigin, match="KEYED_STORAGE_BASE_URL"):
        upload(ContentFile(b"new", name="new.png"), "users/1/avatar")
    assert storage.earlier_objects("users/1/avatar") == [earlier]
    with pytest.raises(NoOrigin):
        upload(ContentFile(b"new", name="terms.txt"), "site/terms.txt", exact=True)
    assert not storage.exists("site/terms.txt")
