"""The environment picks the backend; half configurations fail loudly, naming the variable."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from keyed_storage import KeyedStorage, config, upload

from ..helpers import REPO, TEST_KEY, TEST_SECRET, fetch

ROOT = REPO


def check_errors():
    return [m for m in run_checks(tags=["keyed_storage"]) if m.is_serious()]


def test_no_variables_means_local_disk(settings):
    storage = KeyedStorage()
    assert storage.backend == "local"
    name = storage.save("notes/1/text/readme.txt", io.BytesIO(b"local bytes"))
    assert os.path.isfile(os.path.join(settings.MEDIA_ROOT, name))


def test_bucket_and_key_pair_means_s3(s3):
    storage = KeyedStorage()
    assert storage.backend == "s3"
    name = storage.save("notes/1/text/readme.txt", io.BytesIO(b"s3 bytes"))
    assert s3.body(name) == b"s3 bytes"


def test_bucket_alone_uses_the_default_credential_chain(s3, env):
    # No AWS_KEY/AWS_SECRET: boto3 finds credentials itself, as with an IAM role. The
    # standard AWS_* variables stand in for the role here.
    env(AWS_KEY=None, AWS_SECRET=None, AWS_ACCESS_KEY_ID=TEST_KEY, AWS_SECRET_ACCESS_KEY=TEST_SECRET)
    current = config.current()
    assert current.backend == "s3" and current.access_key is None and current.secret_key is None
    url = upload(io.BytesIO(b"via role"), "roles/1/file", exact=True)
    assert fetch(url) == b"via role"
    assert s3.body("roles/1/file") == b"via role"


HALF_CONFIGURATIONS = [
    ({"BUCKET_NAME": "b-1", "AWS_KEY": "k"}, "AWS_SECRET", "keyed_storage.E001"),
    ({"BUCKET_NAME": "b-1", "AWS_SECRET": "s"}, "AWS_KEY", "keyed_storage.E001"),
    ({"AWS_KEY": "k", "AWS_SECRET": "s"}, "BUCKET_NAME", "keyed_storage.E002"),
    ({"KEYED_STORAGE_CUSTOM_DOMAIN": "cdn.example.org"}, "BUCKET_NAME", "keyed_storage.E003"),
    ({"KEYED_STORAGE_PRIVATE": "1"}, "BUCKET_NAME", "keyed_storage.E003"),
    ({"BUCKET_NAME": "Not_A_Bucket"}, "BUCKET_NAME", "keyed_storage.E004"),
    ({"BUCKET_NAME": "b-1", "KEYED_STORAGE_PRIVATE": "maybe"}, "KEYED_STORAGE_PRIVATE", "keyed_storage.E005"),
    (
        {"BUCKET_NAME": "b-1", "KEYED_STORAGE_PRIVATE": "1", "KEYED_STORAGE_URL_EXPIRES": "soon"},
        "KEYED_STORAGE_URL_EXPIRES",
        "keyed_storage.E005",
    ),
    (
        {"BUCKET_NAME": "b-1", "KEYED_STORAGE_PRIVATE": "1", "KEYED_STORAGE_URL_EXPIRES": "604801"},
        "KEYED_STORAGE_URL_EXPIRES",
        "keyed_storage.E005",
    ),
    (
        {"BUCKET_NAME": "b-1", "KEYED_STORAGE_URL_EXPIRES": "60"},
        "KEYED_STORAGE_URL_EXPIRES",
        "keyed_storage.E007",
    ),
    ({"KEYED_STORAGE_DIRECT_EXPIRES": "0"}, "KEYED_STORAGE_DIRECT_EXPIRES", "keyed_storage.E005"),
    (
        {"BUCKET_NAME": "b-1", "KEYED_STORAGE_DIRECT_EXPIRES": "an hour"},
        "KEYED_STORAGE_DIRECT_EXPIRES",
        "keyed_storage.E005",
    ),
    ({"BUCKET_NAME": "b-1", "AWS_REGION": "EU West"}, "AWS_REGION", "keyed_storage.E005"),
    (
        {"BUCKET_NAME": "b-1", "AWS_ENDPOINT_URL_S3": "minio:9000"},
        "AWS_ENDPOINT_URL_S3",
        "keyed_storage.E006",
    ),
    (
        {"BUCKET_NAME": "b-1", "AWS_ENDPOINT_URL_S3": "http://minio:9000/path"},
        "AWS_ENDPOINT_URL_S3",
        "keyed_storage.E006",
    ),
    (
        {"BUCKET_NAME": "b-1", "KEYED_STORAGE_CUSTOM_DOMAIN": "cdn.example.org?x=1"},
        "KEYED_STORAGE_CUSTOM_DOMAIN",
        "keyed_storage.E006",
    ),
    (
        {
            "BUCKET_NAME": "b-1",
            "KEYED_STORAGE_PRIVATE": "1",
            "KEYED_STORAGE_CUSTOM_DOMAIN": "cdn.example.org",
        },
        "KEYED_STORAGE_CUSTOM_DOMAIN",
        "keyed_storage.E008",
    ),
    ({"KEYED_STORAGE_BASE_URL": "example.org"}, "KEYED_STORAGE_BASE_URL", "keyed_storage.E006"),
    ({"KEYED_STORAGE_BASE_URL": "https://example.org/app"}, "KEYED_STORAGE_BASE_URL", "keyed_storage.E006"),
]


@pytest.mark.parametrize(("variables", "named", "check_id"), HALF_CONFIGURATIONS)
def test_half_configuration_fails_the_system_check_naming_the_variable(env, variables, named, check_id):
    env(**variables)
    errors = check_errors()
    assert [e.id for e in errors] == [check_id]
    assert named in errors[0].msg
    assert errors[0].obj == named
    with pytest.raises(SystemCheckError, match=named):
        call_command("check")


@pytest.mark.parametrize(("variables", "named", "check_id"), HALF_CONFIGURATIONS)
def test_half_configuration_fails_at_first_use_and_never_falls_back(
    env, settings, variables, named, check_id
):
    env(**variables)
    storage = KeyedStorage()  # construction reads nothing
    with pytest.raises(ImproperlyConfigured, match=named):
        storage.backend  # noqa: B018
    with pytest.raises(ImproperlyConfigured, match=named):
        upload(io.BytesIO(b"data"), "users/1/avatar")
    with pytest.raises(ImproperlyConfigured, match=named):
        storage.url("users/1/avatar")
    # Nothing reached the local disk.
    assert not os.path.exists(settings.MEDIA_ROOT) or not os.listdir(settings.MEDIA_ROOT)


def test_every_problem_is_reported_at_once(env):
    env(AWS_KEY="k", KEYED_STORAGE_PRIVATE="perhaps")
    names = {error.obj for error in check_errors()}
    assert {"AWS_SECRET", "BUCKET_NAME", "KEYED_STORAGE_PRIVATE"} <= names


def test_local_mode_needs_media_root_and_media_url(settings):
    settings.MEDIA_ROOT = ""
    settings.MEDIA_URL = ""
    assert {e.obj for e in check_errors()} == {"MEDIA_ROOT", "MEDIA_URL"}
    with pytest.raises(ImproperlyConfigured, match="MEDIA_ROOT"):
        KeyedStorage().backend  # noqa: B018


def test_blank_values_count_as_unset(env):
    env(BUCKET_NAME="  ", AWS_KEY="", AWS_SECRET="")
    assert check_errors() == []
    assert KeyedStorage().backend == "local"


def test_aws_region_alone_does_not_select_s3(env):
    # Hosting platforms set AWS_REGION for their own reasons; it says nothing about storage.
    env(AWS_REGION="eu-west-1", AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")
    assert check_errors() == []
    assert KeyedStorage().backend == "local"


def test_django_settings_are_used_when_the_environment_is_silent(settings, env):
    settings.KEYED_STORAGE = {"BUCKET_NAME": "from-settings", "AWS_REGION": "eu-west-1"}
    current = config.current()
    assert (current.backend, current.bucket) == ("s3", "from-settings")
    assert ("BUCKET_NAME", "settings") in current.sources
    env(BUCKET_NAME="from-env")
    assert config.current().bucket == "from-env"
    assert ("BUCKET_NAME", "environment") in config.current().sources


def test_a_setting_change_switches_an_existing_storage_without_reset():
    storage = KeyedStorage()
    assert storage.backend == "local"
    with override_settings(KEYED_STORAGE={"BUCKET_NAME": "switched"}):  # setting_changed resets
        assert storage.backend == "s3"
    assert storage.backend == "local"


def test_an_environment_change_takes_effect_after_reset(monkeypatch, s3):
    storage = KeyedStorage()
    assert storage.backend == "s3"
    monkeypatch.delenv("BUCKET_NAME")
    monkeypatch.delenv("AWS_KEY")
    monkeypatch.delenv("AWS_SECRET")
    assert storage.backend == "s3", "the configuration is cached until reset()"
    config.reset()
    assert storage.backend == "local"


@pytest.mark.parametrize("debug", [False, True])
def test_no_base_url_warns_that_links_outside_requests_raise(settings, debug):
    settings.DEBUG = debug
    warnings = run_checks(tags=["keyed_storage"])
    assert [w.id for w in warnings] == ["keyed_storage.W001"]
    assert "KEYED_STORAGE_BASE_URL" in warnings[0].msg and "raise" in warnings[0].msg
    assert "KEYED_STORAGE_BASE_URL=https://example.org" in warnings[0].hint


def test_a_base_url_or_an_absolute_media_url_needs_no_warning(settings, env):
    env(KEYED_STORAGE_BASE_URL="https://example.org")
    assert run_checks(tags=["keyed_storage"]) == []
    env(KEYED_STORAGE_BASE_URL=None)
    settings.MEDIA_URL = "https://static.example.org/media/"
    assert run_checks(tags=["keyed_storage"]) == []


def test_deconstruct_carries_nothing_from_the_environment(s3):
    assert KeyedStorage().deconstruct() == ("keyed_storage.KeyedStorage", (), {})


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "testproject"), **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_import_and_construction_do_not_touch_boto3():
    result = run_python(
        "import sys, django; django.setup();"
        "from keyed_storage import KeyedStorage, upload, key_template; import events.models;"
        "KeyedStorage(); heavy = ('boto3', 'botocore', 'storages');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))",
        {"DJANGO_SETTINGS_MODULE": "testproject.settings", "BUCKET_NAME": "some-bucket"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"BUCKET_NAME": "prod-bucket", "AWS_KEY": "k", "AWS_SECRET": "s", "AWS_REGION": "eu-west-1"},
        {"BUCKET_NAME": "x.y.z", "KEYED_STORAGE_PRIVATE": "1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"},
    ],
    ids=["local", "s3", "s3-private-endpoint"],
)
def test_makemigrations_sees_no_change_in_any_environment(env, tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        env={**os.environ, "DEMO_DB": str(tmp_path / "db.sqlite3"), **env},
        capture_output=True,
        text=True,
        cwd=os.path.join(ROOT, "testproject"),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_current_returns_the_config_it_built_even_if_reset_meanwhile(monkeypatch):
    # reset() takes no lock: another thread's settings change may clear the cache right
    # after current() filled it. current() must still return a Config, never None.
    original = config._set

    def set_then_reset_elsewhere(value):
        original(value)
        original(None)  # what a concurrent reset() does

    config.reset()
    monkeypatch.setattr(config, "_set", set_then_reset_elsewhere)
    assert isinstance(config.current(), config.Config)
