"""Multipart direct uploads (keyed_storage.multipart): parts PUT over HTTP, resumed, completed, aborted.

The client here is what a browser does, with a plain HTTP client over 127.0.0.1: ask for part
URLs, PUT each part's bytes to its URL, ask which parts are stored, hand the reference back.
Both modes: S3 on moto's server (and again on SeaweedFS, which also checks the signatures of
part URLs: the seaweedfs_only tests) and the local endpoint on the live server. Parts are
5 MiB, S3's smallest (moto refuses smaller ones when completing), so a file of three parts is
about 11 MiB.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from keyed_storage import KeyedStorage, backends, config
from keyed_storage.direct.multipart import (
    MAX_PARTS,
    abort_upload,
    part_size_for,
    part_urls,
    uploaded_parts,
)
from keyed_storage.direct.tickets import finish_upload, open_reference, start_upload
from keyed_storage.exceptions import FileRefused, ReferenceRefused, UploadMissing
from keyed_storage.keys import PARTS_DIRECTORY, validate_key

from ..helpers import fetch, wav_bytes

KEY = "events/7/sessions/3/video"
MIB = 1024 * 1024
PART = 5 * MIB
SIZE = 2 * PART + 654_321  # three parts: 5 MiB, 5 MiB and what is left
DATA = os.urandom(SIZE)


@pytest.fixture(autouse=True)
def small_parts(env):
    """Uploads of 5 MiB or more go in parts of 5 MiB (S3's smallest), so the tests stay small."""
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(PART), KEYED_STORAGE_DIRECT_PART_SIZE=str(PART))


def start(data: bytes = DATA, **kwargs):
    return start_upload(KEY, filename="talk.mp4", size=len(data), content_type="video/mp4", **kwargs)


def part_of(data: bytes, number: int) -> bytes:
    return data[(number - 1) * PART : number * PART]


def put(url: str, body: bytes) -> requests.Response:
    return requests.put(url, data=body, timeout=60)


def send_parts(ticket, numbers, data: bytes = DATA) -> None:
    for number, url in part_urls(ticket.reference, numbers).items():
        response = put(url, part_of(data, number))
        assert response.status_code == 200, f"part {number}: {response.status_code} {response.text[:300]}"


def stored_numbers(ticket) -> list[tuple[int, int]]:
    return [(part.number, part.size) for part in uploaded_parts(ticket.reference)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(mode: str, s3=None) -> list:
    """What storage keeps of multipart uploads not completed: S3's own list, or the parts directory."""
    if mode == "s3":
        return s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    root = os.path.join(config.current().media_root, PARTS_DIRECTORY)
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


@pytest.fixture
def s3_or_none(mode, request):
    return request.getfixturevalue("s3") if mode == "s3" else None


# The round trip, in both modes -------------------------------------------------------------


def test_a_large_upload_goes_in_parts_and_is_stored_whole(mode, s3_or_none):
    ticket = start()
    assert (ticket.part_size, ticket.parts, ticket.url, ticket.fields) == (PART, 3, "", {})
    assert len(leftovers(mode, s3_or_none)) == 1

    send_parts(ticket, [3, 1, 2])  # in any order, as parallel requests arrive
    assert stored_numbers(ticket) == [(1, PART), (2, PART), (3, SIZE - 2 * PART)]

    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)
    assert leftovers(mode, s3_or_none) == []
    # Finishing again changes nothing and gives the same name.
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)


def test_below_the_threshold_an_upload_is_one_post(mode):
    ticket = start(DATA[: PART - 1])
    assert (ticket.part_size, ticket.parts) == (0, 0)
    assert ticket.url and ticket.fields
    with pytest.raises(ReferenceRefused, match="one request, not in parts"):
        part_urls(ticket.reference, [1])


def s3_requests(run) -> list[str]:
    """The S3 operations (CopyObject, HeadObject...) `run()` sends through the site's client, in order."""
    seen: list[str] = []

    def count(request, **kwargs):
        seen.append(kwargs["event_name"].rsplit(".", 1)[-1])

    client = backends.for_config(config.current()).client
    client.meta.events.register("before-send.s3", count)
    try:
        run()
    finally:
        client.meta.events.unregister("before-send.s3", count)
    return seen


