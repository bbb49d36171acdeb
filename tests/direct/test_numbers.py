"""Numbers a client sends are ASCII digits, bounded: anything else is a 400, never a 500 nor another number.

str.isdigit() accepts '²' and Arabic-Indic digits; int() reads ' 5', '+5', '5_0' and the
Arabic-Indic '12'. Every number keyed_storage reads from a request (Content-Length, a
ticket's size, part numbers) and from the environment goes through numbers.whole_number.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from keyed_storage import config
from keyed_storage.direct.multipart import part_urls, uploaded_parts
from keyed_storage.direct.tickets import start_upload
from keyed_storage.numbers import whole_number

MIB = 1024 * 1024
NOT_NUMBERS = ["²", "\u0661\u0662", "+5", " 5", "5 ", "5_0", "-5", "5.0", "0x5", "", "9" * 4000, "9" * 19]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_only_ascii_digits_are_a_number(text):
    assert whole_number(text) is None


def test_a_number_is_read_and_bounded():
    assert whole_number("0") == 0
    assert whole_number("0042") == 42
    assert whole_number("9" * 18) == 10**18 - 1
    assert whole_number("11", maximum=10) is None
    assert whole_number("10", maximum=10) == 10
    assert whole_number(5) is None  # not text


def header_bytes(text: str) -> bytes:
    """`text` as a header's bytes: Latin-1 where it can be (so the server reads '²' back, as
    WSGI decodes headers), else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def raw_put(url: str, content_length: str, body: bytes = b"") -> int:
    """A PUT whose Content-Length header is exactly `content_length`."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        connection.putheader("Content-Length", header_bytes(content_length))
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("length", NOT_NUMBERS)
def test_the_local_part_endpoint_answers_400_to_a_content_length_that_is_no_number(local, env, length):
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(5 * MIB), KEYED_STORAGE_DIRECT_PART_SIZE=str(5 * MIB))
    ticket = start_upload(
        "events/7/sessions/3/video", filename="talk.mp4", size=6 * MIB, content_type="video/mp4"
    )
    url = part_urls(ticket.reference, [2])[2]  # a part of 1 MiB
    assert raw_put(url, length) == 400
    assert uploaded_parts(ticket.reference) == []


@pytest.mark.parametrize("length", ["²", "\u0661\u0662", "+5", "-5", "9" * 4000])
def test_the_local_post_endpoint_answers_400_to_a_content_length_that_is_no_number(local, length):
    ticket = start_upload("events/7/sessions/3/audio", filename="talk.wav", size=5, content_type="audio/wav")
    parts = urlsplit(ticket.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", header_bytes(length))
        connection.endheaders()
        assert connection.getresponse().status == 400
    finally:
        connection.close()


@pytest.fixture
def token(editor_client, mode):
    from events.models import Event, Session

    from .test_forms import change_url, token_on_page

    session = Session.objects.create(event=Event.objects.create(name="Numbers Con"), title="Keynote")
    found = token_on_page(editor_client, change_url(session))
    assert found
    return found


@pytest.mark.parametrize("size", ["\u0661\u0662", "+5", " 5", "5_0", "-5", "²", "9" * 4000])
def test_the_ticket_view_refuses_a_size_that_is_no_number(editor_client, token, size):
    answer = editor_client.post(
        "/keyed-storage/ticket/",
        {"token": token, "filename": "a.wav", "size": size, "content_type": "audio/wav"},
    )
    assert answer.status_code == 400, answer.content
    assert "size" in answer.json()["error"]


@pytest.mark.parametrize("numbers", ["\u0661", "²", "+1", "1_0", "1,-1", "1,"])
def test_the_part_urls_view_refuses_part_numbers_that_are_no_numbers(editor_client, token, env, numbers):
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(5 * MIB), KEYED_STORAGE_DIRECT_PART_SIZE=str(5 * MIB))
    ticket = editor_client.post(
        "/keyed-storage/ticket/",
        {"token": token, "filename": "a.wav", "size": str(6 * MIB), "content_type": "audio/wav"},
    ).json()
    answer = editor_client.post(
        ticket["part_urls"], {"token": token, "reference": ticket["reference"], "numbers": numbers}
    )
    assert answer.status_code == 400, answer.content


@pytest.mark.parametrize("value", ["²", "\u0661\u0662", "+60", "6_0"])
def test_an_environment_number_in_other_digits_names_the_variable(env, value):
    env(BUCKET_NAME="b-1", KEYED_STORAGE_PRIVATE="1", KEYED_STORAGE_URL_EXPIRES=value)
    with pytest.raises(ImproperlyConfigured, match="KEYED_STORAGE_URL_EXPIRES"):
        config.current()
