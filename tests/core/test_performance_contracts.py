"""The performance promises that are facts, not timings: request counts, one client, exact SigV4."""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections import Counter
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.config import Config as BotoConfig
from django.core.files.uploadedfile import SimpleUploadedFile

from events.models import Event, Session
from keyed_storage import KeyedStorage, backends, config, upload

from ..helpers import TEST_KEY, TEST_SECRET, fetch, png_bytes

FROZEN = datetime.datetime(2026, 11, 26, 12, 34, 56, tzinfo=datetime.UTC)


def backend():
    return backends.for_config(config.current())


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return FROZEN.replace(tzinfo=None)


def freeze_botocore_clock(monkeypatch) -> None:
    """Stop the clock botocore signs with: get_current_datetime() since botocore 1.41, before
    that datetime.datetime.utcnow() (the lowest boto3 pyproject.toml admits is older)."""
    if hasattr(botocore.auth, "get_current_datetime"):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN.replace(tzinfo=None))
    else:
        monkeypatch.setattr(botocore.auth, "datetime", SimpleNamespace(datetime=_FrozenDatetime))


@pytest.fixture
def requests_made(s3):
    """Every HTTP request keyed_storage's client sends, by operation name."""
    seen = Counter()

    def count(request, **kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1

    backend().client.meta.events.register("before-send.s3", count)
    return seen


@pytest.mark.django_db(transaction=True)
def test_a_model_save_with_a_new_file_is_one_put(requests_made):
    event = Event.objects.create(name="Con")
    requests_made.clear()
    Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("talk.wav", b"RIFF...."))
    assert requests_made == Counter({"PutObject": 1})


def test_upload_to_a_fresh_key_is_a_put_and_a_listing(requests_made):
    upload(SimpleUploadedFile("a.png", b"x"), "users/1/avatar")
    assert requests_made == Counter({"PutObject": 1, "ListObjectsV2": 1})
    assert "HeadObject" not in requests_made


@pytest.mark.parametrize("exact", [False, True])
def test_cache_control_rides_on_the_put_and_costs_no_request(s3, exact):
    sent = []

    def record(request, **kwargs):
        sent.append((kwargs["event_name"].rsplit(".", 1)[-1], request.headers.get("Cache-Control")))

    backend().client.meta.events.register("before-send.s3", record)
    upload(SimpleUploadedFile("a.png", b"x"), "users/1/avatar", exact=exact)
    expected = b"no-cache" if exact else b"public, max-age=31536000, immutable"
    assert sent[0] == ("PutObject", expected)
    assert Counter(operation for operation, _ in sent) == (
        Counter({"PutObject": 1}) if exact else Counter({"PutObject": 1, "ListObjectsV2": 1})
    )


def test_replacing_an_upload_lists_and_deletes_only_what_it_must(requests_made):
    upload(SimpleUploadedFile("a.png", b"x"), "users/1/avatar")
    requests_made.clear()
    upload(SimpleUploadedFile("b.png", b"y"), "users/1/avatar")
    assert requests_made == Counter({"PutObject": 1, "ListObjectsV2": 1, "DeleteObject": 1})


def test_replacing_a_key_over_twenty_earlier_uploads_takes_three_requests(requests_made, s3):
    # Left by crashed or racing processes: twenty earlier uploads, one with a variant-like
    # second object, and nested keys' objects that must survive.
    earlier = [f"users/1/avatar/{i:014x}{'0' * 18}/a.png" for i in range(20)]
    for name in [*earlier, earlier[0] + "~thumb.webp"]:
        s3.client.put_object(Bucket=s3.bucket, Key=name, Body=b"old")
    nested = [f"users/1/avatar/small/{1:014x}{'0' * 18}/s.png", "users/1/avatar/notes.txt"]
    for name in nested:
        s3.client.put_object(Bucket=s3.bucket, Key=name, Body=b"nested")
    requests_made.clear()
    url = upload(SimpleUploadedFile("b.png", b"new"), "users/1/avatar")
    assert requests_made == Counter({"PutObject": 1, "ListObjectsV2": 1, "DeleteObjects": 1})
    assert fetch(url) == b"new"
    assert sorted(s3.keys()) == sorted([*nested, url.split(f"/{s3.bucket}/", 1)[1]])


