"""Signed values already handed out keep working (keyed_storage.signed): a reference, a disk
ticket, a part ticket or a field token made by the code before the typed objects opens with
the new code, and the new code writes the same payload on the wire.

The "old" tokens below are made exactly as the earlier code made them: signing.dumps of a dict
with single-letter keys, under the same salts."""

from __future__ import annotations

import pytest
from django.core import signing

from keyed_storage.backends.local import LocalBackend, TicketRefused
from keyed_storage.direct.tickets import open_reference
from keyed_storage.exceptions import ReferenceRefused
from keyed_storage.signed import DiskPartTicket, DiskTicket, FieldToken, Invalid, UploadReference

UPLOAD = "events/7/sessions/3/audio/0661a1b2c3d4e5f60718293a4b5c6d7e/talk.wav"
KEY = "events/7/sessions/3/audio"


def payload_of(token: str) -> str:
    """The signed payload, without the timestamp and signature that follow it."""
    return token.rsplit(":", 2)[0]


def old_reference(bound_to: str, **extra: object) -> str:
    payload = {"n": UPLOAD, "k": KEY, "s": 1234, "m": 5000, "a": ["audio/*"], "c": "audio/wav", **extra}
    return signing.dumps(payload, salt=f"keyed_storage.direct.reference:{bound_to}", compress=True)


@pytest.mark.parametrize("bound_to", ["", "profile:42"])
def test_a_reference_made_by_the_old_code_opens(bound_to):
    grant = open_reference(old_reference(bound_to), bound_to)
    assert grant == UploadReference(UPLOAD, KEY, 1234, 5000, ("audio/*",), "audio/wav")
    assert grant.upload_id is None and grant.part_size is None


def test_a_multipart_reference_made_by_the_old_code_opens():
    grant = open_reference(old_reference("", u="abc123", p=8 * 1024 * 1024), "")
    assert (grant.upload_id, grant.part_size) == ("abc123", 8 * 1024 * 1024)


def test_an_old_reference_without_limits_opens():
    token = signing.dumps(
        {"n": UPLOAD, "k": KEY, "s": 10, "m": None, "a": None, "c": None},
        salt="keyed_storage.direct.reference:",
        compress=True,
    )
    assert open_reference(token, "") == UploadReference(UPLOAD, KEY, 10, None, None, None)


@pytest.mark.parametrize("extra", [{}, {"u": "abc123", "p": 6 * 1024 * 1024}], ids=["post", "multipart"])
def test_a_reference_is_written_as_before(extra):
    new = UploadReference(
        UPLOAD, KEY, 1234, 5000, ("audio/*",), "audio/wav", extra.get("u"), extra.get("p")
    ).sign(binding="")
    assert payload_of(new) == payload_of(old_reference("", **extra))


def test_an_old_reference_is_still_bound():
    with pytest.raises(ReferenceRefused) as refused:
        open_reference(old_reference("profile:42"), "profile:7")
    assert refused.value.code == "direct_reference"


def test_a_disk_ticket_made_by_the_old_code_opens_and_is_written_as_before():
    old = signing.dumps(
        {"n": UPLOAD, "s": 1234}, salt="keyed_storage.backends.local.direct-ticket", compress=True
    )
    assert LocalBackend.open_ticket(old, 60) == DiskTicket(UPLOAD, 1234)
    assert payload_of(DiskTicket(UPLOAD, 1234).sign()) == payload_of(old)


def test_a_part_ticket_made_by_the_old_code_opens_and_is_written_as_before():
    old = signing.dumps(
        {"n": UPLOAD, "u": "0" * 32, "i": 3, "s": 6 * 1024 * 1024},
        salt="keyed_storage.backends.local.direct-part",
        compress=True,
    )
    assert LocalBackend.open_part_ticket(old, 60) == DiskPartTicket(UPLOAD, "0" * 32, 3, 6 * 1024 * 1024)
    assert payload_of(DiskPartTicket(UPLOAD, "0" * 32, 3, 6 * 1024 * 1024).sign()) == payload_of(old)


def test_a_field_token_made_by_the_old_code_opens_and_is_written_as_before():
    old = signing.dumps(
        {"f": "events.event.logo", "k": "events/7/logo"}, salt="keyed_storage.direct.field:42"
    )
    assert FieldToken.open(old, max_age=60, binding="42") == FieldToken("events.event.logo", "events/7/logo")
    assert payload_of(FieldToken("events.event.logo", "events/7/logo").sign(binding="42")) == payload_of(old)
    with pytest.raises(Invalid):
        FieldToken.open(old, max_age=60, binding="43")  # another user's


def test_one_scheme_never_opens_as_another():
    ticket = DiskTicket(UPLOAD, 1234).sign()
    with pytest.raises(TicketRefused):
        LocalBackend.open_part_ticket(ticket, 60)
    with pytest.raises(ReferenceRefused):
        open_reference(ticket, "")
