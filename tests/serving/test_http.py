"""Local serving speaks HTTP as players and caches expect: ranges, validators, 304, HEAD, types."""

from __future__ import annotations

import gzip
import http.client
import io
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.http import http_date
from PIL import Image

from keyed_storage import upload

from ..helpers import wav_bytes

BODY = bytes(range(256)) * 1000  # 256,000 bytes: several read chunks, every byte value


def get(url: str, method: str = "GET", **headers: str) -> requests.Response:
    return requests.request(method, url, headers=headers, timeout=10)


@pytest.fixture
def url(local) -> str:
    return upload(SimpleUploadedFile("talk.wav", BODY), "events/1/sessions/2/audio")


@pytest.fixture
def exact_url(local) -> str:
    return upload(SimpleUploadedFile("terms.txt", b"version 1"), "site/terms.txt", exact=True)


def assert_common_headers(response: requests.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    assert "Content-Encoding" not in response.headers


# Whole files ---------------------------------------------------------------------------------


def test_a_whole_file_with_its_validators(url):
    response = get(url)
    assert response.status_code == 200
    assert response.content == BODY
    assert_common_headers(response)
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Last-Modified"].endswith(" GMT")
    assert "Content-Range" not in response.headers


def test_tokened_names_are_cached_for_good_exact_names_are_revalidated(url, exact_url):
    # A tokened name's bytes never change (a new upload gets a new name); an exact key's do.
    assert get(url).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert get(exact_url).headers["Cache-Control"] == "no-cache"


def _image(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "data", "content_type"),
    [
        ("logo.png", _image("PNG"), "image/png"),
        ("photo.jpg", _image("JPEG"), "image/jpeg"),
        ("image.webp", _image("WEBP"), "image/webp"),
        ("talk.wav", wav_bytes(100), "audio/wav"),
        ("talk.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64" + bytes(200), "audio/mpeg"),
        ("talk.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(100), "audio/mp4"),
        ("talk.ogg", b"OggS\x00\x02" + bytes(100), "audio/ogg"),
        ("slides.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        ("notes.txt", b"plain notes\n", "text/plain; charset=utf-8"),
        # mtime=0: the same bytes, so the same test id, in every pytest-xdist worker.
        ("archive.tar.gz", gzip.compress(b"x" * 100, mtime=0), "application/gzip"),
        ("no-extension", bytes(range(256)), "application/octet-stream"),
        # The bytes decide, not the name: a PNG called .txt is served as a PNG.
        ("renamed.txt", _image("PNG"), "image/png"),
    ],
)
def test_content_type_comes_from_the_bytes(local, filename, data, content_type):
    url = upload(SimpleUploadedFile(filename, data), "users/3/files")
    response = get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.content == data  # a .gz is not unpacked on the way
    assert "Content-Encoding" not in response.headers
    assert "Content-Disposition" not in response.headers


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("avatar.png", b"<!DOCTYPE html><html><script>alert(document.cookie)</script>"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        ("feed.xml", b'<?xml version="1.0"?><rss/>'),
        ("app.js", b"alert(1)"),
    ],
)
def test_active_content_is_an_attachment_on_every_response(local, filename, data):
    url = upload(SimpleUploadedFile(filename, data, "image/png"), "users/4/avatar")
    response = get(url)
    assert response.content == data
    assert response.headers["Content-Disposition"] == "attachment"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        requests.get(url, headers={"Range": "bytes=0-3"}, timeout=10).headers["Content-Disposition"]
        == "attachment"
    )
    assert requests.head(url, timeout=10).headers["Content-Disposition"] == "attachment"
    revalidated = requests.get(url, headers={"If-None-Match": response.headers["ETag"]}, timeout=10)
    assert revalidated.status_code == 304
    assert revalidated.headers["Content-Disposition"] == "attachment"


def test_head_sends_the_headers_of_get_and_no_body(url):
    full, head = get(url), get(url, "HEAD")
    assert head.status_code == 200
    assert head.content == b""
    same = ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control")
    for header in same:
        assert head.headers[header] == full.headers[header], header
    assert head.headers["X-Content-Type-Options"] == "nosniff"


def test_an_empty_file(local):
    url = upload(SimpleUploadedFile("empty.txt", b""), "users/4/empty")
    response = get(url)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    assert get(url, Range="bytes=0-").status_code == 416


# Ranges (RFC 9110 §14) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=70000-140000", 70000, 140000),  # crosses read chunks
        ("bytes=255990-", 255990, 255999),  # open-ended
        ("bytes=-10", 255990, 255999),  # suffix: the last 10 bytes
        ("bytes=-999999", 0, 255999),  # a suffix longer than the file is the whole file
        ("bytes=255000-999999", 255000, 255999),  # the end is clipped to the file
        ("bytes=7-7", 7, 7),
        ("BYTES = 1-2", 1, 2),
    ],
)
def test_one_range_is_answered_with_206(url, spec, first, last):
    response = get(url, Range=spec)
    assert response.status_code == 206, spec
    assert response.content == BODY[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert response.headers["Content-Length"] == str(last - first + 1)
    assert response.headers["Content-Type"] == "audio/wav"
    assert_common_headers(response)


@pytest.mark.parametrize("spec", ["bytes=256000-", "bytes=300000-300010", "bytes=-0"])
def test_an_unsatisfiable_range_is_416_with_the_length(url, spec):
    response = get(url, Range=spec)
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "spec",
    ["bytes=5-2", "items=0-1", "bytes=a-b", "bytes=", "bytes=-", "bytes=0-1,5-6", "garbage"],
)
def test_invalid_or_multiple_ranges_are_ignored(url, spec):
    # §14.2 lets a server ignore Range; the client gets the whole file, which it can always use.
    response = get(url, Range=spec)
    assert response.status_code == 200, spec
    assert response.content == BODY