def test_large_files_go_up_in_parts(requests_made):
    from keyed_storage.backends.s3 import MULTIPART_THRESHOLD

    data = os.urandom(MULTIPART_THRESHOLD * 2 + 10)
    url = upload(SimpleUploadedFile("big.bin", data), "users/1/big", exact=True)
    assert requests_made == Counter(
        {"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1}
    )
    assert fetch(url) == data


@pytest.mark.parametrize("private", ["0", "1"])
def test_url_makes_no_request(requests_made, env, private):
    env(KEYED_STORAGE_PRIVATE=private)
    counter = Counter()
    backend().client.meta.events.register("before-send.s3", lambda **kw: counter.update(["request"]))
    storage = KeyedStorage()
    for i in range(1000):
        storage.url(f"events/{i}/logo/x.png")
    assert counter == Counter()


# Forking while threads run (moto's server, the eight client threads) is the point here: it is
# what a pre-fork server such as gunicorn does with an app already loaded. Python 3.12+ warns
# that the child may deadlock; the child only reads an attribute and writes to a pipe.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_one_client_per_process_shared_by_threads_and_renewed_after_fork(s3):
    backend_ = backend()
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(backend_.client)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in clients}) == 1
    parent = backend_.client

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker would be
        try:
            fresh = backend_.client is not parent and backend_.client is backend_.client
            os.write(write, b"fresh" if fresh else b"same")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"fresh"


# SigV4: keyed_storage's presigned links equal botocore's, byte for byte ----------------------

KEYS = ["users/1/a b.png", "users/1/plus+sign.png", "users/1/hash#q?.png", "users/1/Zoë/日本.png", "x"]


def botocore_url(*, bucket, key, region, endpoint, token, expires, style):
    client = boto3.session.Session(
        aws_access_key_id=TEST_KEY, aws_secret_access_key=TEST_SECRET, aws_session_token=token
    ).client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": style}),
    )
    return client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
    )


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEBY+token/with=odd&chars"])
@pytest.mark.parametrize(
    ("bucket", "region", "endpoint", "style"),
    [
        ("media-bucket", None, None, "virtual"),
        ("media-bucket", "eu-west-1", None, "virtual"),
        ("media.example.org", "ap-south-1", None, "path"),
        ("media-bucket", "us-east-1", "http://127.0.0.1:9000", "path"),
    ],
)
def test_presigned_links_equal_botocores(monkeypatch, env, key, token, bucket, region, endpoint, style):
    freeze_botocore_clock(monkeypatch)
    variables = {
        "BUCKET_NAME": bucket,
        "AWS_KEY": TEST_KEY,
        "AWS_SECRET": TEST_SECRET,
        "KEYED_STORAGE_PRIVATE": "1",
    }
    variables["KEYED_STORAGE_URL_EXPIRES"] = "900"
    if region:
        variables["AWS_REGION"] = region
    if endpoint:
        variables["AWS_ENDPOINT_URL_S3"] = endpoint
    if token:
        variables["AWS_SESSION_TOKEN"] = token
    env(**variables)
    monkeypatch.setattr(time, "time", lambda: FROZEN.timestamp())
    ours = KeyedStorage().url(key)
    monkeypatch.undo()  # botocore's turn, with the same frozen clock
    freeze_botocore_clock(monkeypatch)
    theirs = botocore_url(
        bucket=bucket,
        key=key,
        region=region or "us-east-1",
        endpoint=endpoint,
        token=token,
        expires=900,
        style=style,
    )
    assert (
        parse_qs(urlsplit(ours).query)["X-Amz-Signature"]
        == parse_qs(urlsplit(theirs).query)["X-Amz-Signature"]
    )
    assert ours == theirs


@pytest.mark.django_db(transaction=True)
def test_rendering_1000_saved_images_makes_no_request(requests_made):
    from events.models import Speaker

    event = Event.objects.create(name="Con")
    photo = png_bytes(40, 30)
    # Rows as saved photos leave them: name, width and height in the row (bulk_create for speed).
    Speaker.objects.bulk_create(
        Speaker(
            event=event,
            name=f"S{i}",
            photo=f"events/{event.pk}/speakers/{i}/photo/t/p.png",
            photo_width=400,
            photo_height=300,
        )
        for i in range(999)
    )
    saved = Speaker.objects.create(event=event, name="Real", photo=SimpleUploadedFile("p.png", photo))
    assert (saved.photo_width, saved.photo_height) == (40, 30)
    requests_made.clear()
    rendered = [
        (speaker.photo.url, speaker.photo_width, speaker.photo_height)
        for speaker in Speaker.objects.filter(event=event)
    ]
    assert len(rendered) == 1000
    assert requests_made == Counter()
    real = next(row for row in rendered if row[1] == 40)
    assert fetch(real[0]) == photo


@pytest.mark.django_db(transaction=True)
def test_deleting_an_image_with_variants_is_one_listing_and_one_batched_delete(requests_made, s3):
    from ..image_helpers import encode, halves, image_model

    with image_model() as Picture:
        row = Picture.objects.create(image=SimpleUploadedFile("a.png", encode(halves(400, 300), "PNG")))
        stored = {row.image.name, *(row.image.variant(name).name for name in row.image.variants())}
        assert len(stored) >= 3 and set(s3.keys()) == stored
        requests_made.clear()
        row.delete()
        assert requests_made == Counter({"ListObjectsV2": 1, "DeleteObjects": 1})
        assert s3.keys() == []
