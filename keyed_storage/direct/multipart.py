"""Multipart direct uploads: a large file goes to storage in parts, in parallel, and resumes.

At KEYED_STORAGE_DIRECT_PART_THRESHOLD bytes or more, start_upload() begins a multipart
upload instead of issuing a POST (in S3, CreateMultipartUpload; on disk, a directory of parts
that no key can name) for the name the file is published under (ticket.name: completing the
upload publishes it, no byte is copied) and says so in its Ticket (`part_size`, `parts`). The client then asks
part_urls() for the URLs of the parts it is about to send, PUTs each part's bytes, exactly, to
its URL, and hands the reference back as for a single POST. After a dropped connection or a
reload, uploaded_parts() tells it which parts are stored, so it sends only the others.
finish_upload() completes the upload with the parts the server itself lists (so no client ever
reads an ETag) once every part is there with its size, then checks the object as after a POST.
abort_upload() drops the upload and its parts.

The upload id travels in the signed reference, so, as for a POST, no database row is involved.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.translation import gettext_lazy as _

from .. import backends, config
from ..backends import Part
from ..exceptions import ReferenceRefused, UploadMissing
from ..signed import UploadReference
from .parts import MAX_PARTS, part_count, part_length, part_size_for
from .tickets import open_reference, published_name

# How long a part URL may be used to begin its PUT. Short: a client asks for a few at a time,
# just before it sends them, and asks again for any it could not send in time.
PART_URL_EXPIRES = 15 * 60

# MAX_PARTS and part_size_for are keyed_storage.direct.parts' (how a file is cut into parts), named here too.
__all__ = ["MAX_PARTS", "PART_URL_EXPIRES", "abort_upload", "part_size_for", "part_urls", "uploaded_parts"]


def part_urls(reference: str, numbers: Iterable[int], *, bound_to: str = "") -> dict[int, str]:
    """{number: URL} of a PUT for each part number (1 to the ticket's `parts`) of the upload
    `reference` names. Each URL takes exactly that part's bytes and nothing else (in S3 the
    Content-Length is signed), for PART_URL_EXPIRES seconds."""
    grant, upload_id, part_size = _grant(reference, bound_to)
    size = grant.size
    count = part_count(size, part_size)
    wanted = []
    for number in numbers:
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= count:
            raise ValueError(f"Part numbers of this upload are 1 to {count}, not {number!r}.")
        wanted.append(number)
    backend = backends.multipart_backend(config.current())
    return {
        number: backend.part_url(
            published_name(grant.upload),
            upload_id,
            number,
            size=part_length(number, size, part_size),
            expires=PART_URL_EXPIRES,
        )
        for number in wanted
    }


def uploaded_parts(reference: str, *, bound_to: str = "") -> list[Part]:
    """The parts stored so far (number, size), in order, as the storage lists them: a client
    resuming the upload sends the others. UploadMissing if the upload was finished or aborted."""
    grant, upload_id = _grant(reference, bound_to)[:2]
    parts = backends.multipart_backend(config.current()).list_parts(published_name(grant.upload), upload_id)
    if parts is None:
        raise UploadMissing(
            _("This upload was finished or cancelled. Please upload the file again."),
            code="direct_missing",
        )
    return parts


def abort_upload(reference: str, *, bound_to: str = "") -> None:
    """Drop the upload and every part stored for it (in S3, AbortMultipartUpload, so no part
    is left to be billed). Aborting twice, or an upload already finished, is harmless."""
    grant, upload_id = _grant(reference, bound_to)[:2]
    backends.multipart_backend(config.current()).abort_parts(published_name(grant.upload), upload_id)


def _grant(reference: str, bound_to: str) -> tuple[UploadReference, str, int]:
    """The reference's grant, upload id and part size; ReferenceRefused if it is not a
    reference of a multipart upload."""
    grant = open_reference(reference, bound_to)
    return (grant, *_in_parts(grant))


def _in_parts(grant: UploadReference) -> tuple[str, int]:
    """(upload id, part size) of a multipart upload's reference."""
    if grant.upload_id is None or grant.part_size is None:
        raise ReferenceRefused(
            _("This upload is sent in one request, not in parts."), code="direct_not_multipart"
        )
    return grant.upload_id, grant.part_size