def test_the_parts_are_sent_for_the_published_name_with_its_headers(s3):
    """No upload name of its own: the multipart upload is ticket.name's, begun with the headers
    a save of a talk.mp4 gets, so completing it publishes the file."""
    ticket = start()
    grant = open_reference(ticket.reference, "")
    (upload,) = s3.client.list_multipart_uploads(Bucket=s3.bucket)["Uploads"]
    assert (upload["Key"], upload["UploadId"]) == (ticket.name, grant.upload_id)
    send_parts(ticket, [1, 2, 3])
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert s3.keys() == [ticket.name]
    stored = s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)
    assert (stored["ContentType"], stored["CacheControl"]) == ("video/mp4", config.current().cache_control)
    assert "ContentDisposition" not in stored


@pytest.mark.parametrize("parts", [3, 5])
def test_finishing_copies_nothing_and_costs_the_same_requests_whatever_the_size(s3, parts):
    """The publish used to copy every byte (CopyObject, UploadPartCopy above 5 GiB) inside the
    finishing request. Now: no copy, and the same requests for 3 parts as for 5 (ListParts
    lists 1,000 parts a page, so up to 10 GB at the default 16 MiB parts, at least)."""
    data = os.urandom((parts - 1) * PART + 1234)
    ticket = start(data)
    send_parts(ticket, range(1, parts + 1), data)
    sent = s3_requests(lambda: finish_upload(ticket.reference, key=KEY))
    assert sent == ["ListParts", "CompleteMultipartUpload", "HeadObject", "GetObject", "HeadObject"]
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(data)


def test_no_part_url_can_write_the_published_name_once_finished(mode):
    """Part URLs are for one upload id, which takes no part once completed: what was checked stays."""
    ticket = start()
    urls = part_urls(ticket.reference, [1, 2, 3])
    for number, url in urls.items():
        assert put(url, part_of(DATA, number)).status_code == 200
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    # NoSuchUpload (404) from S3 and SeaweedFS, a 500 from moto, 404 from the local endpoint.
    assert put(urls[1], os.urandom(PART)).status_code >= 400
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)
    # And finishing again checks the same object, and says it is not this finish's own.
    assert finish_upload(ticket.reference, key=KEY) == ticket.name


def test_bytes_that_call_for_other_headers_than_the_name_get_them(s3):
    """A talk.mp4 that is an HTML page was started as video/mp4; its bytes make it an
    attachment, which S3 can only give it by a copy (onto itself, of the checked ETag)."""
    data = b"<html><script>alert(1)</script>" + DATA[32:]
    ticket = start(data)
    send_parts(ticket, [1, 2, 3], data)
    sent = s3_requests(lambda: finish_upload(ticket.reference, key=KEY))
    assert sent.count("CopyObject") == 1
    stored = s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)
    assert (stored["ContentType"], stored.get("ContentDisposition")) == ("text/html", "attachment")
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(data)
    assert s3.keys() == [ticket.name]


def test_two_finishes_at_once_both_get_the_file(s3, monkeypatch):
    """A second finish that gives the object its headers (a copy: a new ETag) while the first
    is checking it is no reason for the first to remove it."""
    data = b"%PDF-1.7\n" + DATA[9:]  # a PDF called talk.mp4: settled by a copy
    ticket = start(data)
    send_parts(ticket, [1, 2, 3], data)
    backend = backends.for_config(config.current())
    settle = backend.settle
    inner: list[str] = []

    def settle_after_another_finish(*args, **kwargs):
        if not inner:
            inner.append("running")
            inner[0] = finish_upload(ticket.reference, key=KEY)  # runs to its end first
        return settle(*args, **kwargs)

    monkeypatch.setattr(backend, "settle", settle_after_another_finish)
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert inner == [ticket.name]
    assert s3.keys() == [ticket.name]
    assert s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)["ContentType"] == "application/pdf"
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(data)


def test_a_refused_multipart_upload_is_removed(mode, s3_or_none):
    data = b"%PDF-1.7\n" + DATA[9:]  # a PDF called talk.mp4
    ticket = start(data, accept="video/*")
    send_parts(ticket, [1, 2, 3], data)
    with pytest.raises(FileRefused) as refused:
        finish_upload(ticket.reference)
    assert refused.value.code == "file_type"
    assert KeyedStorage().exists(ticket.name) is False
    assert leftovers(mode, s3_or_none) == []
    with pytest.raises(UploadMissing):
        finish_upload(ticket.reference)


