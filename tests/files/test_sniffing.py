"""Sniffing follows the WHATWG MIME Sniffing rules where text can pass for audio: a byte order
mark makes text, and an MP3 without an ID3 tag needs two frame headers, not two bytes."""

from __future__ import annotations

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from keyed_storage import KeyedStorage, upload
from keyed_storage.direct.tickets import finish_upload, start_upload
from keyed_storage.exceptions import FileTypeRefused
from keyed_storage.files.sniffing import identify
from keyed_storage.validators import ContentTypeValidator

from ..direct.test_tickets import post, stored_names, uploaded
from ..helpers import examples

HTML = "<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
BOMS = {"utf-8": b"\xef\xbb\xbf", "utf-16le": b"\xff\xfe", "utf-16be": b"\xfe\xff"}
AUDIO_KEY = "events/7/sessions/3/audio"

# An MPEG-1 Layer III frame header: sync, MPEG-1, Layer III, no CRC (FF FB); 128 kbit/s,
# 44.1 kHz, no padding (90); joint stereo (64). Such a frame is 144 * 128000 // 44100 bytes.
MP3_HEADER = b"\xff\xfb\x90\x64"
MP3_FRAME_LENGTH = 417
ID3_TAG = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # ID3v2.4, no flags, an empty tag


def mp3_frames(count: int = 4, header: bytes = MP3_HEADER, length: int = MP3_FRAME_LENGTH) -> bytes:
    """A real frame sequence: each header followed by a silent payload up to the frame's length."""
    return (header + bytes(length - len(header))) * count


def bom_text(text: str, charset: str) -> bytes:
    return BOMS[charset] + text.encode(charset)


# identify(): what the bytes are ---------------------------------------------------------------


@pytest.mark.parametrize("charset", BOMS)
def test_html_after_a_byte_order_mark_is_html_and_an_attachment(charset):
    info = identify(bom_text(HTML, charset), "talk.mp3", "audio/mpeg")
    assert info.content_type == f"text/html; charset={charset}"
    assert info.attachment and info.by_bytes


@pytest.mark.parametrize("charset", BOMS)
def test_text_after_a_byte_order_mark_is_plain_text_in_its_charset(charset):
    info = identify(bom_text("Grüße, talk notes\n", charset), "notes.mp3")
    assert (info.content_type, info.attachment) == (f"text/plain; charset={charset}", False)


