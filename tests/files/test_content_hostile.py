"""Content-Type comes from the bytes; anything a browser would run is an attachment."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from keyed_storage import upload
from keyed_storage.files.sniffing import identify

from ..helpers import png_bytes, wav_bytes

HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>'


@pytest.mark.parametrize(
    ("data", "filename", "claimed", "content_type", "attachment"),
    [
        (png_bytes(), "logo.png", "image/png", "image/png", False),
        (png_bytes(), "logo.html", "text/html", "image/png", True),  # the extension still warns
        (HTML, "avatar.png", "image/png", "text/html; charset=utf-8", True),
        (b"\n  <script>alert(1)</script>", "a.jpg", "image/jpeg", "text/html; charset=utf-8", True),
        (b"<p>hi</p>", "notes.txt", "text/plain", "text/html; charset=utf-8", True),
        (SVG, "logo.png", "image/png", "image/svg+xml", True),
        (b'<?xml version="1.0"?><x/>', "data.bin", None, "application/xml", True),
        (b"alert(1)", "app.js", "text/plain", "text/plain; charset=utf-8", True),
        (b"a,b\n1,2\n", "table.csv", "text/html", "text/csv; charset=utf-8", True),  # claim warns
        (b"a,b\n1,2\n", "table.csv", "text/csv", "text/csv; charset=utf-8", False),
        (b"%PDF-1.7\n%...", "slides.pdf", "application/pdf", "application/pdf", False),
        (wav_bytes(), "talk.mp3", "audio/mpeg", "audio/wav", False),
        (b"\x00\x01\x02\x03", "blob", None, "application/octet-stream", False),
    ],
)
def test_identify_trusts_bytes_not_claims(data, filename, claimed, content_type, attachment):
    info = identify(data[:8192], filename, claimed)
    assert (info.content_type, info.attachment) == (content_type, attachment)


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "disposition"),
    [
        (png_bytes(), "avatar.png", "image/png", None),
        (HTML, "avatar.png", "text/html; charset=utf-8", "attachment"),
        (SVG, "logo.svg", "image/svg+xml", "attachment"),
        (wav_bytes(), "talk.wav", "audio/wav", None),
    ],
)
def test_s3_objects_carry_the_sniffed_type_and_disposition(s3, data, filename, content_type, disposition):
    # The client claims image/png for everything, as an attacker would.
    url = upload(SimpleUploadedFile(filename, data, "image/png"), "users/1/avatar")
    response = requests.get(url, timeout=10)
    assert response.content == data
    assert response.headers["Content-Type"] == content_type
    assert response.headers.get("Content-Disposition") == disposition


def test_a_non_seekable_stream_is_sniffed_and_stored_whole(mode):
    class Stream:
        name = "page.png"

        def __init__(self):
            self._buffer = io.BytesIO(HTML + b"x" * 20000)

        def read(self, size=-1):
            return self._buffer.read(size)

    url = upload(Stream(), "users/2/avatar")
    response = requests.get(url, timeout=10)
    assert response.content == HTML + b"x" * 20000
    assert response.headers["Content-Type"].startswith("text/html")