def test_a_large_photo_sent_in_parts_loses_its_location_as_in_a_save(mode):
    """Completed under its published name, the photo is replaced there by its cleaned bytes."""
    from PIL import Image

    from ..image_helpers import encode, halves

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    data = encode(halves(200, 100), "JPEG", exif=exif.tobytes())
    data += os.urandom(PART + 1 - len(data))  # two parts; bytes after the picture's end are kept by none
    ticket = start_upload(KEY, filename="me.jpg", size=len(data), content_type="image/jpeg")
    assert ticket.parts == 2
    send_parts(ticket, [1, 2], data)
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    served = requests.get(KeyedStorage().url(ticket.name), timeout=10)
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.content.startswith(b"\xff\xd8\xff") and b"PhoneMaker" not in served.content
    assert KeyedStorage().listdir(KEY)[0] == [ticket.name.split("/")[-2]]


# Resuming ------------------------------------------------------------------------------------


def test_after_an_interruption_the_stored_parts_are_listed_and_only_the_rest_is_sent(mode):
    ticket = start()
    assert stored_numbers(ticket) == []
    send_parts(ticket, [1, 2])
    # The connection drops; the client (a reloaded page, another process) asks what is there.
    assert stored_numbers(ticket) == [(1, PART), (2, PART)]
    send_parts(ticket, [3])
    assert finish_upload(ticket.reference) == ticket.name
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)


def test_a_part_sent_again_replaces_the_first_copy(mode):
    ticket = start()
    send_parts(ticket, [1, 2, 3])
    send_parts(ticket, [2])
    assert stored_numbers(ticket) == [(1, PART), (2, PART), (3, SIZE - 2 * PART)]
    finish_upload(ticket.reference)
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)


def test_finishing_with_a_part_missing_is_refused_and_the_upload_can_still_resume(mode):
    ticket = start()
    send_parts(ticket, [1, 3])
    with pytest.raises(FileRefused, match="1 of 3 parts are missing") as refused:
        finish_upload(ticket.reference)
    assert refused.value.code == "direct_incomplete"
    assert stored_numbers(ticket) == [(1, PART), (3, SIZE - 2 * PART)]
    send_parts(ticket, [2])
    assert finish_upload(ticket.reference) == ticket.name
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(DATA)


@pytest.mark.moto_only("SeaweedFS refuses the short PUT itself (its signature covers the length)")
def test_a_part_of_the_wrong_size_is_refused_when_finishing(s3):
    ticket = start()
    urls = part_urls(ticket.reference, [1, 2, 3])
    for number in (1, 2):
        assert put(urls[number], part_of(DATA, number)).status_code == 200
    assert put(urls[3], b"short").status_code == 200  # moto checks no signature
    with pytest.raises(FileRefused, match="Part 3 of the file does not have the size"):
        finish_upload(ticket.reference)
    assert s3.keys() == []


# Aborting ------------------------------------------------------------------------------------


def test_an_aborted_upload_leaves_no_part_behind(mode, s3_or_none):
    ticket = start()
    send_parts(ticket, [1, 2])
    abort_upload(ticket.reference)
    assert leftovers(mode, s3_or_none) == []
    with pytest.raises(UploadMissing):
        uploaded_parts(ticket.reference)
    with pytest.raises(UploadMissing):
        finish_upload(ticket.reference)
    abort_upload(ticket.reference)  # twice is harmless
    if mode == "local":
        assert os.listdir(config.current().media_root) == [PARTS_DIRECTORY]  # and it is empty
        assert os.listdir(os.path.join(config.current().media_root, PARTS_DIRECTORY)) == []


def test_incomplete_uploads_are_listed_for_an_audit(mode):
    backend = backends.for_config(config.current())
    ticket = start()
    (found,) = list(backend.incomplete_uploads())
    assert found[:2] == (ticket.name, open_reference(ticket.reference, "").upload_id)
    abort_upload(ticket.reference)
    assert list(backend.incomplete_uploads()) == []


# What a part URL admits --------------------------------------------------------------------


