"""The local direct-upload endpoint: one multipart POST streamed to disk under a signed ticket,
or one part of a multipart upload PUT under a signed part URL (receive_part).

It plays S3's part in local mode (see keyed_storage.direct), with S3's rules: the ticket alone
authorises the request (no session, no CSRF token, as with S3's POST), it allows one new file
of an exact size under one name, and a request that breaks a rule stores nothing. The ticket
is checked before the body is read; the file is streamed to a temporary file beside its
target in 64 KiB chunks, never held in memory, and reading stops at the first byte too many.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from .. import backends, config
from ..backends.local import Incoming, LocalBackend, PartRefused, TicketRefused
from ..exceptions import NameTaken, StorageError
from ..numbers import whole_number
from ..serving.responses import plain_response
from .multipart import PART_URL_EXPIRES

logger = logging.getLogger("keyed_storage")

# Room for the multipart framing and the ticket's fields around the file's bytes: a request
# declaring a longer body than the file plus this is refused before it is read.
FRAMING_BYTES = 64 * 1024
FILE_FIELD = "file"
CHUNK = 64 * 1024


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _ToDisk(FileUploadHandler):
    """Django upload handler that writes the one file field to an Incoming, counting bytes."""

    def __init__(self, request: HttpRequest, backend: LocalBackend, name: str, size: int):
        super().__init__(request)
        self._backend = backend
        self._name = name
        self._size = size
        self.incoming: Incoming | None = None

    def new_file(self, field_name: str, *args: Any, **kwargs: Any) -> None:
        if field_name != FILE_FIELD:
            raise _Refused(400, f"The file goes in a field named {FILE_FIELD!r}, not {field_name!r}.")
        if self.incoming is not None:
            raise _Refused(400, "A ticket admits one file.")
        self.incoming = self._backend.incoming(self._name)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self.incoming is not None
        if self.incoming.size + len(raw_data) > self._size:
            raise _Refused(413, f"The ticket admits exactly {self._size} bytes; more were sent.")
        self.incoming.write(raw_data)

    def file_complete(self, file_size: int) -> None:
        # Returning None keeps the file out of request.FILES: the view asks self.incoming.
        if self.incoming is not None and self.incoming.size != self._size:
            raise _Refused(
                400, f"The ticket admits exactly {self._size} bytes; {self.incoming.size} were sent."
            )

    def discard(self) -> None:
        if self.incoming is not None:
            self.incoming.discard()


def _receiver(request: HttpRequest, method: str) -> LocalBackend | HttpResponse:
    """The local backend that receives this request, or the answer when none does: another
    method (405), or S3 mode, where uploads go to the bucket (404)."""
    if request.method != method:
        return plain_response(405, "Method not allowed.\n", {"Allow": method})
    current = config.current()
    if current.backend != "local":
        return plain_response(404, "keyed_storage receives direct uploads itself only in local mode.\n")
    backend = backends.for_config(current)
    assert isinstance(backend, LocalBackend)
    return backend


@csrf_exempt  # authorised by the signed ticket alone, as S3's POST is (see the module's docstring)
def receive(request: HttpRequest, ticket: str) -> HttpResponse:
    """POST <ticket URL>: ticket.fields, then the file in a field named "file". 204 when stored."""
    backend = _receiver(request, "POST")
    if isinstance(backend, HttpResponse):
        return backend
    try:
        grant = backend.open_ticket(ticket, backend.keyed_config.direct_expires)
    except TicketRefused as refused:
        return plain_response(403, f"{refused}\n")
    length = request.META.get("CONTENT_LENGTH") or "0"
    declared = whole_number(length)
    if declared is None:
        return plain_response(400, f"Content-Length is not a number of bytes in ASCII digits: {length!r}.\n")
    if declared > grant.size + FRAMING_BYTES:
        return plain_response(413, f"The ticket admits exactly {grant.size} bytes.\n")
    if request.content_type != "multipart/form-data":
        return plain_response(400, "Send a multipart/form-data POST: the ticket's fields, then the file.\n")
    handler = _ToDisk(request, backend, grant.name, grant.size)
    request.upload_handlers = [handler]
    try:
        fields = request.POST
        if handler.incoming is None:
            raise _Refused(400, f"No file was sent in a field named {FILE_FIELD!r}.")
        if set(fields) != {"key"} or fields.getlist("key") != [grant.name]:
            # What S3 answers a POST whose fields its policy does not allow.
            raise _Refused(403, "The fields do not match the ticket: send ticket.fields as they are.")
        handler.incoming.place()
    except _Refused as refused:
        return plain_response(refused.status, f"{refused}\n")
    except NameTaken:
        return plain_response(409, "This ticket has been used already.\n")
    except StorageError:
        # The key is already an exact file on this disk (see LocalBackend.store): a site
        # set-up error, logged with its traceback; the client is told only that it conflicts.
        logger.exception("keyed_storage: a direct upload cannot be stored")
        return plain_response(409, "The upload conflicts with a file already stored.\n")
    except (MultiPartParserError, TooManyFieldsSent, RequestDataTooBig, SuspiciousOperation):
        return plain_response(400, "The request is not a well-formed multipart form.\n")
    finally:
        handler.discard()
    return HttpResponse(status=204)


@csrf_exempt  # authorised by the signed part URL alone, as S3's presigned PUT is
def receive_part(request: HttpRequest, ticket: str) -> HttpResponse:
    """PUT <part URL>: the part's bytes, exactly, as the body. 200 when stored.

    As S3's UploadPart: the URL names the upload, the part and its size; a part sent again
    replaces the earlier copy once whole. The body is streamed to a temporary file in
    CHUNK-sized reads, never held in memory, and a Content-Length other than the part's size
    is refused before a byte is read.
    """
    backend = _receiver(request, "PUT")
    if isinstance(backend, HttpResponse):
        return backend
    try:
        grant = backend.open_part_ticket(ticket, PART_URL_EXPIRES)
    except TicketRefused as refused:
        return plain_response(403, f"{refused}\n")
    if whole_number(request.META.get("CONTENT_LENGTH") or "") != grant.size:
        return plain_response(
            400, f"Part {grant.number} is {grant.size} bytes: send them with that Content-Length.\n"
        )
    try:
        backend.receive_part(grant, iter(lambda: request.read(CHUNK), b""))
    except PartRefused as refused:
        return plain_response(refused.status, f"{refused}\n")
    return HttpResponse(status=200)
