"""Cache-Control: uploads' tokened objects are kept a year and never revalidated; exact objects are
revalidated; a private bucket's objects stay private. One variable sets the long policy."""

from __future__ import annotations

import io
import os

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from events.models import Event, Session
from keyed_storage import KeyedStorage, config, upload
from keyed_storage.backends.s3 import MULTIPART_THRESHOLD, RECORDED_MD5

from ..helpers import png_bytes, wav_bytes
from ..ops_helpers import run

IMMUTABLE = "public, max-age=31536000, immutable"
TOKENED = "events/7/logo/0661a1b2c3d4e5f60718293a4b5c6d7e/logo.png"


def stored_cache_control(s3, name: str) -> str | None:
    """The Cache-Control S3 keeps for the object, as a HEAD request shows it."""
    return s3.client.head_object(Bucket=s3.bucket, Key=name).get("CacheControl")


def served_cache_control(url: str) -> str | None:
    """The Cache-Control a browser gets with a real GET of the link."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}"
    return response.headers.get("Cache-Control")


def name_of(url: str, s3) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path).removeprefix(f"/{s3.bucket}/")


# S3: what each kind of object is stored with ---------------------------------------------------


def test_an_uploads_tokened_object_is_stored_immutable_for_a_year(s3):
    url = upload(SimpleUploadedFile("talk 12+Grüße.png", png_bytes()), "users/1/avatar")
    assert stored_cache_control(s3, name_of(url, s3)) == IMMUTABLE
    assert served_cache_control(url) == IMMUTABLE


def test_an_exact_object_is_revalidated(s3):
    url = upload(SimpleUploadedFile("terms.pdf", b"%PDF terms"), "site/terms.pdf", exact=True)
    assert stored_cache_control(s3, "site/terms.pdf") == "no-cache"
    assert served_cache_control(url) == "no-cache"


def test_a_name_keyed_storage_did_not_issue_is_revalidated_even_if_it_looks_tokened(s3):
    storage = KeyedStorage()
    # Another app's naming: a hex segment where keyed_storage puts its token. Deleted and saved
    # again, the same name would hold other bytes, so only provenance earns the long policy.
    plain = storage.save("docs/report.txt", ContentFile(b"report"))
    lookalike = storage.save(TOKENED, ContentFile(png_bytes()))
    assert lookalike == TOKENED
    assert stored_cache_control(s3, plain) == "no-cache"
    assert stored_cache_control(s3, lookalike) == "no-cache"


@pytest.mark.django_db(transaction=True)
def test_model_files_and_image_variants_are_stored_immutable(s3):
    event = Event.objects.create(name="Con")
    event.logo.save("logo.png", ContentFile(png_bytes(400, 300)))
    audio = SimpleUploadedFile("t.wav", wav_bytes())
    session = Session.objects.create(event=event, title="Talk", audio=audio)
    variants = [name for name in s3.keys() if "~" in name]
    assert len(variants) == 3  # thumb, card, card_2x
    for name in [event.logo.name, session.audio.name, *variants]:
        assert stored_cache_control(s3, name) == IMMUTABLE, name
    assert served_cache_control(event.logo.variant("thumb").url) == IMMUTABLE


def test_a_multipart_upload_carries_it_too(s3):
    data = os.urandom(MULTIPART_THRESHOLD + 10)
    url = upload(SimpleUploadedFile("big.bin", data), "users/1/big")
    assert stored_cache_control(s3, name_of(url, s3)) == IMMUTABLE
    assert served_cache_control(url) == IMMUTABLE


def test_a_private_buckets_objects_are_private_for_no_longer_than_a_link_lives(s3, env):
    s3.client.delete_bucket_policy(Bucket=s3.bucket)
    env(KEYED_STORAGE_PRIVATE="1", KEYED_STORAGE_URL_EXPIRES="600")
    url = upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar")
    exact = upload(SimpleUploadedFile("t.pdf", b"%PDF"), "site/terms.pdf", exact=True)
    assert "X-Amz-Signature=" in url
    assert served_cache_control(url) == "private, max-age=600, immutable"
    assert served_cache_control(exact) == "private, no-cache"


def test_the_variable_sets_the_long_policy(s3, env):
    env(KEYED_STORAGE_CACHE_CONTROL="public, max-age=86400")
    url = upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar")
    exact = upload(SimpleUploadedFile("t.pdf", b"%PDF"), "site/terms.pdf", exact=True)
    assert served_cache_control(url) == "public, max-age=86400"
    assert served_cache_control(exact) == "no-cache"  # exact objects are not the variable's


@pytest.mark.moto_only(
    'SeaweedFS refuses a PutObject whose Cache-Control holds a quoted field name (no-cache="Set-Cookie") '
    "with InvalidDigest, even from plain boto3; S3 and moto store any value"
)
def test_the_settings_dict_sets_it_too(s3, settings):
    settings.KEYED_STORAGE = {"KEYED_STORAGE_CACHE_CONTROL": 'private, max-age=60, no-cache="Set-Cookie"'}
    url = upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar")
    assert served_cache_control(url) == 'private, max-age=60, no-cache="Set-Cookie"'


# Local mode: the view decides, with the same variable -----------------------------------------


@pytest.mark.parametrize("variable", [None, "public, max-age=86400"])
def test_both_places_give_a_link_the_same_cache_control(mode, env, variable):
    if variable:
        env(KEYED_STORAGE_CACHE_CONTROL=variable)
    tokened = upload(SimpleUploadedFile("talk 12+Grüße.mp3", wav_bytes()), "events/7/sessions/3/audio")
    exact = upload(SimpleUploadedFile("t.pdf", b"%PDF"), "site/terms.pdf", exact=True)
    assert served_cache_control(tokened) == (variable or IMMUTABLE)
    assert served_cache_control(exact) == "no-cache"


# Bad values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "max-age=60\r\nSet-Cookie: a=b",  # a header smuggled in
        "public; max-age=60",  # ';' is no separator
        "max-age=",
        "public,,immutable",
        'no-cache="unterminated',
        "max-age=60 immutable",
        "public, max-âge=60",
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(s3, env, value):
    env(KEYED_STORAGE_CACHE_CONTROL=value)
    with pytest.raises(ImproperlyConfigured, match=r"KEYED_STORAGE_CACHE_CONTROL=.* is not a Cache-Control"):
        config.current()
    _, problems = config.inspect()
    assert [(p.id, p.variable) for p in problems] == [("keyed_storage.E005", "KEYED_STORAGE_CACHE_CONTROL")]


def test_public_caching_of_a_private_bucket_is_refused(s3, env):
    env(KEYED_STORAGE_PRIVATE="1", KEYED_STORAGE_CACHE_CONTROL="public, max-age=60")
    _, problems = config.inspect()
    assert [(p.id, p.variable) for p in problems] == [("keyed_storage.E011", "KEYED_STORAGE_CACHE_CONTROL")]
    assert "shared caches" in problems[0].message


def test_manage_py_check_fails_on_a_bad_value(env):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    env(KEYED_STORAGE_CACHE_CONTROL="max-age=1\nX: y")
    with pytest.raises(SystemCheckError, match="KEYED_STORAGE_CACHE_CONTROL"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


# sync and doctor -----------------------------------------------------------------------------


def test_sync_to_s3_stores_the_policy_the_name_calls_for(s3, settings):
    files = {TOKENED: png_bytes(), "site/terms.pdf": b"%PDF terms"}
    for name, body in files.items():
        path = os.path.join(settings.MEDIA_ROOT, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(body)
    _, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0, err
    assert stored_cache_control(s3, TOKENED) == IMMUTABLE
    assert stored_cache_control(s3, "site/terms.pdf") == "no-cache"
    assert RECORDED_MD5 in s3.client.head_object(Bucket=s3.bucket, Key=TOKENED)["Metadata"]


def test_sync_gives_objects_it_skips_the_policy_and_keeps_their_other_headers(s3, settings):
    body = png_bytes()
    path = os.path.join(settings.MEDIA_ROOT, *TOKENED.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(body)
    # The same bytes, stored before keyed_storage set Cache-Control.
    s3.client.put_object(
        Bucket=s3.bucket,
        Key=TOKENED,
        Body=body,
        ContentType="image/png",
        ContentDisposition="inline",
        Metadata={"origin": "old-site"},
    )
    out, err, code = run("sync", "--from", "local", "--to", "s3", "--dry-run")
    assert code == 0, err
    assert stored_cache_control(s3, TOKENED) is None  # a dry run changes nothing
    out, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0, err
    assert "skipped 1 already there" in out
    head = s3.client.head_object(Bucket=s3.bucket, Key=TOKENED)
    assert head.get("CacheControl") == IMMUTABLE
    assert (head["ContentType"], head.get("ContentDisposition"), head["Metadata"]) == (
        "image/png",
        "inline",
        {"origin": "old-site"},
    )
    assert s3.body(TOKENED) == body


@pytest.mark.django_db(transaction=True)
def test_doctor_checks_the_probes_cache_control_and_samples_stored_uploads(s3):
    upload(SimpleUploadedFile("a.png", png_bytes()), "users/1/avatar")
    out, _, code = run("doctor")
    assert code == 0, out
    assert f"Cache-Control: {IMMUTABLE!r} for uploads' tokened names (the default)" in out
    assert f"same bytes, Cache-Control {IMMUTABLE!r}" in out
    assert "✓ Cache-Control of stored uploads: 1 sampled, all" in out


@pytest.mark.django_db(transaction=True)
def test_doctor_reports_uploads_stored_without_it(s3):
    s3.client.put_object(Bucket=s3.bucket, Key=TOKENED, Body=png_bytes(), ContentType="image/png")
    out, _, code = run("doctor")
    assert code == 1, out
    assert "✗ Cache-Control of stored uploads" in out
    assert f"1 of 1 sampled uploads lack Cache-Control {IMMUTABLE!r} ({TOKENED}: (none))" in out
    assert "--metadata-directive REPLACE" in out


@pytest.mark.django_db(transaction=True)
def test_doctor_names_the_variable_and_checks_the_probe_against_it(s3, env):
    env(KEYED_STORAGE_CACHE_CONTROL="public, max-age=600", KEYED_STORAGE_KEEP_METADATA="1")
    out, _, code = run("doctor")
    assert code == 0, out
    assert "KEYED_STORAGE_CACHE_CONTROL=public, max-age=600  (environment)" in out
    assert "KEYED_STORAGE_KEEP_METADATA=1  (environment)" in out
    assert "for uploads' tokened names (KEYED_STORAGE_CACHE_CONTROL)" in out
    assert "same bytes, Cache-Control 'public, max-age=600'" in out