def test_part_numbers_are_those_of_the_upload(mode):
    ticket = start()
    for wrong in (0, 4, "1", True):
        with pytest.raises(ValueError, match=r"Part numbers of this upload are 1 to 3"):
            part_urls(ticket.reference, [wrong])


def test_part_urls_are_bound_as_the_reference_is(mode):
    ticket = start(bound_to="profile:1")
    with pytest.raises(ReferenceRefused):
        part_urls(ticket.reference, [1], bound_to="profile:2")
    with pytest.raises(ReferenceRefused):
        abort_upload(ticket.reference)
    assert list(part_urls(ticket.reference, [1], bound_to="profile:1")) == [1]


def test_the_local_endpoint_takes_exactly_the_part_its_url_names(local):
    ticket = start()
    url = part_urls(ticket.reference, [3])[3]
    last = part_of(DATA, 3)
    assert put(url, last[:-1]).status_code == 400
    assert put(url, last + b"x").status_code == 400
    assert requests.post(url, data=last, timeout=30).status_code == 405
    path = urlsplit(url).path
    tampered = url.replace(path, path[:-6] + ("A" if path[-6] != "A" else "B") + path[-5:])
    assert put(tampered, last).status_code == 403
    assert stored_numbers(ticket) == []
    assert put(url, last).status_code == 200
    assert stored_numbers(ticket) == [(3, len(last))]


def test_the_local_endpoint_refuses_parts_of_an_aborted_upload(local):
    ticket = start()
    url = part_urls(ticket.reference, [1])[1]
    abort_upload(ticket.reference)
    response = put(url, part_of(DATA, 1))
    assert response.status_code == 404
    assert "finished or cancelled" in response.text
    assert leftovers("local") == []


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.seaweedfs_only("moto accepts any signature; SeaweedFS checks part URLs as S3 does")
def test_s3_checks_what_a_part_url_was_signed_for(s3):
    ticket = start()
    other = start()
    url = part_urls(ticket.reference, [1])[1]
    other_id = open_reference(other.reference, "").upload_id
    body = part_of(DATA, 1)
    refused = {
        "another upload": _with_query(url, uploadId=other_id),
        "another part": _with_query(url, partNumber="2"),
        "a changed signature": _with_query(url, **{"X-Amz-Signature": "0" * 64}),
    }
    for what, changed in refused.items():
        assert put(changed, body).status_code == 403, what
    # Content-Length is signed: the part's size and no other.
    assert put(url, body[:-1]).status_code == 403
    assert stored_numbers(ticket) == []
    assert stored_numbers(other) == []
    assert put(url, body).status_code == 200
    assert stored_numbers(ticket) == [(1, PART)]


# Settings and names --------------------------------------------------------------------------


