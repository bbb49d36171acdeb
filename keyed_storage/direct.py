"""Direct uploads: a client sends a file straight to storage with a ticket, the server checks it after.

start_upload() issues a Ticket for one new object, <key>/<token>/<safe filename>: in S3 a
presigned POST whose signed policy S3 enforces, in local mode a POST to keyed_storage's own
endpoint (keyed_storage.endpoint), which enforces the same limits. Either way the client
POSTs ticket.fields and then the file, in a field named "file", to ticket.url, and hands
ticket.reference back to the server. finish_upload(reference) checks the object as a normal
save checks a file (its size, its type from its first bytes) and gives it the headers a save
would, or removes it and raises a ValidationError.

The reference is signed (django.core.signing, with SECRET_KEY) and carries everything the
check needs, so no database row or cache entry is involved: any process of the site can
finish an upload another one started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing
from django.core.files import File
from django.utils.translation import gettext_lazy as _

from . import backends, config
from .backends import Head
from .caching import cache_control
from .config import Config
from .content import SNIFF_BYTES, identify
from .exceptions import FileRefused, ObjectChanged, ReferenceRefused, UploadMissing
from .keys import FinishedName, fresh_name, validate_key
from .storage import PRIVACY_TYPES, KeyedStorage
from .streams import seekable
from .validators import accepted_patterns, accepted_type, known_type, refuse_size, refuse_type, type_matches

# References are signed with this salt (plus the binding), so no other value the site signs
# (a session, a password-reset token, the local endpoint's ticket) can pass for one.
SALT = "keyed_storage.direct.reference"

# A reference is accepted for twice the ticket's lifetime: an upload that begins just before
# its ticket expires has as long again to arrive and be finished.
REFERENCE_LIFETIMES = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a client needs for one direct upload.

    POST `fields` (all of them, as they are) and then the file, in a multipart field named
    "file", to `url`; then give `reference` back to the server, which passes it to
    finish_upload(). `name` is the object the upload creates; `expires` is when the POST must
    have begun by.
    """

    url: str
    fields: dict[str, str]
    reference: str
    name: str
    expires: datetime
    # A multipart upload (keyed_storage.multipart) has `parts` parts of `part_size` bytes (the
    # last one what is left), no url and no fields: ask multipart.part_urls() for its URLs.
    part_size: int = 0
    parts: int = 0


def start_upload(
    key: str,
    *,
    filename: str,
    size: int,
    content_type: str,
    accept: str | Iterable[str] | None = None,
    max_size: int | None = None,
    bound_to: str = "",
) -> Ticket:
    """A ticket for uploading one file of exactly `size` bytes as <key>/<token>/<filename>.

    `accept` and `max_size` are upload()'s: checked by finish_upload() against the stored
    bytes. Here, a `size` above `max_size`, or a `content_type` claim that names a type
    `accept` refuses, is refused at once (FileTooLarge, FileTypeRefused), before anything
    is sent; a claim never makes a file accepted. `bound_to` ties the reference to a context
    (a form and a user, say f"profile:{request.user.pk}"): finish_upload() must be given the
    same value, or refuses the reference.
    """
    key = validate_key(key)
    size = _bytes("size", size)
    patterns = accepted_patterns(accept) if accept is not None else None
    if max_size is not None:
        max_size = _bytes("max_size", max_size)
        if size > max_size:
            raise refuse_size(size, max_size)
    claim = known_type(content_type)
    if patterns is not None and claim is not None and not type_matches(claim, patterns):
        raise refuse_type(claim, patterns)
    current = config.current()
    name = fresh_name(key, filename)
    payload = {"n": name, "k": key, "s": size, "m": max_size, "a": patterns, "c": claim}
    from .multipart import part_count, part_size_for  # it builds on this module

    part_size = part_size_for(size, current)
    if part_size:
        url, fields = "", dict[str, str]()
        payload["u"] = backends.for_config(current).start_parts(name)
        payload["p"] = part_size
    else:
        url, fields = backends.for_config(current).direct_ticket(
            name, size=size, expires=current.direct_expires
        )
    return Ticket(
        url=url,
        fields=fields,
        reference=signing.dumps(payload, salt=_salt(bound_to), compress=True),
        name=name,
        expires=datetime.now(UTC) + timedelta(seconds=current.direct_expires),
        part_size=part_size,
        parts=part_count(size, part_size) if part_size else 0,
    )