@pytest.mark.parametrize("charset", BOMS)
def test_svg_after_a_byte_order_mark_is_svg(charset):
    svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    info = identify(bom_text(svg, charset), "logo.png", "image/png")
    assert (info.content_type, info.attachment) == ("image/svg+xml", True)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (mp3_frames(), "audio/mpeg"),
        (mp3_frames(2), "audio/mpeg"),  # the least the WHATWG signature needs: two frames
        (ID3_TAG + mp3_frames(), "audio/mpeg"),
        (ID3_TAG + b"\x00" * 100, "audio/mpeg"),  # a tag is enough, as WHATWG says
        # with padding (the bit in 0x92) a frame is one byte longer
        (mp3_frames(3, b"\xff\xfb\x92\x64", MP3_FRAME_LENGTH + 1), "audio/mpeg"),
        # MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 72 * 64000 // 22050 = 208 bytes
        (mp3_frames(3, b"\xff\xf3\x80\xc4", 208), "audio/mpeg"),
        # MPEG-1 Layer II, 192 kbit/s, 48 kHz: 144 * 192000 // 48000 = 576 bytes
        (mp3_frames(3, b"\xff\xfd\xa4\x04", 576), "audio/mpeg"),
        # MPEG-1 Layer I, 384 kbit/s, 32 kHz: (12 * 384000 // 32000) * 4 = 576 bytes
        (mp3_frames(3, b"\xff\xff\xc8\x04", 576), "audio/mpeg"),
        # AAC in ADTS frames of 16 bytes (frame length 16 in bits 30-42), 44.1 kHz
        ((b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)) * 3, "audio/aac"),
    ],
)
def test_real_mpeg_audio_is_audio(data, content_type):
    assert identify(data, "recording") == identify(data, "recording.bin")
    assert identify(data, "recording").content_type == content_type
    assert identify(data, "recording").by_bytes


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfb",  # two bytes of a header
        b"\xff\xfb<html><script>alert(1)</script></html>",
        MP3_HEADER + bytes(MP3_FRAME_LENGTH - 4),  # one frame: no second header where it ends
        MP3_HEADER + bytes(1000),  # zeros where the second header should be
        mp3_frames(3, b"\xff\xfb\xf0\x64"),  # bitrate index 15: forbidden
        mp3_frames(3, b"\xff\xfb\x00\x64"),  # bitrate index 0: "free", rejected by WHATWG
        mp3_frames(3, b"\xff\xfb\x9c\x64"),  # sample-rate index 3: reserved
        mp3_frames(3, b"\xff\xeb\x90\x64"),  # version 01: reserved
        mp3_frames(3, b"\xff\xf9\x90\x64"),  # layer 00 in an MPEG frame: reserved
        MP3_HEADER + bytes(MP3_FRAME_LENGTH - 4) + b"\xff\xfd\x90\x64" + bytes(600),  # layer changes
        b"ID3 is how this text starts\n",  # not an ID3v2 header: no version byte
        b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(40),  # one ADTS header, nothing where the next begins
        b"BMW and FORM are words, not bitmaps or AIFF\n",  # puremagic's short signatures
    ],
)
def test_bytes_that_only_look_like_an_mpeg_header_are_not_audio(data):
    info = identify(data, "talk.bin")
    assert not info.content_type.startswith(("audio/", "video/", "image/")), info
    with pytest.raises(FileTypeRefused):
        ContentTypeValidator("audio/*")(SimpleUploadedFile("talk.mp3", data, "audio/mpeg"))


# The fuzz: every accept pattern of the demo against markup, script and text -------------------

# The demo's patterns: models.py's IMAGE, AUDIO and SLIDES validators and the avatar view's accept.
DEMO_PATTERNS = ("image/*", "audio/*", "application/pdf")
BODIES = (
    HTML,
    "<html><head><title>x</title></head></html>",
    '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
    "<script>fetch('/admin/').then(r => r.text())</script>",
    "alert(document.cookie);\n",
    "#!/bin/sh\nrm -rf /\n",
    "function f() { return 1; }\n",
    "Just some notes about the talk.\n",
)
# Prefixes are text, not any bytes: a prefix of arbitrary bytes may be a real signature
# (a PNG header before HTML makes a PNG), which no sniffer can or should refuse.
PREFIXES = st.text(
    alphabet=st.one_of(st.sampled_from("\t\n\x0c\r <>/!-"), st.characters(blacklist_categories=("Cc", "Cs"))),
    max_size=40,
)


@hsettings(max_examples=examples(400), deadline=None, derandomize=True)
@given(
    body=st.sampled_from(BODIES),
    prefix=PREFIXES,
    suffix=st.text(max_size=200),
    # None: UTF-8 without a BOM (UTF-16 without one is no text a browser recognises).
    charset=st.sampled_from([None, *BOMS]),
)
def test_no_text_passes_for_an_image_audio_video_or_pdf(body, prefix, suffix, charset):
    text = prefix + body + suffix
    data = bom_text(text, charset) if charset else text.encode("utf-8")
    for filename in ("upload", "talk.mp3", "logo.png", "slides.pdf", "clip.mp4"):
        info = identify(data[:8192], filename, "audio/mpeg")
        # An SVG is image/svg+xml, an active type: served as an attachment, accepted by no wildcard.
        # Bytes that are not text and have no signature may take a media type from their name
        # for serving (by_bytes False), which no accept pattern trusts.
        if info.by_bytes and (info.content_type != "image/svg+xml" or not info.attachment):
            assert not info.content_type.startswith(("audio/", "image/", "video/", "application/pdf")), info
        for pattern in DEMO_PATTERNS:
            with pytest.raises(FileTypeRefused) as refused:
                ContentTypeValidator(pattern)(SimpleUploadedFile(filename, data, "audio/mpeg"))
            assert pattern in refused.value.messages[0]