def test_the_part_size_grows_so_no_upload_needs_more_than_10000_parts():
    current = config.current()
    assert part_size_for(PART - 1, current) == 0
    assert part_size_for(PART, current) == PART
    huge = 200 * 1024 * MIB  # 200 GiB
    part = part_size_for(huge, current)
    assert part % MIB == 0
    assert -(-huge // part) <= MAX_PARTS
    assert -(-huge // (part - MIB)) > MAX_PARTS


@pytest.mark.parametrize(
    "variable", ["KEYED_STORAGE_DIRECT_PART_SIZE", "KEYED_STORAGE_DIRECT_PART_THRESHOLD"]
)
@pytest.mark.parametrize("value", ["1048576", "6G", str(6 * 1024 * MIB)])
def test_part_settings_outside_s3s_limits_are_refused_naming_the_variable(env, variable, value):
    env(**{variable: value})
    with pytest.raises(ImproperlyConfigured, match=rf"{variable}={value!r} is not a whole number of bytes"):
        config.current()


def test_the_defaults_are_64_mib_and_parts_of_16_mib(env):
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=None, KEYED_STORAGE_DIRECT_PART_SIZE=None)
    current = config.current()
    assert (current.direct_part_threshold, current.direct_part_size) == (64 * MIB, 16 * MIB)


def test_no_key_names_the_parts_directory(local):
    with pytest.raises(Exception, match="holds the parts of uploads in progress"):
        validate_key(f"{PARTS_DIRECTORY}/0123/1")
    ticket = start()
    send_parts(ticket, [1])
    backend = backends.for_config(config.current())
    assert list(backend.inventory()) == []
    assert list(backend.stored_objects()) == []  # what the orphans audit walks
    assert backend.listdir("") == ([], [])


# Through the site's views, as direct.js uses them -------------------------------------------


RECORDING = wav_bytes(SIZE // 2)  # a real WAV of about 11 MiB: the demo's audio field checks the type


def _views_session():
    from events.models import Event, Session

    event = Event.objects.create(name="Parts Con")
    return Session.objects.create(event=event, title="Keynote")


def _token(client, session) -> str:
    page = client.get(f"/admin/events/session/{session.pk}/change/").content.decode()
    found = re.search(r'<input type="hidden" name="audio-token" value="([^"]*)"', page)
    assert found, "no field token on the change form"
    return html.unescape(found.group(1))


@pytest.fixture
def editor_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("editor", "editor@example.org", "pw"))
    return client


def test_the_widgets_views_resume_a_multipart_upload_and_the_form_saves_it(
    mode, editor_client, django_capture_on_commit_callbacks
):
    session = _views_session()
    token = _token(editor_client, session)
    asked = editor_client.post(
        "/keyed-storage/ticket/",
        {"token": token, "filename": "talk.wav", "size": str(len(RECORDING)), "content_type": "audio/wav"},
    )
    assert asked.status_code == 200, asked.content
    ticket = asked.json()
    assert set(ticket) == {"reference", "part_size", "parts", "part_urls", "uploaded_parts", "abort"}
    assert (ticket["part_size"], ticket["parts"]) == (PART, 3)
    mine = {"token": token, "reference": ticket["reference"]}

    urls = editor_client.post(ticket["part_urls"], {**mine, "numbers": "1,2"}).json()["urls"]
    assert sorted(urls) == ["1", "2"]
    for number, url in urls.items():
        assert put(url, part_of(RECORDING, int(number))).status_code == 200
    listed = editor_client.post(ticket["uploaded_parts"], mine)
    assert listed.json() == {"parts": [[1, PART], [2, PART]]}

    urls = editor_client.post(ticket["part_urls"], {**mine, "numbers": "3"}).json()["urls"]
    assert put(urls["3"], part_of(RECORDING, 3)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        saved = editor_client.post(
            f"/admin/events/session/{session.pk}/change/",
            {
                "event": session.event_id,
                "title": session.title,
                "_save": "Save",
                "audio-reference": mine["reference"],
            },
        )
    assert saved.status_code == 302, saved.content.decode()[-2000:]
    session.refresh_from_db()
    assert sha256(fetch(session.audio.url)) == sha256(RECORDING)


def test_the_widgets_views_answer_only_for_this_users_binding(mode, editor_client, client, django_user_model):
    session = _views_session()
    token = _token(editor_client, session)
    ticket = editor_client.post(
        "/keyed-storage/ticket/",
        {"token": token, "filename": "talk.wav", "size": str(len(RECORDING)), "content_type": "audio/wav"},
    ).json()
    mine = {"token": token, "reference": ticket["reference"]}

    other = Client()
    other.force_login(django_user_model.objects.create_superuser("other", "other@example.org", "pw"))
    other_token = _token(other, session)  # the same field and row, another user
    for url in (ticket["part_urls"], ticket["uploaded_parts"], ticket["abort"]):
        answer = other.post(url, {"token": other_token, "reference": ticket["reference"], "numbers": "1"})
        assert answer.status_code == 400, url
        assert answer.json()["code"] == "direct_reference"
        assert other.post(url, {**mine, "numbers": "1"}).status_code == 403  # a token not theirs
        assert Client().post(url, {**mine, "numbers": "1"}).status_code == 403  # signed out

    for numbers in ("", "0", "4", "1,x", ",".join(["1"] * 101)):
        answer = editor_client.post(ticket["part_urls"], {**mine, "numbers": numbers})
        assert answer.status_code == 400, numbers

    assert editor_client.post(ticket["abort"], mine).json() == {}
    gone = editor_client.post(ticket["uploaded_parts"], mine)
    assert (gone.status_code, gone.json()["code"]) == (400, "direct_missing")


def test_the_widgets_views_want_the_csrf_token(mode, django_user_model):
    session = _views_session()
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("editor", "editor@example.org", "pw"))
    token = _token(client, session)
    csrf = {"X-CSRFToken": client.cookies["csrftoken"].value}
    ticket = client.post(
        "/keyed-storage/ticket/",
        {"token": token, "filename": "talk.wav", "size": str(len(RECORDING)), "content_type": "audio/wav"},
        headers=csrf,
    ).json()
    mine = {"token": token, "reference": ticket["reference"]}
    assert client.post(ticket["uploaded_parts"], mine).status_code == 403
    assert client.post(ticket["uploaded_parts"], mine, headers=csrf).status_code == 200


# Part URLs are SigV4 as botocore signs them ----------------------------------------------------


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEBY+token/with=odd&chars"])
@pytest.mark.parametrize(
    ("bucket", "region", "endpoint", "style"),
    [
        ("media-bucket", "eu-west-1", None, "virtual"),
        ("media.example.org", "ap-south-1", None, "path"),
        ("media-bucket", "us-east-1", "http://127.0.0.1:9000", "path"),
    ],
)
def test_part_urls_equal_botocores_with_the_content_length_signed(
    monkeypatch, env, token, bucket, region, endpoint, style
):
    import time

    import boto3
    from botocore.config import Config as BotoConfig

    from ..core.test_performance_contracts import FROZEN, freeze_botocore_clock
    from ..helpers import TEST_KEY, TEST_SECRET

    variables = {"BUCKET_NAME": bucket, "AWS_KEY": TEST_KEY, "AWS_SECRET": TEST_SECRET, "AWS_REGION": region}
    if endpoint:
        variables["AWS_ENDPOINT_URL_S3"] = endpoint
    if token:
        variables["AWS_SESSION_TOKEN"] = token
    env(**variables)
    name, upload_id = "events/7/Zoë's talk/0661290e4f8c1b2a/Q&A #2+notes.mp4", "2~abc/def+ghi=="
    monkeypatch.setattr(time, "time", lambda: FROZEN.timestamp())
    ours = backends.for_config(config.current()).part_url(name, upload_id, 7, size=PART, expires=900)
    monkeypatch.undo()
    freeze_botocore_clock(monkeypatch)
    client = boto3.session.Session(
        aws_access_key_id=TEST_KEY, aws_secret_access_key=TEST_SECRET, aws_session_token=token
    ).client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": style}),
    )
    theirs = client.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": name, "UploadId": upload_id, "PartNumber": 7, "ContentLength": PART},
        ExpiresIn=900,
    )
    ours_parts, theirs_parts = urlsplit(ours), urlsplit(theirs)
    assert ours_parts._replace(query="") == theirs_parts._replace(query="")
    assert dict(parse_qsl(ours_parts.query)) == dict(parse_qsl(theirs_parts.query))
    assert dict(parse_qsl(ours_parts.query))["X-Amz-SignedHeaders"] == "content-length;host"


