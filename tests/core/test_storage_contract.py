"""Django's Storage contract, every entry point validated alike, and nothing left behind."""

from __future__ import annotations

import io
import os
import pathlib
import stat
import unicodedata

import pytest
import requests
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models

from events.models import Session
from keyed_storage import KeyedStorage, key_template, upload
from keyed_storage.keys import TOKEN_HEX_CHARS, object_name

from ..helpers import fetch

# Characters that are invisible or change how a key reads (bidi overrides and isolates,
# zero-width characters, the BOM, line and paragraph separators, other spaces).
INVISIBLE = [
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\u00a0",
]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_keys_with_invisible_or_direction_changing_characters_are_refused(char):
    with pytest.raises(SuspiciousFileOperation, match=f"U\\+{ord(char):04X}"):
        upload(io.BytesIO(b"x"), f"users/1/av{char}atar")
    with pytest.raises(SuspiciousFileOperation, match="invisible or direction-changing"):
        KeyedStorage().save(f"docs/{char}x.txt", ContentFile(b"x"))


def test_a_lone_surrogate_is_refused_with_a_reason_not_an_encoding_error():
    with pytest.raises(SuspiciousFileOperation, match="U\\+D800"):
        KeyedStorage().save("docs/\ud800.txt", ContentFile(b"x"))


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_filenames_lose_invisible_characters_instead(mode, char):
    url = upload(SimpleUploadedFile(f"evil{char}gpj.png", b"x"), "users/1/avatar")
    assert char not in url and url.endswith("/evilgpj.png")


HOSTILE_NAMES = [
    "../../etc/passwd",
    "../other-bucket/x",
    "/etc/passwd",
    "a/../../b",
    "a\\b",
    "a//b",
    "a\x00b",
]
ENTRY_POINTS = {
    "url": lambda s, n: s.url(n),
    "exists": lambda s, n: s.exists(n),
    "open": lambda s, n: s.open(n),
    "size": lambda s, n: s.size(n),
    "delete": lambda s, n: s.delete(n),
    "path": lambda s, n: s.path(n),
    "listdir": lambda s, n: s.listdir(n),
    "get_modified_time": lambda s, n: s.get_modified_time(n),
    "get_available_name": lambda s, n: s.get_available_name(n),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_entry_point_refuses_what_save_refuses(mode, entry, name):
    # Validation comes first, so even S3's path() (which has no local path to give) refuses.
    with pytest.raises(SuspiciousFileOperation, match="Refused key"):
        ENTRY_POINTS[entry](KeyedStorage(), name)


def test_an_s3_link_never_leaves_the_bucket(s3):
    other = "ks-other-bucket-for-this-test"
    s3.client.create_bucket(Bucket=other)
    s3.client.put_object(Bucket=other, Key="x", Body=b"someone else's")
    with pytest.raises(SuspiciousFileOperation):
        KeyedStorage().url("../ks-other-bucket-for-this-test/x")


def test_a_local_link_never_leaves_media_url(local):
    with pytest.raises(SuspiciousFileOperation):
        KeyedStorage().url("../../etc/passwd")


def test_nfc_and_nfd_spellings_find_the_same_object(mode):
    storage = KeyedStorage()
    nfc, nfd = unicodedata.normalize("NFC", "docs/café.txt"), unicodedata.normalize("NFD", "docs/café.txt")
    assert nfc != nfd
    name = storage.save(nfd, ContentFile(b"coffee"))
    assert name == nfc
    assert storage.exists(nfd) and storage.size(nfd) == 6
    assert storage.open(nfd).read() == b"coffee"
    assert storage.url(nfd) == storage.url(nfc)
    assert fetch(storage.url(nfd)) == b"coffee"
    storage.delete(nfd)
    assert not storage.exists(nfc)


# Django's contract where it differed --------------------------------------------------


def test_save_accepts_a_path_like_name(mode):
    storage = KeyedStorage()
    name = storage.save(pathlib.PurePosixPath("docs/path.txt"), ContentFile(b"from a path"))
    assert name == "docs/path.txt" and storage.open(pathlib.PurePosixPath(name)).read() == b"from a path"


def test_url_of_none_is_the_base_every_link_starts_with(mode):
    storage = KeyedStorage()
    base = storage.url(None)
    assert base.startswith("http") and base.endswith("/")
    assert storage.url("a/b.txt") == base + "a/b.txt"


@pytest.mark.parametrize(
    "kwargs", [{"location": "/tmp/x"}, {"base_url": "/m/"}, {"file_permissions_mode": 0o600}]
)
def test_constructor_arguments_are_refused_not_ignored(kwargs):
    with pytest.raises(TypeError, match=r"takes no arguments.*environment"):
        KeyedStorage(**kwargs)


def test_a_changed_file_upload_permissions_is_honoured(local, settings):
    storage = KeyedStorage()
    settings.FILE_UPLOAD_PERMISSIONS = 0o640
    first = storage.save("docs/a.txt", ContentFile(b"a"))
    settings.FILE_UPLOAD_PERMISSIONS = 0o604
    second = storage.save("docs/b.txt", ContentFile(b"b"))
    assert stat.S_IMODE(os.stat(storage.path(first)).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(storage.path(second)).st_mode) == 0o604


# max_length: the filename is shortened, never the key or the token ---------------------


def test_a_tokened_name_is_cut_to_max_length_keeping_key_token_and_extension(mode):
    name = object_name("events/7/sessions/3/audio", "a-very-long-recording-name-" * 5 + ".mp3")
    saved = KeyedStorage().save(name, ContentFile(b"x"), max_length=100)
    assert len(saved) <= 100
    key, token, filename = saved.rsplit("/", 2)
    assert key == "events/7/sessions/3/audio" and len(token) == TOKEN_HEX_CHARS
    assert filename.startswith("a-very-long") and filename.endswith(".mp3")


def test_a_key_and_token_longer_than_max_length_raise_with_the_fix(mode):
    name = object_name("events/7/sessions/3/" + "a" * 60, "talk.mp3")
    with pytest.raises(SuspiciousFileOperation, match=r"max_length=100.*max_length=255"):
        KeyedStorage().save(name, ContentFile(b"x"), max_length=100)


def test_an_exact_name_over_max_length_is_refused_never_cut(mode):
    with pytest.raises(SuspiciousFileOperation, match="never shortened"):
        KeyedStorage().save("site/" + "t" * 120 + ".pdf", ContentFile(b"x"), max_length=100, overwrite=True)


@pytest.mark.django_db(transaction=True)
def test_a_model_field_with_the_default_max_length_stores_a_name_that_fits(mode):
    field = models.FileField(
        storage=KeyedStorage(), upload_to=key_template("events/{event_id}/sessions/{id}/audio")
    )
    field.set_attributes_from_name("audio")
    assert field.max_length == 100
    session = Session(pk=12345, event_id=67890, title="Talk")
    file_name = field.generate_filename(session, "keynote-recording-of-the-opening-session-2026.mp3")
    saved = field.storage.save(file_name, ContentFile(b"x"), max_length=field.max_length)
    assert len(saved) <= 100 and saved.endswith(".mp3"), saved  # 141 characters before


# Nothing left behind ----------------------------------------------------------------------


def directories_under(root: str) -> list[str]:
    return sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root) if d != root)


