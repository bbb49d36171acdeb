"""A direct-upload ticket in S3 is enforced by the S3 server itself: its signed POST policy.

moto's server stores whatever a POST sends, so these tests need a server that checks POST
policies as AWS does: SeaweedFS (KEYED_STORAGE_TEST_S3=seaweedfs). On moto they are skipped,
with that reason in the summary. The local endpoint's side of the same rules is in
test_direct_endpoint.py.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests

from keyed_storage import KeyedStorage, backends, config
from keyed_storage.direct.tickets import finish_upload, start_upload
from keyed_storage.exceptions import FileRefused
from keyed_storage.keys import FinishedName

from ..helpers import fetch, wav_bytes

pytestmark = pytest.mark.seaweedfs_only("moto's server stores any POST: it does not check POST policies")

KEY = "events/7/sessions/3/audio"
DATA = wav_bytes(4000)


@pytest.fixture
def ticket(s3):
    return start_upload(KEY, filename="talk.wav", size=len(DATA), content_type="audio/wav")


def send(ticket, fields: dict[str, str], data: bytes = DATA) -> requests.Response:
    return requests.post(ticket.url, data=fields, files={"file": ("talk.wav", data)}, timeout=30)


def test_the_ticket_as_given_is_accepted(s3, ticket):
    response = send(ticket, ticket.fields)
    assert response.status_code == 204, response.text
    assert finish_upload(ticket.reference, key=KEY) == ticket.name
    assert fetch(KeyedStorage().url(ticket.name)) == DATA


@pytest.mark.parametrize("name", [f"{KEY}/x/evil.html", "users/1/avatar/x/me.png", "elsewhere"])
def test_a_ticket_cannot_write_another_name(s3, ticket, name):
    response = send(ticket, {**ticket.fields, "key": name})
    assert response.status_code == 403, response.text
    assert s3.keys() == []


def test_more_bytes_than_the_ticket_admits_are_refused(s3, ticket):
    response = send(ticket, ticket.fields, DATA + b"\0")
    assert response.status_code == 400, response.text
    assert "EntityTooLarge" in response.text
    assert s3.keys() == []


def test_fewer_bytes_than_the_ticket_admits_are_refused(s3, ticket):
    response = send(ticket, ticket.fields, DATA[:-1])
    assert response.status_code == 400, response.text
    assert s3.keys() == []


def test_the_pending_headers_cannot_be_changed(s3, ticket):
    response = send(ticket, {**ticket.fields, "Content-Disposition": "inline"})
    assert response.status_code == 403, response.text
    assert s3.keys() == []


def test_a_tampered_policy_is_refused(s3, ticket):
    policy = json.loads(base64.b64decode(ticket.fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not isinstance(c, list)]  # no size limit
    tampered = base64.b64encode(json.dumps(policy).encode()).decode()
    response = send(ticket, {**ticket.fields, "policy": tampered}, DATA * 3)
    assert response.status_code == 403, response.text
    assert s3.keys() == []


def test_an_expired_ticket_is_refused(s3):
    import datetime

    import botocore.signers

    # boto3 dates the policy's expiration from this clock: issue the ticket as if an hour ago.
    now = botocore.signers.get_current_datetime
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            botocore.signers, "get_current_datetime", lambda: now() - datetime.timedelta(seconds=3601)
        )
        old = start_upload(KEY, filename="talk.wav", size=len(DATA), content_type="audio/wav")
    response = send(old, old.fields)
    assert response.status_code == 403, response.text
    assert "expired" in response.text.lower()
    assert s3.keys() == []


def test_an_object_replaced_while_it_is_checked_is_refused(s3, ticket):
    """The copy that presents the object is conditional on the ETag whose bytes were read:
    another POST with the same ticket between the check and the copy cannot slip through."""
    assert send(ticket, ticket.fields).status_code == 204
    client = backends.for_config(config.current()).client

    def replace_first(request, **kwargs):
        client.meta.events.unregister("before-send.s3.CopyObject", replace_first)
        s3.client.put_object(Bucket=s3.bucket, Key=ticket.fields["key"], Body=b"\0" * len(DATA))

    client.meta.events.register("before-send.s3.CopyObject", replace_first)
    try:
        with pytest.raises(FileRefused) as refused:
            finish_upload(ticket.reference)
    finally:
        client.meta.events.unregister("before-send.s3.CopyObject", replace_first)
    assert refused.value.code == "direct_changed"
    assert s3.keys() == []


def _copy_takes_if_none_match() -> bool:
    import botocore.session

    copy = botocore.session.get_session().get_service_model("s3").operation_model("CopyObject")
    return "IfNoneMatch" in copy.input_shape.members


@pytest.mark.skipif(
    not _copy_takes_if_none_match(),
    reason="this botocore sends no If-None-Match with CopyObject (1.35, the lowest supported); "
    "finish_upload()'s HEAD of the name is then the only guard",
)
def test_a_published_name_is_never_written_twice(s3, ticket):
    """The copy that publishes is create-only (If-None-Match: *): if the published name
    appeared between the check and the copy (a finish of the same reference in another
    process), this finish keeps what is there, removes the upload, and claims nothing."""
    assert send(ticket, ticket.fields).status_code == 204
    client = backends.for_config(config.current()).client
    there_first = b"\1" * len(DATA)

    def publish_first(request, **kwargs):
        client.meta.events.unregister("before-send.s3.CopyObject", publish_first)
        s3.client.put_object(Bucket=s3.bucket, Key=ticket.name, Body=there_first)

    client.meta.events.register("before-send.s3.CopyObject", publish_first)
    try:
        name = finish_upload(ticket.reference)
    finally:
        client.meta.events.unregister("before-send.s3.CopyObject", publish_first)
    assert name == ticket.name and not isinstance(name, FinishedName)
    assert s3.body(ticket.name) == there_first
    assert s3.keys() == [ticket.name]
