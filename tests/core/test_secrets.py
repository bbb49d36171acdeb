"""AWS_SECRET never shows: not in reprs, errors, tracebacks, the debug page, logs or command output."""

from __future__ import annotations

import io
import logging
import socket
import traceback

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from keyed_storage import KeyedStorage, backends, config, upload

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def failing_s3(env):
    env(
        BUCKET_NAME="secret-test-bucket",
        AWS_KEY="AKIASECRETTEST",
        AWS_SECRET=SECRET,
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}",
    )


def everything_said(error: BaseException) -> str:
    """The message, the chained causes and a traceback with every frame's local variables."""
    rendered = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(rendered.format())


def test_reprs_and_strs_hide_the_secret(failing_s3):
    storage = KeyedStorage()
    current = config.current()
    backend = backends.for_config(current)
    for thing in (storage, current, backend, current.secret_key):
        assert SECRET not in repr(thing)
    assert SECRET not in str(current)
    assert current.secret_key == SECRET, "the real value is still what boto3 gets"


def test_a_failed_upload_and_its_traceback_hide_the_secret(failing_s3, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(OSError) as raised:
        upload(io.BytesIO(b"x"), "users/1/avatar")
    said = everything_said(raised.value)
    assert "secret-test-bucket" in said  # the test looks where the secret would be
    assert SECRET not in said
    assert SECRET not in caplog.text


def test_django_debug_page_hides_the_secret(failing_s3, settings):
    settings.DEBUG = True
    settings.ROOT_URLCONF = "tests.debug_urls"
    response = Client(raise_request_exception=False).get("/fail/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "secret-test-bucket" in page and "Traceback" in page
    assert SECRET not in page


def test_checks_and_configuration_errors_hide_the_secret(env, capsys):
    env(AWS_SECRET=SECRET)  # without AWS_KEY or BUCKET_NAME: two errors
    messages = run_checks(tags=["keyed_storage"])
    assert messages and all(SECRET not in str(m) for m in messages)
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert SECRET not in everything_said(raised.value)
    with pytest.raises(Exception) as first_use:
        KeyedStorage().backend  # noqa: B018
    assert SECRET not in everything_said(first_use.value)
    out, err = capsys.readouterr()
    assert SECRET not in out + err


def test_a_secret_in_the_settings_is_cleansed_on_the_debug_page(settings, env):
    settings.KEYED_STORAGE = {"BUCKET_NAME": "secret-test-bucket", "AWS_KEY": "AKIA", "AWS_SECRET": SECRET}
    env(AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}")
    settings.DEBUG = True
    settings.ROOT_URLCONF = "tests.debug_urls"
    page = Client(raise_request_exception=False).get("/fail/").content.decode()
    assert "secret-test-bucket" in page
    assert SECRET not in page
