"""Keys for models: key_template, the ready builders, safe filenames and key validation."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.db.migrations.writer import MigrationWriter

from keyed_storage import key_template, keys
from keyed_storage.keys import KeyNeedsValue, KeyTemplate, safe_filename, validate_key

from ..helpers import REPO

TOKEN = rf"[0-9a-f]{{{keys.TOKEN_HEX_CHARS}}}"


class Thing:
    """A stand-in instance: key templates read attributes, nothing else."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)


# The builders keyed_storage.keys once shipped for an event site, now the demo's own
# (testproject/events/keys.py): each old name, what it names, and an instance to fill it.
MOVED_BUILDERS = [
    ("user_avatar_key", Thing(id=42), "users/42/avatar"),
    ("event_logo_key", Thing(id=7), "events/7/logo"),
    ("event_background_key", Thing(id=7), "events/7/background"),
    ("session_audio_key", Thing(id=3, event_id=7), "events/7/sessions/3/audio"),
    ("session_video_key", Thing(id=3, event_id=7), "events/7/sessions/3/video"),
    ("session_slides_key", Thing(id=3, event_id=7), "events/7/sessions/3/slides"),
    ("speaker_photo_key", Thing(id=5, event_id=7), "events/7/speakers/5/photo"),
    ("sponsor_logo_key", Thing(id=9, event_id=7), "events/7/sponsors/9/logo"),
]


@pytest.mark.parametrize(("name", "instance", "key"), MOVED_BUILDERS)
def test_a_moved_builder_warns_naming_its_replacement_and_still_names_files(name, instance, key):
    with pytest.warns(DeprecationWarning) as caught:
        builder = getattr(keys, name)
    [warning] = caught
    message = str(warning.message)
    assert message.startswith(f"keyed_storage.keys.{name} is deprecated"), message
    pattern = builder.pattern
    assert f"{name} = key_template({pattern!r})" in message
    assert warning.filename == __file__  # it points at the line that used the old name
    assert re.fullmatch(rf"{re.escape(key)}/{TOKEN}/Logo_Final\.PNG", builder(instance, "Logo Final.PNG"))
    # It deconstructs as migrations have always recorded it, so none changes.
    assert builder.deconstruct() == ("keyed_storage.keys.KeyTemplate", (pattern,), {})
    assert builder == key_template(pattern)


def test_importing_a_moved_builder_warns_at_the_import():
    with pytest.warns(
        DeprecationWarning, match=r"keyed_storage\.keys\.event_logo_key is deprecated"
    ) as caught:
        from keyed_storage.keys import event_logo_key
    assert caught[0].filename == __file__
    assert event_logo_key.key(Thing(id=7)) == "events/7/logo"


def test_other_missing_names_are_still_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'event_poster_key'"):
        keys.event_poster_key  # noqa: B018
    assert not hasattr(keys, "event_poster_key")


def test_the_demos_builders_name_what_the_old_ones_did():
    """The move changed no key and no migration: the demo's builder of each name is the old one."""
    from events import keys as demo_keys

    moved = [(name, instance, key) for name, instance, key in MOVED_BUILDERS if hasattr(demo_keys, name)]
    assert len(moved) == 6  # user_avatar_key and session_video_key: the demo has no such field
    for name, instance, key in moved:
        builder = getattr(demo_keys, name)
        assert builder.key(instance) == key
        assert builder.deconstruct() == ("keyed_storage.keys.KeyTemplate", (builder.pattern,), {})


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

    from ..image_helpers import encode, halves

    event = Event(name="Unsaved Con")
    with pytest.raises(KeyNeedsValue, match=r"Event\.id.*Assign the file and save the row") as raised:
        event.logo.save("logo.png", ContentFile(encode(halves(40, 30), "PNG")), save=True)
    assert "INSTALLED_APPS" not in str(raised.value)
    assert Event.objects.count() == 0


OLD_SITE = {
    "oldsite/__init__.py": "",
    "oldsite/migrations/__init__.py": "",
    # Written when the builder was keyed_storage's: it names the builder, not its pattern.
    "oldsite/migrations/0001_initial.py": """
import keyed_storage.keys
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Poster",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("logo", models.FileField(max_length=255, upload_to=keyed_storage.keys.event_logo_key)),
            ],
        ),
    ]
""",
    # A data migration that stores a file through the historical model: the old builder names it.
    "oldsite/migrations/0002_a_poster.py": """
from django.core.files.base import ContentFile
from django.db import migrations


def add_poster(apps, schema_editor):
    apps.get_model("oldsite", "Poster").objects.create(logo=ContentFile(b"poster bytes", name="a poster.png"))


class Migration(migrations.Migration):
    dependencies = [("oldsite", "0001_initial")]
    operations = [migrations.RunPython(add_poster)]
""",
    # The model as its project has it after following the warning.
    "oldsite/models.py": """
from django.db import models

from keyed_storage import key_template


class Poster(models.Model):
    id = models.BigAutoField(primary_key=True)
    logo = models.FileField(max_length=255, upload_to=key_template("events/{id}/logo"))
""",
    "oldsite_settings.py": """
import os

SECRET_KEY = "old-site"
INSTALLED_APPS = ["keyed_storage", "oldsite"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["OLD_SITE_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
MEDIA_ROOT = os.environ["OLD_SITE_MEDIA"]
MEDIA_URL = "/media/"
STORAGES = {"default": {"BACKEND": "keyed_storage.KeyedStorage"}}
KEYED_STORAGE = {"KEYED_STORAGE_BASE_URL": "http://old.example.org"}
""",
}


def test_an_old_migration_that_names_a_moved_builder_loads_and_migrates(tmp_path):
    for path, text in OLD_SITE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    root = REPO
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "BUCKET_", "KEYED_STORAGE_", "DJANGO_"))
    }
    env |= {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), root]),  # this checkout's keyed_storage
        "DJANGO_SETTINGS_MODULE": "oldsite_settings",
        "OLD_SITE_DB": str(tmp_path / "db.sqlite3"),
        "OLD_SITE_MEDIA": str(tmp_path / "media"),
    }

    def django_admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "always::DeprecationWarning", "-m", "django", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrate = django_admin("migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying oldsite.0002_a_poster... OK" in migrate.stdout
    # Warned where the old name is used, and told what to write instead.
    assert "oldsite/migrations/0001_initial.py" in migrate.stderr
    assert "keyed_storage.keys.event_logo_key is deprecated" in migrate.stderr
    assert "event_logo_key = key_template('events/{id}/logo')" in migrate.stderr
    # The old builder named the data migration's file as it always did, and stored it.
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        [(name,)] = db.execute("SELECT logo FROM oldsite_poster").fetchall()
    assert re.fullmatch(rf"events/1/logo/{TOKEN}/a_poster\.png", name), name
    assert (tmp_path / "media" / name).read_bytes() == b"poster bytes"
    # The project's own key_template() of the same pattern is what the old migration recorded.
    check = django_admin("makemigrations", "--check", "--dry-run", "oldsite")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No changes detected" in check.stdout
