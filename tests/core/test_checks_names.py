"""W003: a file field on KeyedStorage whose max_length cannot hold the names its key template makes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.checks import Tags, run_checks
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.test.utils import isolate_apps

from keyed_storage import KeyedStorage, key_template
from keyed_storage.checks import likely_name_length

from ..helpers import REPO

ROOT = REPO
NEW_IDS = ("keyed_storage.E010", "keyed_storage.W002", "keyed_storage.W003")
session_audio_key = key_template("events/{event_id}/sessions/{id}/audio")
user_avatar_key = key_template("users/{id}/avatar")


@pytest.fixture
def isolated_apps():
    """A registry of its own, so the test's models meet no other model and vanish afterwards."""
    with isolate_apps("events") as registry:
        yield registry


def w003(registry, tags=("keyed_storage",)) -> list:
    messages = run_checks(app_configs=registry.get_app_configs(), tags=list(tags))
    return [message for message in messages if message.id == "keyed_storage.W003"]


def test_the_estimate_is_key_token_and_a_reasonable_filename():
    # events/<10>/sessions/<10>/audio, '/', 32 hex digits, '/', 40 characters of filename
    assert likely_name_length(session_audio_key) == 43 + 1 + 32 + 1 + 40 == 117
    assert likely_name_length(user_avatar_key) == 23 + 1 + 32 + 1 + 40 == 97
    assert likely_name_length(key_template("a{{b}}/{x.y}")) == len("a{b}/") + 10 + 74


def test_djangos_default_max_length_is_flagged_with_the_fix(isolated_apps):
    class Session(models.Model):
        audio = models.FileField(storage=KeyedStorage(), upload_to=session_audio_key)

        class Meta:
            app_label = "events"

    [warning] = w003(isolated_apps)
    assert warning.obj is Session._meta.get_field("audio")
    assert not warning.is_serious()
    assert "max_length=100" in warning.msg and "events/{event_id}/sessions/{id}/audio" in warning.msg
    assert "max_length=255" in warning.hint
    assert w003(isolated_apps, tags=[Tags.models]) != [], "runs with the model checks too"


def test_a_field_on_the_default_storage_is_flagged_when_that_is_keyed_storage(isolated_apps, settings):
    class Slides(models.Model):
        file = models.FileField(upload_to=key_template("events/{event_id}/sessions/{id}/slides"))
        picture = models.ImageField(upload_to=key_template("events/{event_id}/speakers/{id}/photo"))

        class Meta:
            app_label = "events"

    # The demo's settings make STORAGES["default"] KeyedStorage.
    assert [w.obj.name for w in w003(isolated_apps)] == ["file", "picture"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    assert w003(isolated_apps) == []


def test_fields_that_hold_their_names_or_are_not_keyed_are_not_flagged(isolated_apps):
    class Fine(models.Model):
        wide = models.FileField(storage=KeyedStorage(), upload_to=session_audio_key, max_length=255)
        exact_fit = models.FileField(storage=KeyedStorage(), upload_to=session_audio_key, max_length=117)
        short_key = models.ImageField(storage=KeyedStorage(), upload_to=user_avatar_key)  # 97 <= 100
        other_storage = models.FileField(storage=FileSystemStorage(), upload_to=session_audio_key)
        plain_upload_to = models.FileField(storage=KeyedStorage(), upload_to="uploads/%Y/%m/%d/")
        callable_upload_to = models.FileField(storage=KeyedStorage(), upload_to=lambda instance, name: name)

        class Meta:
            app_label = "events"

    assert w003(isolated_apps) == []


def test_one_character_short_is_flagged(isolated_apps):
    class Tight(models.Model):
        audio = models.FileField(storage=KeyedStorage(), upload_to=session_audio_key, max_length=116)

        class Meta:
            app_label = "events"

    assert len(w003(isolated_apps)) == 1


def test_manage_py_check_on_the_demo_reports_none_of_the_new_checks():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=os.path.join(ROOT, "testproject"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for check_id in NEW_IDS:
        assert check_id not in result.stdout + result.stderr