def test_head_ignores_range(url):
    # §14.2: range handling is defined for GET only.
    response = get(url, "HEAD", Range="bytes=0-9")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(BODY))


def test_if_range_with_the_current_validator_gives_the_range_else_the_whole_file(url):
    full = get(url)
    etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
    assert get(url, Range="bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert get(url, Range="bytes=0-9", **{"If-Range": modified}).status_code == 206
    stale = get(url, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == BODY
    # A weak tag never satisfies If-Range (§13.1.5).
    assert get(url, Range="bytes=0-9", **{"If-Range": "W/" + etag}).status_code == 200


# Conditional requests (RFC 9110 §13) -------------------------------------------------------


def test_if_none_match_with_the_etag_is_304_without_a_body(url):
    full = get(url)
    for value in (full.headers["ETag"], "W/" + full.headers["ETag"], f'"other", {full.headers["ETag"]}', "*"):
        response = get(url, **{"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["ETag"] == full.headers["ETag"]
        assert response.headers["Cache-Control"] == full.headers["Cache-Control"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Type" not in response.headers
        # Only the length of the 200 it stands for may be sent (RFC 9110 §8.6), never a 0.
        assert response.headers.get("Content-Length", str(len(BODY))) == str(len(BODY))
    assert get(url, "HEAD", **{"If-None-Match": full.headers["ETag"]}).status_code == 304
    assert get(url, **{"If-None-Match": '"other"'}).status_code == 200


def test_if_modified_since(url):
    modified = get(url).headers["Last-Modified"]
    assert get(url, **{"If-Modified-Since": modified}).status_code == 304
    assert get(url, **{"If-Modified-Since": http_date(2_000_000_000)}).status_code == 304
    earlier = get(url, **{"If-Modified-Since": http_date(0)})
    assert earlier.status_code == 200
    assert earlier.content == BODY
    assert get(url, **{"If-Modified-Since": "not a date"}).status_code == 200


def test_if_none_match_takes_precedence_over_if_modified_since(url):
    modified = get(url).headers["Last-Modified"]
    response = get(url, **{"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert response.status_code == 200


def test_if_match_and_if_unmodified_since_preconditions(url):
    etag = get(url).headers["ETag"]
    assert get(url, **{"If-Match": etag}).status_code == 200
    assert get(url, **{"If-Match": '"other"'}).status_code == 412
    assert get(url, **{"If-Unmodified-Since": http_date(0)}).status_code == 412
    assert get(url, **{"If-Unmodified-Since": http_date(2_000_000_000)}).status_code == 200


def test_replacing_an_exact_key_changes_its_validators(local, exact_url):
    old = get(exact_url)
    upload(SimpleUploadedFile("terms.txt", b"version 2!"), "site/terms.txt", exact=True)
    new = get(exact_url, **{"If-None-Match": old.headers["ETag"]})
    assert new.status_code == 200
    assert new.content == b"version 2!"
    assert new.headers["ETag"] != old.headers["ETag"]


# What is not served -------------------------------------------------------------------------


def raw(base: str, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """Send `path` exactly as written (requests would normalise '..' and encodings)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_a_missing_file_is_404_with_nosniff(local):
    response = get(f"{local.url}/media/users/1/nothing-here")
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert get(f"{local.url}/media/users/1/nothing-here", "HEAD").status_code == 404


def test_other_methods_are_405_with_allow(url):
    response = requests.post(url, data=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/media/../secret.txt",
        "/media/%2e%2e/secret.txt",
        "/media/%2E%2E/secret.txt",
        "/media/.%2e/secret.txt",
        "/media/users/..%2f..%2fsecret.txt",
        "/media/users/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/media/users/..%5c..%5csecret.txt",
        "/media/./../secret.txt",
        "/media//secret.txt",
        "/media/users/1/../../../secret.txt",
        "/media/%252e%252e/secret.txt",
        "/media/users/%00/secret.txt",
    ],
)
def test_paths_outside_media_root_are_not_served(local, path, tmp_path):
    # MEDIA_ROOT is tmp_path/media: this file sits one level above it.
    (tmp_path / "secret.txt").write_text("outside media root")
    response = raw(local.url, path)
    assert response.status in (400, 404), path
    assert b"outside media root" not in response.body


def test_a_percent_sequence_in_a_key_is_a_literal_name(local, tmp_path):
    # The path is decoded once, by the server; '%2e%2e' in a key is a file name, not '..'.
    (tmp_path / "x").write_text("outside media root")
    url = upload(SimpleUploadedFile("x", b"literal %2e%2e"), "users/%2e%2e/x", exact=True)
    assert "/users/%252e%252e/x" in url
    response = get(url)
    assert response.status_code == 200
    assert response.content == b"literal %2e%2e"
    assert raw(local.url, "/media/users/%2e%2e/x").status == 404