def test_headers_of_an_object_beyond_copyobject_s_limit_are_changed_by_a_multipart_copy(s3, monkeypatch):
    """CopyObject copies at most 5 GiB and a multipart upload can be larger: above the limit
    new headers are given by a copy of ranges (UploadPartCopy, each If-Match the checked ETag).
    The limit is lowered here so that 11 MiB crosses it."""
    from keyed_storage.backends import s3 as s3_backend

    monkeypatch.setattr(s3_backend.direct, "COPY_LIMIT", PART)
    monkeypatch.setattr(s3_backend.direct, "COPY_PART", PART)
    data = b"%PDF-1.7\n" + DATA[9:]  # a PDF called talk.mp4
    ticket = start(data)
    send_parts(ticket, [1, 2, 3], data)
    seen = s3_requests(lambda: finish_upload(ticket.reference, key=KEY))
    assert "CopyObject" not in seen
    assert seen.count("UploadPartCopy") == 3
    assert sha256(fetch(KeyedStorage().url(ticket.name))) == sha256(data)
    stored = s3.client.head_object(Bucket=s3.bucket, Key=ticket.name)
    assert (stored["ContentType"], stored["CacheControl"]) == (
        "application/pdf",
        config.current().cache_control,
    )
    assert s3.keys() == [ticket.name]
    assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []
