"""Direct uploads: a client sends a file straight to storage with a ticket, the server checks it after.

start_upload() issues a Ticket for one new object, <key>/<token>/<safe filename>: in S3 a
presigned POST whose signed policy S3 enforces, in local mode a POST to keyed_storage's own
endpoint (keyed_storage.direct.receiver), which enforces the same limits. Either way the client
POSTs ticket.fields and then the file, in a field named "file", to ticket.url, and hands
ticket.reference back to the server. finish_upload(reference) checks the object as a normal
save checks a file (its size, its type from its first bytes) and publishes it under a name
of its own (ticket.name, which no ticket can write) with the headers a save would give it,
or removes it and raises a ValidationError.

A POST's upload is published by a copy (in S3, server-side; bounded by the POST's size). A
multipart upload (keyed_storage.direct.multipart) is never copied: its parts are sent for ticket.name
itself, and once the server has completed the upload (joining the parts it listed) that upload
id takes no more parts, so no ticket can write the name afterwards. Finishing it costs the same
requests for 64 MiB as for 5 GiB.

The reference is signed (keyed_storage.signed, with SECRET_KEY) and carries everything the
check needs, so no database row or cache entry is involved: any process of the site can
finish an upload another one started.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from django.utils.translation import gettext_lazy as _

from .. import backends, config
from ..backends import Head
from ..caching import cache_control
from ..config import Config
from ..exceptions import (
    FileRefused,
    NameTaken,
    ObjectChanged,
    ObjectUnreadable,
    ReferenceRefused,
    StorageError,
    UploadBroken,
    UploadMissing,
)
from ..files.sniffing import SNIFF_BYTES, ContentInfo, identify
from ..files.streams import seekable
from ..images.privacy import strip_identifying_metadata
from ..images.rendering import displayed_size
from ..images.variants import DEFAULT_MAX_PIXELS, ImageRefused
from ..keys import TOKEN_HEX_CHARS, TOKEN_TIME_HEX, FinishedName, fresh_name, split_tokened, validate_key
from ..signed import REFERENCE_SALT, Expired, Invalid, UploadReference
from ..storage import PRIVACY_TYPES
from ..validators import accepted_patterns, accepted_type, known_type, refuse_size, refuse_type, type_matches
from .parts import complete, part_count, part_size_for

logger = logging.getLogger("keyed_storage")

# How much of a stored picture image_size() may read, in turn, to find its size.
IMAGE_HEADER_READS = (64 * 1024, 1024 * 1024)

# A reference is accepted for twice the ticket's lifetime: an upload that begins just before
# its ticket expires has as long again to arrive and be finished.
REFERENCE_LIFETIMES = 2


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a client needs for one direct upload.

    POST `fields` (all of them, as they are) and then the file, in a multipart field named
    "file", to `url`; then give `reference` back to the server, which passes it to
    finish_upload(). `name` is the name finish_upload() publishes the checked file under
    (not the one the POST writes, which the ticket names in its fields and may write again
    until it expires); `expires` is when the POST must have begun by.
    """

    url: str
    fields: dict[str, str]
    reference: str
    name: str
    expires: datetime
    # A multipart upload (keyed_storage.direct.multipart) has `parts` parts of `part_size` bytes (the
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
    """A ticket for uploading one file of exactly `size` bytes, to be published as <key>/<token>/<filename>.

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
    upload = fresh_name(key, filename)
    part_size = part_size_for(size, current)
    upload_id = None  # a multipart upload's, once started
    if part_size:
        url, fields = "", dict[str, str]()
        # The parts go to the published name itself, with the headers the file is expected to
        # need (finish_upload() checks them against its bytes): completing publishes it, no copy.
        upload_id = backends.multipart_backend(current).start_parts(
            published_name(upload),
            identify(b"", upload, claim),
            cache_control=cache_control(current, immutable=True),
        )
    else:
        url, fields = backends.direct_backend(current).direct_ticket(
            upload, size=size, expires=current.direct_expires
        )
    return Ticket(
        url=url,
        fields=fields,
        reference=UploadReference(
            upload, key, size, max_size, patterns, claim, upload_id, part_size or None
        ).sign(binding=_binding(bound_to)),
        name=published_name(upload),
        expires=datetime.now(UTC) + timedelta(seconds=current.direct_expires),
        part_size=part_size,
        parts=part_count(size, part_size) if part_size else 0,
    )


def finish_upload(reference: str, *, key: str | None = None, bound_to: str = "") -> str:
    """Check the object a direct upload stored, publish it under a name of its own, return that name.

    In order: the reference (its signature, its age, its binding, and `key` if given: pass
    it so a reference issued for another key is refused); that the object exists with the
    size the ticket allowed; its type told from its first bytes against `accept` (one ranged
    read, never the whole object). Then it is moved to ticket.name, a name the ticket cannot
    write, with the Content-Type, Content-Disposition and Cache-Control a save of the same
    bytes would get (in S3, one server-side copy and the delete of the upload); a JPEG, PNG or
    WebP loses its identifying metadata, as in a save, by being stored again. A multipart
    upload is completed under ticket.name and checked there: no copy, unless its bytes call for
    other headers than its name and claim announced (S3 changes headers only by a copy).

    Raises ReferenceRefused (nothing deleted), or a FileRefused (UploadMissing, FileTooLarge,
    FileTypeRefused, UploadBroken: storage has it and fails every read) after removing the
    object; a StorageError after removing the upload (a completed multipart upload is kept).
    Finishing again, or at the same time (a form sent twice, a retried request), returns the
    same name once one finish has published it, else one of those errors; never a missing
    object's error. Set on a model field and saved, the name the first finish returned (a
    FinishedName) belongs to that save: a rollback removes the object unless a row names it
    by then. The same name returned by any other finish is never that finish's own.
    """
    grant = open_reference(reference, bound_to)
    if key is not None and validate_key(key) != grant.key:
        raise ReferenceRefused(
            _("This upload was made for another place and cannot be used here."), code="direct_key"
        )
    upload = validate_key(grant.upload)
    name = published_name(upload)
    current = config.current()
    backend = backends.for_config(current)
    if grant.upload_id is not None and grant.part_size is not None:  # signed together
        return _finish_parts(backend, name, grant, (grant.upload_id, grant.part_size), current)
    if backend.head(name) is not None:
        # Finished before. Anything at the upload's name now was sent since, with the same
        # ticket, and is never looked at: it goes.
        backend.delete(upload)
        return name  # not this finish's own: a rollback of the save that uses it keeps it
    try:
        return _finish(backend, upload, name, grant, current)
    except Exception as failure:
        # Another finish of the same reference may have published it while this one checked:
        # the upload then changed or vanished under this one. Its name is the answer here
        # too, and not this finish's own. (A refusal of the bytes themselves costs no HEAD.)
        if _lost_upload(failure) and _published(backend, name):
            return name
        raise


def _finish(
    backend: backends.DirectBackend, upload: str, name: str, grant: UploadReference, current: Config
) -> str:
    head = backend.head(upload)
    if head is None:
        raise UploadMissing(_("The file was not received. Please upload it again."), code="direct_missing")
    try:
        _publish(backend, upload, name, head, grant, current)
    except (FileRefused, ObjectChanged) as refused:
        backend.delete(upload)
        if isinstance(refused, ObjectChanged):
            raise FileRefused(
                _("The file changed while it was being checked. Please upload it again."),
                code="direct_changed",
            ) from refused
        raise
    except NameTaken:
        # A finish of the same reference running at the same time published it first.
        backend.delete(upload)
        return name
    except ObjectUnreadable as unreadable:
        raise _broken(backend, upload, unreadable) from unreadable
    except StorageError:
        # The storage failed mid-way: the upload goes, if it can, so nothing of it is left;
        # the client uploads again.
        _discard(backend, upload)
        raise
    # Marked, so that the save which sets it on a model field removes it if it rolls back.
    return FinishedName(name)


def _lost_upload(failure: Exception) -> bool:
    """Whether `failure` is the upload vanishing or changing mid-finish (as when another
    finish publishes it), rather than a verdict on its bytes."""
    if isinstance(failure, FileRefused):
        return failure.code in ("direct_missing", "direct_changed")
    return isinstance(failure, OSError)  # a StorageError, or a file gone from under open()


def _published(backend: backends.DirectBackend, name: str) -> bool:
    try:
        return backend.head(name) is not None
    except StorageError:
        return False  # the error being handled says more


def _discard(backend: backends.DirectBackend, upload: str) -> None:
    try:
        backend.delete(upload)
    except StorageError:
        logger.exception("keyed_storage: could not delete the direct upload %s", upload)


def _broken(backend: backends.DirectBackend, name: str, unreadable: ObjectUnreadable) -> FileRefused:
    """The refusal of an upload that is in storage but fails every read (see ObjectUnreadable),
    once it is removed: no later finish can do better, so it ends here, with the user told to
    upload the file again, and every later finish of its reference finds it missing.

    Only if the server still answers for it: an object it no longer answers a HEAD for, the
    server down rather than the object broken, is left alone (`unreadable` is raised)."""
    try:
        still = backend.head(name)
    except StorageError:
        raise unreadable from None
    if still is None:  # gone since: as any upload gone mid-finish
        return UploadMissing(_("The file was not received. Please upload it again."), code="direct_missing")
    logger.error(
        "keyed_storage: removing the direct upload %s, which storage cannot read: %s", name, unreadable
    )
    _discard(backend, name)
    return UploadBroken(
        _("The file was received but storage cannot read it back. Please upload it again."),
        code="direct_broken",
    )


def _finish_parts(
    backend: backends.Backend, name: str, grant: UploadReference, parts: tuple[str, int], current: Config
) -> str:
    """finish_upload() of a multipart upload: complete it under `name` (its parts were sent for
    that name), then check the object there, as after a POST, and remove it if refused.

    Checked again by every finish, even once completed: a finish that stopped between the
    completion and the check (a crash, a timeout) has left an object nobody checked."""
    upload_id, part_size = parts
    completed = complete(backend, name, upload_id, grant.size, part_size)
    head = backend.head(name)
    if head is None:  # aborted, or refused by an earlier finish
        raise UploadMissing(_("The file was not received. Please upload it again."), code="direct_missing")
    try:
        info = _checked(backend, name, head, grant)
        caching = cache_control(current, immutable=True)
        if info.content_type in PRIVACY_TYPES and not current.keep_metadata:
            _store_cleaned(backend, name, name, head, info, caching)
        else:
            backend.settle(name, info, head.version, cache_control=caching, size=head.size)
    except FileRefused:
        backend.delete(name)
        raise
    except ObjectUnreadable as unreadable:
        # Completed by an earlier finish, it may be a saved row's file by now (the same form
        # sent again): only a file nobody holds is removed as broken.
        if not completed and _claimed(name):
            raise
        raise _broken(backend, name, unreadable) from unreadable
    except ObjectChanged as changed:
        # No ticket writes `name`: only another finish of this upload, which accepted it (the
        # check is decided before anything is written) and gave it its headers or cleaned it.
        if backend.head(name) is None:
            raise UploadMissing(
                _("The file was not received. Please upload it again."), code="direct_missing"
            ) from changed
        return name
    # Only the finish that completed the upload owns the name (a rollback of its save removes it).
    return FinishedName(name) if completed else name


def _claimed(name: str) -> bool:
    from ..lifecycle.replacement import claimed_anywhere  # the lifecycle builds on this module

    return claimed_anywhere(name)


def finished_by(name: str) -> datetime | None:
    """The latest moment a direct upload published as `name` can have been finished, told from
    its token (the upload's start time, see keys.new_token) and how long a reference is
    accepted; None if `name` has no token. S3 listings date a completed multipart upload no
    earlier (AWS dates it from its start), so `orphans` counts its age from its publication."""
    tokened = split_tokened(name)
    if tokened is None:
        return None
    started = datetime.fromtimestamp(int(tokened[1][:TOKEN_TIME_HEX], 16) / 1_000_000, UTC)
    return started + timedelta(seconds=config.current().direct_expires * REFERENCE_LIFETIMES)


def published_name(upload: str) -> str:
    """The name a finished upload is published under: its key and filename, and a token made
    from the upload's (the same time, so names still sort by upload; other random digits).

    A ticket may write its upload's name until it expires; it can never write this one, so
    what finish_upload() checked is what stays under it."""
    key, token, filename = split_tokened(upload) or _not_an_upload(upload)
    digest = hashlib.sha256(f"{REFERENCE_SALT}:published:{token}".encode()).hexdigest()
    return f"{key}/{token[:TOKEN_TIME_HEX]}{digest[: TOKEN_HEX_CHARS - TOKEN_TIME_HEX]}/{filename}"


def _not_an_upload(name: str) -> NoReturn:
    raise ReferenceRefused(_("This upload reference is not valid here."), code="direct_reference")


def _publish(
    backend: backends.DirectBackend,
    upload: str,
    name: str,
    head: Head,
    grant: UploadReference,
    current: Config,
) -> None:
    info = _checked(backend, upload, head, grant)
    # A fresh <key>/<token>/<filename>, never written twice: cached as an upload's name is.
    caching = cache_control(current, immutable=True)
    if info.content_type in PRIVACY_TYPES and not current.keep_metadata:
        _store_cleaned(backend, upload, name, head, info, caching)
    else:
        backend.publish(upload, name, info, head.version, cache_control=caching, size=head.size)


def _checked(backend: backends.DirectBackend, upload: str, head: Head, grant: UploadReference) -> ContentInfo:
    """What the stored object `upload` is, told from its first bytes, once its size and type
    are those the ticket allows (else a FileRefused)."""
    declared, max_size = grant.size, grant.max_size
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
    start = backend.read_start(upload, SNIFF_BYTES, head.version) if head.size else b""
    if grant.accept is not None:
        accepted_type(start, upload, grant.accept)
    # The upload's name and the published one end in the same filename.
    return identify(start, upload, grant.claim)


def _store_cleaned(
    backend: backends.DirectBackend, upload: str, name: str, head: Head, info: ContentInfo, caching: str
) -> None:
    """Store the photo under `name` cleaned of its identifying metadata, exactly as a save
    cleans it, then delete the upload. Photos are small: this is their only full read.
    A multipart upload is already at `name` (upload == name): the cleaned bytes replace it."""
    original = backend.open(upload, "rb")
    try:
        copy = seekable(original)
        try:
            if backend.head(upload) != head:  # what was read is not what was checked
                raise ObjectChanged(f"{upload!r} was replaced while it was being checked.", name=upload)
            cleaned = strip_identifying_metadata(copy)
            try:
                backend.store(name, cleaned or copy, info, exclusive=upload != name, cache_control=caching)
            finally:
                if cleaned is not None:
                    cleaned.close()
        finally:
            if copy is not original:
                copy.close()
    finally:
        original.close()
    if upload != name:
        backend.delete(upload)


def image_size(name: str, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the stored picture `name` as shown (EXIF orientation applied), told
    from its first bytes: a ranged read of 64 KiB, and of 1 MiB if its header is longer
    (a camera's EXIF block, with its thumbnail, comes before a JPEG's frame header); never
    more. ImageRefused if it is not a picture Pillow reads, has more than `max_pixels`
    pixels, or its header does not end within 1 MiB.
    """
    backend = backends.direct_backend(config.current())
    head = backend.head(name)
    if head is None:
        raise UploadMissing(_("The file was not received. Please upload it again."), code="direct_missing")
    for length in IMAGE_HEADER_READS:
        start = backend.read_start(name, min(length, head.size), head.version) if head.size else b""
        try:
            return displayed_size(io.BytesIO(start), max_pixels=max_pixels)
        except ImageRefused as refused:
            if refused.code == "image_pixels" or len(start) >= head.size:
                raise
    raise ImageRefused(
        _("This image could not be read: its header is longer than %(limit)s."),
        code="image_header",
        params={"limit": "1 MiB"},
    )


def open_reference(reference: str, bound_to: str) -> UploadReference:
    """The grant a reference carries (what start_upload() signed); ReferenceRefused if it
    is not one of this site's, was altered, is bound elsewhere or has expired."""
    lifetime = config.current().direct_expires * REFERENCE_LIFETIMES
    if not isinstance(reference, str):  # a form's missing value, say
        raise ReferenceRefused(_("This upload reference is not valid here."), code="direct_reference")
    try:
        return UploadReference.open(reference, max_age=lifetime, binding=_binding(bound_to))
    except Expired as error:
        raise ReferenceRefused(
            _("This upload has expired. Please upload the file again."), code="direct_expired"
        ) from error
    except Invalid as error:
        raise ReferenceRefused(
            _("This upload reference is not valid here."), code="direct_reference"
        ) from error


def _binding(bound_to: str) -> str:
    if not isinstance(bound_to, str):
        raise TypeError(f"bound_to is a str (e.g. a form name and a user id), not {type(bound_to).__name__}.")
    # The binding is part of the key the signature is made with, never written into the
    # reference: a reference bound elsewhere fails like an altered one, and shows nothing.
    return bound_to


def _bytes(argument: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"start_upload({argument}=...) is a number of bytes (an int, 0 or more), not {value!r}."
        )
    return value