def test_deleting_a_keys_last_file_removes_its_empty_directories(local, settings):
    url = upload(SimpleUploadedFile("a.png", b"x"), "events/7/logo")
    storage = KeyedStorage()
    (name,) = storage.earlier_objects("events/7/logo")
    nested = upload(SimpleUploadedFile("b.png", b"y"), "events/7/logo/small")
    storage.delete(name)
    assert requests.get(url, timeout=10).status_code == 404
    assert fetch(nested) == b"y"
    assert all(
        d.startswith("events/7/logo/small") or d in ("events", "events/7", "events/7/logo")
        for d in directories_under(settings.MEDIA_ROOT)
    )
    storage.delete(storage.earlier_objects("events/7/logo/small")[0])
    assert directories_under(settings.MEDIA_ROOT) == []
    assert os.path.isdir(settings.MEDIA_ROOT), "MEDIA_ROOT itself stays"


def test_delete_prefix_leaves_no_empty_parents(local, settings):
    upload(SimpleUploadedFile("a.png", b"x"), "events/7/logo")
    upload(SimpleUploadedFile("b.png", b"y"), "events/8/logo")
    KeyedStorage().delete_prefix("events/7")
    assert directories_under(settings.MEDIA_ROOT)[:2] == ["events", "events/8"]
    KeyedStorage().delete_prefix("events/8")
    assert directories_under(settings.MEDIA_ROOT) == []


def test_replacing_a_key_leaves_only_the_newest_token_directory(local, settings):
    for color in ("a", "b", "c"):
        upload(SimpleUploadedFile(f"{color}.png", b"x"), "users/1/avatar")
    tokens = os.listdir(os.path.join(settings.MEDIA_ROOT, "users/1/avatar"))
    assert len(tokens) == 1


# Serving: only files really inside MEDIA_ROOT ---------------------------------------------


def test_a_symlink_out_of_media_root_is_not_served(local, settings, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside MEDIA_ROOT")
    upload(SimpleUploadedFile("a.txt", b"inside"), "docs/a.txt", exact=True)
    os.symlink(secret, os.path.join(settings.MEDIA_ROOT, "docs/leak.txt"))
    os.symlink(tmp_path, os.path.join(settings.MEDIA_ROOT, "docs/dir"))
    base = KeyedStorage().url(None)
    assert requests.get(base + "docs/leak.txt", timeout=10).status_code == 404
    assert requests.get(base + "docs/dir/secret.txt", timeout=10).status_code == 404
    assert fetch(base + "docs/a.txt") == b"inside"


def test_a_symlink_within_media_root_is_served(local, settings):
    upload(SimpleUploadedFile("a.txt", b"inside"), "docs/a.txt", exact=True)
    os.symlink(
        os.path.join(settings.MEDIA_ROOT, "docs/a.txt"), os.path.join(settings.MEDIA_ROOT, "docs/b.txt")
    )
    assert fetch(KeyedStorage().url("docs/b.txt")) == b"inside"