def finish_upload(reference: str, *, key: str | None = None, bound_to: str = "") -> str:
    """Check the object a direct upload stored, present it as a save would, return its name.

    In order: the reference (its signature, its age, its binding, and `key` if given: pass
    it so a reference issued for another key is refused); that the object exists with the
    size the ticket allowed; its type told from its first bytes against `accept` (one ranged
    read, never the whole object). Then it gets the Content-Type, Content-Disposition and
    Cache-Control a save of the same bytes would get (in S3, one server-side copy onto
    itself); a JPEG, PNG or WebP loses its identifying metadata, as in a save, by being
    stored again.

    Raises ReferenceRefused (nothing deleted), or a FileRefused (UploadMissing, FileTooLarge,
    FileTypeRefused) after removing the object. Finishing again returns the same name. Set
    on a model field and saved, the name belongs to that save: a rollback removes the object.
    """
    grant = _load(reference, bound_to)
    if key is not None and validate_key(key) != grant["k"]:
        raise ReferenceRefused(
            _("This upload was made for another place and cannot be used here."), code="direct_key"
        )
    name = validate_key(grant["n"])
    current = config.current()
    backend = backends.for_config(current)
    if "u" in grant:  # a multipart upload: its parts become the object first
        from .multipart import complete

        complete(backend, grant)
    head = backend.head(name)
    if head is None:
        raise UploadMissing(_("The file was not received. Please upload it again."), code="direct_missing")
    try:
        _check(backend, name, head, grant, current)
    except (FileRefused, ObjectChanged) as refused:
        backend.delete(name)
        if isinstance(refused, ObjectChanged):
            raise FileRefused(
                _("The file changed while it was being checked. Please upload it again."),
                code="direct_changed",
            ) from refused
        raise
    # Marked, so that the save which sets it on a model field removes it if it rolls back.
    return FinishedName(name)


def _check(backend: backends.Backend, name: str, head: Head, grant: dict[str, Any], current: Config) -> None:
    declared, max_size = grant["s"], grant["m"]
    if max_size is not None and head.size > max_size:
        raise refuse_size(head.size, max_size)
    if head.size > declared:
        raise refuse_size(head.size, declared)
    if head.size < declared:
        raise FileRefused(
            _("Only part of the file was received (%(received)d of %(size)d bytes). Please upload it again."),
            code="direct_incomplete",
            params={"received": head.size, "size": declared},
        )
    start = backend.read_start(name, SNIFF_BYTES, head.version) if head.size else b""
    if grant["a"] is not None:
        accepted_type(start, name, tuple(grant["a"]))
    info = identify(start, name, grant["c"])
    if info.content_type in PRIVACY_TYPES and not current.keep_metadata:
        _store_again(backend, name)
    else:
        # A fresh <key>/<token>/<filename>, never written twice: cached as an upload's name is.
        backend.present(name, info, head.version, cache_control=cache_control(current, immutable=True))


def _store_again(backend: backends.Backend, name: str) -> None:
    """Save the object over itself through KeyedStorage, so a photo is cleaned of its
    identifying metadata exactly as in a save. Photos are small: this is their only full read."""
    original = backend.open(name, "rb")
    try:
        copy = seekable(original)
        try:
            # A fresh <key>/<token>/<filename>: as immutable as any upload's name.
            KeyedStorage().save(name, File(copy, name=name), overwrite=True, immutable=True)
        finally:
            if copy is not original:
                copy.close()
    finally:
        original.close()


def _load(reference: str, bound_to: str) -> dict[str, Any]:
    lifetime = config.current().direct_expires * REFERENCE_LIFETIMES
    if not isinstance(reference, str):  # a form's missing value, say
        raise ReferenceRefused(_("This upload reference is not valid here."), code="direct_reference")
    try:
        grant = signing.loads(reference, salt=_salt(bound_to), max_age=lifetime)
    except signing.SignatureExpired as error:
        raise ReferenceRefused(
            _("This upload has expired. Please upload the file again."), code="direct_expired"
        ) from error
    except signing.BadSignature as error:
        raise ReferenceRefused(
            _("This upload reference is not valid here."), code="direct_reference"
        ) from error
    if not isinstance(grant, dict):
        raise ReferenceRefused(_("This upload reference is not valid here."), code="direct_reference")
    return grant


def _salt(bound_to: str) -> str:
    if not isinstance(bound_to, str):
        raise TypeError(f"bound_to is a str (e.g. a form name and a user id), not {type(bound_to).__name__}.")
    # The binding is part of the key the signature is made with, never written into the
    # reference: a reference bound elsewhere fails like an altered one, and shows nothing.
    return f"{SALT}:{bound_to}"


def _bytes(argument: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"start_upload({argument}=...) is a number of bytes (an int, 0 or more), not {value!r}."
        )
    return value
