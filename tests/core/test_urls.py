"""Absolute links: right host for every configuration, encoded once, computed without I/O."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from events.models import Event
from keyed_storage import KeyedStorage, upload
from keyed_storage.backends.percent import url_path
from keyed_storage.exceptions import NoOrigin
from keyed_storage.keys import validate_key

from ..helpers import TEST_KEY, TEST_SECRET, examples, fetch, make_client, png_bytes

NAME = "events/7/logo/a b+c.png"


def url_for(env, name=NAME, **variables):
    env(**variables)
    return KeyedStorage().url(name)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"BUCKET_NAME": "media-bucket"}, "https://media-bucket.s3.amazonaws.com/"),
        (
            {"BUCKET_NAME": "media-bucket", "AWS_REGION": "us-east-1"},
            "https://media-bucket.s3.amazonaws.com/",
        ),
        (
            {"BUCKET_NAME": "media-bucket", "AWS_REGION": "eu-west-1"},
            "https://media-bucket.s3.eu-west-1.amazonaws.com/",
        ),
        ({"BUCKET_NAME": "media.example.org"}, "https://s3.amazonaws.com/media.example.org/"),
        (
            {"BUCKET_NAME": "media.example.org", "AWS_REGION": "ap-south-1"},
            "https://s3.ap-south-1.amazonaws.com/media.example.org/",
        ),
        (
            {"BUCKET_NAME": "media-bucket", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000/"},
            "http://127.0.0.1:9000/media-bucket/",
        ),
        (
            {"BUCKET_NAME": "media-bucket", "KEYED_STORAGE_CUSTOM_DOMAIN": "cdn.example.org"},
            "https://cdn.example.org/",
        ),
        (
            {"BUCKET_NAME": "media-bucket", "KEYED_STORAGE_CUSTOM_DOMAIN": "http://cdn.example.org/files/"},
            "http://cdn.example.org/files/",
        ),
        ({"KEYED_STORAGE_BASE_URL": "https://example.org/"}, "https://example.org/media/"),
    ],
)
def test_public_links_have_the_right_host(env, variables, expected):
    assert url_for(env, **variables) == expected + "events/7/logo/a%20b%2Bc.png"


def test_private_links_are_presigned_with_sigv4(env):
    url = url_for(
        env,
        BUCKET_NAME="media-bucket",
        AWS_KEY=TEST_KEY,
        AWS_SECRET=TEST_SECRET,
        AWS_REGION="eu-west-1",
        KEYED_STORAGE_PRIVATE="1",
        KEYED_STORAGE_URL_EXPIRES="600",
    )
    parts = urlsplit(url)
    assert parts.netloc == "media-bucket.s3.eu-west-1.amazonaws.com"
    assert parts.path == "/events/7/logo/a%20b%2Bc.png"
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Credential"][0].startswith(f"{TEST_KEY}/")
    assert len(query["X-Amz-Signature"][0]) == 64


def test_local_links_outside_a_request_raise_no_origin_rather_than_make_one_up():
    with pytest.raises(NoOrigin) as raised:
        KeyedStorage().url("a/b.png")
    assert isinstance(raised.value, ImproperlyConfigured)
    message = str(raised.value)
    assert "'a/b.png'" in message
    assert "KEYED_STORAGE_BASE_URL=https://example.org" in message
    assert "keyed_storage.serving.middleware.RequestOriginMiddleware" in message


def test_an_absolute_media_url_is_used_as_it_is(settings):
    settings.MEDIA_URL = "https://static.example.org/uploads/"
    assert KeyedStorage().url("a/b c.png") == "https://static.example.org/uploads/a/b%20c.png"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("url() opened a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    "variables",
    [
        {"KEYED_STORAGE_BASE_URL": "https://example.org"},
        {"BUCKET_NAME": "b-1", "AWS_KEY": "k", "AWS_SECRET": "s"},
        {"BUCKET_NAME": "b-1", "AWS_KEY": "k", "AWS_SECRET": "s", "KEYED_STORAGE_PRIVATE": "1"},
    ],
    ids=["local", "s3", "s3-private"],
)
def test_url_does_no_network_io(env, variables, no_network):
    for _ in range(3):
        assert url_for(env, **variables).startswith(("http://", "https://"))


AWKWARD_KEYS = [
    "users/1/a b",
    "users/1/plus+sign",
    "users/1/hash#tag",
    "users/1/question?mark",
    "users/1/100%",
    "users/1/%2e%2e/literal",
    "users/1/amp&eq=semi;colon",
    "users/1/Zoë/日本語",
    "users/1/quote'paren(x)*!~",
]


# Any character a key may hold, from the whole of Unicode (astral planes included): every
# category but those keys refuse (control, format, surrogate, separators but the space), with
# the ASCII punctuation a URL gives meaning to made likely.
key_characters = st.characters(
    blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp", "Zs"), blacklist_characters="/\\"
) | st.sampled_from(" +%#?&=;~'\"!*()[]@$,:")
valid_keys = st.lists(st.text(key_characters, min_size=1, max_size=16), min_size=1, max_size=5).map("/".join)


def as_key(text: str) -> str:
    try:
        return validate_key(text)
    except SuspiciousFileOperation:
        assume(False)
        raise


@hsettings(max_examples=examples(1000), deadline=None)
@given(text=valid_keys)
def test_names_are_encoded_exactly_as_quote_encodes_them(text):
    name = as_key(text)
    expected = quote(name, safe="/~")
    assert url_path.__wrapped__(name) == expected  # the encoder itself
    assert url_path(name) == expected  # and through its cache
    assert url_path(name) == expected


@hsettings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=valid_keys)
def test_public_and_presigned_links_carry_the_name_as_quote_encodes_it(env, text):
    name = as_key(text)
    env(KEYED_STORAGE_PRIVATE=None)
    public = url_for(env, name, BUCKET_NAME="media-bucket")
    assert public == "https://media-bucket.s3.amazonaws.com/" + quote(name, safe="/~")
    signed = url_for(env, name, AWS_KEY=TEST_KEY, AWS_SECRET=TEST_SECRET, KEYED_STORAGE_PRIVATE="1")
    assert signed.startswith(public + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_round_trip_through_their_links(mode, key):
    data = key.encode() + b" payload"
    url = upload(SimpleUploadedFile("f.txt", data), key, exact=True)
    path = urlsplit(url).path
    for raw in (" ", "+", "#", "?"):
        assert raw not in path, f"{raw!r} left unencoded in {url}"
    assert "%252e" in path if "%2e" in key else True
    assert fetch(url) == data


def test_private_links_serve_the_object_and_plain_links_do_not(s3_endpoint, env):
    client = make_client(s3_endpoint)
    client.create_bucket(Bucket="ks-private-bucket")  # no public-read policy
    env(
        BUCKET_NAME="ks-private-bucket",
        AWS_KEY=TEST_KEY,
        AWS_SECRET=TEST_SECRET,
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        KEYED_STORAGE_PRIVATE="1",
    )
    url = upload(SimpleUploadedFile("secret plan+v2.pdf", b"private bytes"), "users/3/plans/x y", exact=True)
    assert "X-Amz-Signature=" in url
    assert fetch(url) == b"private bytes"
    plain = url.split("?", 1)[0]
    assert requests.get(plain, timeout=10).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_local_links_take_the_origin_of_the_request(live_server):
    event = Event.objects.create(name="Origin Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = requests.get(f"{live_server.url}/events/{event.pk}/", timeout=10)
    assert f'src="{live_server.url}/media/events/{event.pk}/logo/' in page.text
    # The request's origin ends with the request.
    with pytest.raises(NoOrigin):
        event.logo.url  # noqa: B018


@pytest.mark.django_db(transaction=True)
def test_a_forged_host_never_reaches_a_link(live_server):
    event = Event.objects.create(name="Host Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = requests.get(f"{live_server.url}/events/{event.pk}/", headers={"Host": "evil.example"}, timeout=10)
    assert page.status_code == 400
    assert "evil.example/media" not in page.text


def test_request_origin_honours_the_proxy_ssl_header(client, settings, db):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["events.example.org"]
    event = Event.objects.create(name="TLS Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = client.get(f"/events/{event.pk}/", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="events.example.org")
    assert 'src="https://events.example.org/media/events/' in page.content.decode()


def test_presigned_links_follow_credentials_that_refresh(monkeypatch, env):
    """Static keys are read once; a role's keys are asked for every link, so a renewed key
    signs the links made after it."""
    import datetime
    import itertools

    import boto3
    from botocore.credentials import RefreshableCredentials

    from keyed_storage.backends.s3 import S3Backend

    issued = (f"AKIAROLEKEY{n:09d}" for n in itertools.count())

    def refresh():
        # Expiring within botocore's mandatory refresh window, so every read renews them.
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
        return {
            "access_key": next(issued),
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    role = RefreshableCredentials.create_from_metadata(refresh(), refresh, "assume-role")
    session = boto3.session.Session(region_name="us-east-1")
    monkeypatch.setattr(session, "get_credentials", lambda: role)
    monkeypatch.setattr(S3Backend, "_create_session", lambda self: session)
    first = url_for(env, BUCKET_NAME="media-bucket", KEYED_STORAGE_PRIVATE="1")
    second = KeyedStorage().url(NAME)
    keys = [parse_qs(urlsplit(link).query)["X-Amz-Credential"][0].split("/")[0] for link in (first, second)]
    assert keys[0].startswith("AKIAROLEKEY") and keys[1].startswith("AKIAROLEKEY")
    assert keys[0] != keys[1]