# Through upload() and direct uploads, in both modes --------------------------------------------


@pytest.mark.parametrize("charset", ["utf-16le", "utf-16be", "utf-8"])
def test_utf16_html_is_refused_as_audio_naming_its_type(mode, charset):
    with pytest.raises(FileTypeRefused) as refused:
        upload(
            SimpleUploadedFile("talk.mp3", bom_text(HTML, charset), "audio/mpeg"), AUDIO_KEY, accept="audio/*"
        )
    assert refused.value.params["type"] == "text/html"
    assert "This file is text/html" in refused.value.messages[0] and "audio/*" in refused.value.messages[0]
    assert stored_names() == []


def test_utf16_html_stored_without_accept_is_served_as_an_attachment(mode):
    data = bom_text(HTML, "utf-16le")
    url = upload(SimpleUploadedFile("talk.mp3", data, "audio/mpeg"), AUDIO_KEY)
    served = requests.get(url, timeout=10)
    assert served.content == data
    assert served.headers["Content-Type"] == "text/html; charset=utf-16le"
    assert served.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("data", [mp3_frames(), ID3_TAG + mp3_frames()], ids=["frames", "id3"])
def test_a_real_mp3_is_accepted_and_served_as_audio(mode, data):
    url = upload(SimpleUploadedFile("talk.mp3", data, "audio/mpeg"), AUDIO_KEY, accept="audio/*")
    served = requests.get(url, timeout=10)
    assert served.content == data
    assert served.headers["Content-Type"] == "audio/mpeg"
    assert "Content-Disposition" not in served.headers


def test_two_bytes_of_frame_sync_are_refused_as_audio(mode):
    data = b"\xff\xfb" + b"<p>not a recording</p>" * 40
    with pytest.raises(FileTypeRefused):
        upload(SimpleUploadedFile("talk.mp3", data, "audio/mpeg"), AUDIO_KEY, accept="audio/*")
    assert stored_names() == []


def test_a_direct_upload_of_utf16_html_is_refused_as_audio_and_removed(mode):
    data = bom_text(HTML, "utf-16le")
    ticket = start_upload(
        AUDIO_KEY, filename="talk.mp3", size=len(data), content_type="audio/mpeg", accept=["audio/*"]
    )
    assert post(ticket, data, "talk.mp3").status_code == 204
    with pytest.raises(FileTypeRefused) as refused:
        finish_upload(ticket.reference, key=AUDIO_KEY)
    assert refused.value.params["type"] == "text/html"
    assert uploaded(ticket) not in stored_names() and stored_names() == []


def test_a_direct_upload_of_real_mp3_frames_is_finished_as_audio(mode):
    data = mp3_frames()
    ticket = start_upload(
        AUDIO_KEY, filename="talk.mp3", size=len(data), content_type="audio/mpeg", accept=["audio/*"]
    )
    assert post(ticket, data, "talk.mp3").status_code == 204
    name = finish_upload(ticket.reference, key=AUDIO_KEY)
    served = requests.get(KeyedStorage().url(name), timeout=10)
    assert served.content == data
    assert served.headers["Content-Type"] == "audio/mpeg"


def test_image_wildcards_take_no_svg_but_its_own_type_does():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'
    with pytest.raises(FileTypeRefused) as refused:
        ContentTypeValidator("image/*")(SimpleUploadedFile("logo.svg", svg, "image/svg+xml"))
    assert refused.value.params["type"] == "image/svg+xml"
    ContentTypeValidator("image/svg+xml")(SimpleUploadedFile("logo.svg", svg, "image/svg+xml"))
    ContentTypeValidator("*/*")(SimpleUploadedFile("logo.svg", svg, "image/svg+xml"))
