"""No worker waits on a silent server: against an S3 endpoint that accepts and never answers,
answers too slowly or cuts its answer short, every operation ends in a StorageError naming the
bucket, the endpoint and the timeout, after KEYED_STORAGE_MAX_ATTEMPTS tries and no more.

The S3 server is reached through tests/faulty_proxy.py, which holds the connections; the
number of connections it faulted is the number of attempts (no test measures time)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from keyed_storage import KeyedStorage, backends, config, upload
from keyed_storage.direct.tickets import finish_upload, start_upload
from keyed_storage.exceptions import StorageError

from ..faulty_proxy import FaultyProxy
from ..helpers import wav_bytes
from ..ops_helpers import run

# The variables -------------------------------------------------------------------------------


def test_the_defaults_end_a_request_inside_a_30_second_proxy(s3):
    cfg = config.current()
    assert (cfg.connect_timeout, cfg.read_timeout, cfg.transfer_timeout, cfg.max_attempts) == (3, 10, 120, 2)
    # The docs' arithmetic (reference/configuration.rst, When S3 misbehaves): every try may use
    # both timeouts, plus under 1 s of backoff.
    assert cfg.max_attempts * (cfg.connect_timeout + cfg.read_timeout) + 1 < 30


def test_settings_give_the_same_variables(s3, settings):
    settings.KEYED_STORAGE = {"KEYED_STORAGE_READ_TIMEOUT": "2.5", "KEYED_STORAGE_MAX_ATTEMPTS": "1"}
    cfg = config.current()
    assert (cfg.read_timeout, cfg.max_attempts) == (2.5, 1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KEYED_STORAGE_CONNECT_TIMEOUT", "0"),
        ("KEYED_STORAGE_READ_TIMEOUT", "-1"),
        ("KEYED_STORAGE_READ_TIMEOUT", "ten"),
        ("KEYED_STORAGE_READ_TIMEOUT", "nan"),
        ("KEYED_STORAGE_TRANSFER_TIMEOUT", "inf"),
        ("KEYED_STORAGE_TRANSFER_TIMEOUT", "3601"),
        ("KEYED_STORAGE_MAX_ATTEMPTS", "0"),
        ("KEYED_STORAGE_MAX_ATTEMPTS", "11"),
        ("KEYED_STORAGE_MAX_ATTEMPTS", "2.5"),
    ],
)
def test_a_value_that_does_not_parse_is_e005_naming_the_variable(s3, env, variable, value):
    env(**{variable: value})
    cfg, problems = config.inspect()
    assert cfg is None
    assert [(p.id, p.variable) for p in problems] == [("keyed_storage.E005", variable)]
    assert f"{variable}={value!r}" in problems[0].message


def assert_timed_out(error: StorageError, proxy: FaultyProxy, s3, variable: str, value: str) -> None:
    message = str(error)
    assert f"S3 bucket {s3.bucket!r} at {proxy.endpoint}" in message
    assert f"no answer within {variable}={value} s" in message
    assert "tried 2 times" in message
    assert error.location == s3.bucket


def test_upload_to_a_silent_server_gives_up_after_the_attempt_budget(through, s3):
    proxy = through("silent")
    with pytest.raises(StorageError) as raised:
        upload(SimpleUploadedFile("a.txt", b"hello"), "users/1/notes", exact=True)
    assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_READ_TIMEOUT", "1")
    assert "'users/1/notes'" in str(raised.value)
    assert proxy.faults == 2
    assert s3.keys() == []


def test_exists_on_a_silent_server_is_an_error_not_false(through, s3):
    s3.client.put_object(Bucket=s3.bucket, Key="users/1/notes", Body=b"hello")
    proxy = through("silent")
    with pytest.raises(StorageError) as raised:
        KeyedStorage().exists("users/1/notes")
    assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_READ_TIMEOUT", "1")
    assert proxy.faults == 2


def test_reading_from_a_server_silent_at_the_get_fails_every_time(through, s3):
    s3.client.put_object(Bucket=s3.bucket, Key="users/1/notes", Body=b"hello")
    proxy = through("silent", trigger=b"GET ")
    with KeyedStorage().open("users/1/notes") as opened:  # its HEAD is answered
        with pytest.raises(StorageError) as raised:
            opened.read()
        assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_READ_TIMEOUT", "1")
        assert proxy.faults == 2
        with pytest.raises(StorageError):  # nothing half-read is kept as the file
            opened.read()
    assert proxy.faults == 4


def test_an_answer_cut_short_is_an_error_never_a_shorter_file(through, s3):
    data = os.urandom(200 * 1024)
    s3.client.put_object(Bucket=s3.bucket, Key="events/7/slides", Body=data)
    proxy = through("cut", trigger=b"GET ", cut_after=100 * 1024)
    with KeyedStorage().open("events/7/slides") as opened:
        with pytest.raises(StorageError) as raised:
            opened.read()
        assert f"{s3.bucket!r}" in str(raised.value) and "'events/7/slides'" in str(raised.value)
        with pytest.raises(StorageError):
            opened.read()
    proxy.mode = "pass"  # the same storage reads it whole once the server behaves
    with KeyedStorage().open("events/7/slides") as opened:
        assert opened.read() == data


def test_a_slow_answer_inside_the_read_timeout_is_waited_for(through, s3):
    # Each chunk of each answer is held under the read timeout: slow, never silent that long.
    through("slow", delay=0.3)
    name = KeyedStorage().save("users/1/notes", ContentFile(b"hello"))
    assert s3.body(name) == b"hello"


def test_a_server_answering_slower_than_the_read_timeout_fails(through, s3):
    proxy = through("slow", delay=3)
    with pytest.raises(StorageError) as raised:
        KeyedStorage().save("users/1/notes", ContentFile(b"hello"))
    assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_READ_TIMEOUT", "1")
    assert proxy.faults == 2


@pytest.fixture
def posted(s3) -> Iterator[str]:
    """A direct upload POSTed to the bucket, straight to the S3 server; its reference."""
    data = wav_bytes(20_000)
    ticket = start_upload(
        "events/7/sessions/3/audio", filename="talk.wav", size=len(data), content_type="audio/wav"
    )
    response = requests.post(ticket.url, data=ticket.fields, files={"file": ("talk.wav", data)}, timeout=30)
    assert response.status_code == 204, response.text
    yield ticket.reference


def test_finish_upload_on_a_silent_server_names_the_read_timeout(posted, through, s3):
    proxy = through("silent")
    with pytest.raises(StorageError) as raised:
        finish_upload(posted)
    assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_READ_TIMEOUT", "1")
    assert proxy.faults == 2


def test_a_copy_that_never_ends_names_the_transfer_timeout(posted, through, s3):
    # finish_upload() checks the upload (HEAD, a ranged GET), then copies it: a transfer.
    proxy = through("silent", trigger=b"PUT ")
    with pytest.raises(StorageError) as raised:
        finish_upload(posted)
    assert_timed_out(raised.value, proxy, s3, "KEYED_STORAGE_TRANSFER_TIMEOUT", "1.5")
    assert proxy.faults == 2


def test_the_attempt_budget_is_the_variable(through, s3, env):
    env(KEYED_STORAGE_MAX_ATTEMPTS="3")
    proxy = through("silent")
    env(KEYED_STORAGE_MAX_ATTEMPTS="3")  # through() set 2
    with pytest.raises(StorageError) as raised:
        backends.for_config(config.current()).exists("users/1/notes")
    assert "tried 3 times" in str(raised.value)
    assert proxy.faults == 3


# The doctor times its probes ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_doctor_warns_of_a_slow_answer(through, s3, env):
    # Held 1 s, under the read timeout of 3 s but over a quarter of it: slow, not failing.
    proxy = through("slow", trigger=f"GET /{s3.bucket}?location".encode(), delay=1)
    env(KEYED_STORAGE_READ_TIMEOUT="3")
    out, _, code = run("doctor")
    assert code == 0, out
    assert f"! bucket {s3.bucket} exists (slow: " in out
    assert "more than 25% of KEYED_STORAGE_READ_TIMEOUT=3 s" in out
    assert proxy.faults >= 1
    assert "✗" not in out


@pytest.mark.django_db(transaction=True)
def test_doctor_reports_a_silent_server_as_a_failure_naming_the_timeout(through, s3):
    proxy = through("silent")
    out, _, code = run("doctor")
    assert code != 0
    assert f"✗ bucket {s3.bucket} exists" in out
    assert (
        f"The S3 endpoint ({proxy.endpoint}) accepted the connection but did not answer within "
        "KEYED_STORAGE_READ_TIMEOUT=1 s, tried 2 time(s)"
    ) in out
    assert proxy.faults == 2
