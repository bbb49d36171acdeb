"""Keys for models: key_template, the ready builders, safe filenames and key validation."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.db.migrations.writer import MigrationWriter

from keyed_storage import key_template, keys
from keyed_storage.keys import KeyNeedsValue, KeyTemplate, safe_filename, validate_key

TOKEN = rf"[0-9a-f]{{{keys.TOKEN_HEX_CHARS}}}"


class Thing:
    """A stand-in instance: key templates read attributes, nothing else."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)


@pytest.mark.parametrize(
    ("builder", "instance", "key"),
    [
        (keys.user_avatar_key, Thing(id=42), "users/42/avatar"),
        (keys.event_logo_key, Thing(id=7), "events/7/logo"),
        (keys.event_background_key, Thing(id=7), "events/7/background"),
        (keys.session_audio_key, Thing(id=3, event_id=7), "events/7/sessions/3/audio"),
        (keys.session_video_key, Thing(id=3, event_id=7), "events/7/sessions/3/video"),
        (keys.session_slides_key, Thing(id=3, event_id=7), "events/7/sessions/3/slides"),
        (keys.speaker_photo_key, Thing(id=5, event_id=7), "events/7/speakers/5/photo"),
        (keys.sponsor_logo_key, Thing(id=9, event_id=7), "events/7/sponsors/9/logo"),
    ],
)
def test_ready_builders_name_files_key_token_filename(builder, instance, key):
    name = builder(instance, "Logo Final.PNG")
    assert re.fullmatch(rf"{re.escape(key)}/{TOKEN}/Logo_Final\.PNG", name), name


def test_key_template_reads_dotted_paths():
    template = key_template("events/{event.slug}/sessions/{id}/audio")
    instance = Thing(id=3, event=Thing(slug="djangocon"))
    assert template.key(instance) == "events/djangocon/sessions/3/audio"


def test_key_template_deconstructs_for_migrations():
    template = key_template("events/{event_id}/sessions/{id}/audio")
    assert template.deconstruct() == (
        "keyed_storage.keys.KeyTemplate",
        ("events/{event_id}/sessions/{id}/audio",),
        {},
    )
    code, imports = MigrationWriter.serialize(template)
    assert code == "keyed_storage.keys.KeyTemplate('events/{event_id}/sessions/{id}/audio')"
    assert imports == {"import keyed_storage.keys"}
    assert template == KeyTemplate("events/{event_id}/sessions/{id}/audio")


@pytest.mark.parametrize("value", [None, ""])
def test_an_empty_field_never_becomes_text_in_a_key(value):
    template = key_template("events/{event_id}/sessions/{id}/audio")
    with pytest.raises(KeyNeedsValue, match=r"Thing\.event_id"):
        template(Thing(id=3, event_id=value), "talk.mp3")


def test_a_missing_related_object_is_named():
    with pytest.raises(KeyNeedsValue, match=r"event\.slug"):
        key_template("events/{event.slug}/logo")(Thing(event=None), "x.png")


def test_a_value_with_a_slash_cannot_add_segments():
    with pytest.raises(SuspiciousFileOperation, match="contains '/'"):
        key_template("users/{username}/avatar")(Thing(username="../../etc"), "x.png")


@pytest.mark.parametrize(
    "pattern",
    [
        "users/{id:>5}/avatar",
        "users/{id!r}/avatar",
        "users/{}/avatar",
        "users/{0}/avatar",
        "/users/{id}",
        "users//{id}",
    ],
)
def test_bad_patterns_fail_when_the_template_is_made(pattern):
    with pytest.raises((ValueError, SuspiciousFileOperation)):
        key_template(pattern)


@pytest.mark.parametrize(
    ("client_name", "safe"),
    [
        ("C:\\fakepath\\photo.png", "photo.png"),
        ("../../etc/passwd.png", "passwd.png"),
        ("/etc/x.png", "x.png"),
        ("my photo (1).JPG", "my_photo_1.JPG"),
        ("Zoë Ünïcode.png", "Zoë_Ünïcode.png"),
        ("", "file"),
        ("..", "file"),
        ("...", "file"),
        (".htaccess", "htaccess"),
        ("a\x00b.png", "ab.png"),
        (None, "file"),
    ],
)
def test_client_filenames_are_sanitised(client_name, safe):
    assert safe_filename(client_name) == safe


def test_long_filenames_are_cut_but_keep_their_extension():
    name = safe_filename("x" * 400 + ".mp3")
    assert name.endswith(".mp3") and len(name.encode()) <= 255


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "empty"),
        ("/users/1", "absolute"),
        ("users/../admin", "'..'"),
        ("users/./1", "'.'"),
        ("users//1", "empty segment"),
        ("users/1/", "empty segment"),
        ("users\\1", "backslash"),
        ("users/1\x00", "control"),
        ("users/\n1", "control"),
        ("k/" + "x" * 1100, "1024"),
        ("k/" + "é" * 200, "255"),
    ],
)
def test_hostile_keys_are_refused_saying_why(key, why):
    with pytest.raises(SuspiciousFileOperation, match=re.escape(why)):
        validate_key(key)


def test_keys_are_normalised_to_nfc():
    assert validate_key("cafe\u0301/x") == "caf\u00e9/x"


def test_percent_sequences_in_keys_are_literal():
    assert validate_key("%2e%2e/x") == "%2e%2e/x"


@pytest.mark.django_db
def test_saving_a_file_on_a_row_without_an_id_says_how_to_do_it(local):
    """FieldFile.save() on a new row names the file before the row exists: the error says what
    works instead, not that keyed_storage is missing from INSTALLED_APPS (it is installed)."""
    from django.core.files.base import ContentFile

    from events.models import Event

    from .image_helpers import encode, halves

    event = Event(name="Unsaved Con")
    with pytest.raises(KeyNeedsValue, match=r"Event\.id.*Assign the file and save the row") as raised:
        event.logo.save("logo.png", ContentFile(encode(halves(40, 30), "PNG")), save=True)
    assert "INSTALLED_APPS" not in str(raised.value)
    assert Event.objects.count() == 0
