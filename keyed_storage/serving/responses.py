"""HTTP semantics of serving one stored file: headers, validators, conditional requests, byte ranges.

Section numbers are RFC 9110's, which obsoletes RFC 7232 (conditional requests) and RFC 7233
(range requests); the older numbers are given where readers are likely to know them.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat as stat_mode
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date, parse_http_date_safe

from .. import config
from ..caching import cache_control
from ..files.sniffing import SNIFF_BYTES, identify
from ..keys import has_token
from ..numbers import MAX_DIGITS

CHUNK_SIZE = 64 * 1024


def file_headers(name: str, stat: os.stat_result, head: bytes) -> dict[str, str]:
    """Every header a response about this file carries, whatever its status.

    The one place that decides how a stored file is presented. The type comes from the
    file's first bytes, as it did when the file was stored in S3, so both backends present
    a file the same way; anything a browser would run is an attachment.
    """
    info = identify(head, name)
    headers = {
        "Content-Type": info.content_type,
        # A strong validator (§8.8.3): it changes whenever the bytes can have changed, since an
        # exact upload replaces the file atomically, giving it a new mtime.
        "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
        "Last-Modified": http_date(int(stat.st_mtime)),
        "Accept-Ranges": "bytes",  # §14.3
        # Tokened names (upload() and key builders, their variants) never change their bytes:
        # KEYED_STORAGE_CACHE_CONTROL, a year and immutable by default, as S3 stores them.
        # Other names are replaced in place: caches must ask each time (and get a 304). A file
        # on disk keeps no record of how it was saved, so the name's shape decides.
        "Cache-Control": cache_control(config.current(), immutable=has_token(name)),
        "X-Content-Type-Options": "nosniff",
    }
    if info.attachment:
        headers["Content-Disposition"] = "attachment"
    return headers


# The headers a 304 must repeat from the 200 it stands for (§15.4.5, RFC 7232 §4.1).
_NOT_MODIFIED_HEADERS = ("ETag", "Cache-Control", "X-Content-Type-Options", "Content-Disposition")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file opened for one response, with the headers describing it."""

    name: str
    file: BinaryIO
    size: int
    etag: str
    last_modified: int
    headers: dict[str, str]

    @classmethod
    def open(cls, name: str, path: str) -> StoredFile:
        """Open `path` for reading; OSError (FileNotFoundError, IsADirectoryError, …) if it is no file."""
        file = open(path, "rb")  # closed by the response
        try:
            # fstat the open file, so headers and bytes describe the same file even if the
            # name is replaced meanwhile.
            stat = os.fstat(file.fileno())
            if not stat_mode.S_ISREG(stat.st_mode):
                raise IsADirectoryError(path)
        except BaseException:
            file.close()
            raise
        headers = file_headers(name, stat, os.pread(file.fileno(), SNIFF_BYTES, 0))
        return cls(name, file, stat.st_size, headers["ETag"], int(stat.st_mtime), headers)


def plain_response(status: int, text: str, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    for header, value in (headers or {}).items():
        response[header] = value
    return response


def respond(request: HttpRequest, stored: StoredFile) -> HttpResponse | StreamingHttpResponse:
    """The response to a GET or HEAD of `stored`, honouring conditional and range headers."""
    status = _preconditions(request, stored)
    if status is not None:
        stored.file.close()
        if status == 304:
            headers = {h: stored.headers[h] for h in _NOT_MODIFIED_HEADERS if h in stored.headers}
            # A 304 may carry only the length of the 200 it stands for (RFC 9110 §8.6); left
            # out, Django's CommonMiddleware would add the empty body's "0".
            headers["Content-Length"] = str(stored.size)
            return _headers_only(304, headers)
        return plain_response(412, "Precondition failed.\n", {"ETag": stored.etag})

    start, end = 0, stored.size - 1
    status = 200
    byte_range = _requested_range(request, stored)
    if byte_range == "unsatisfiable":
        stored.file.close()
        # §15.5.17 (RFC 7233 §4.4): say how long the representation is.
        return plain_response(416, "Range not satisfiable.\n", {"Content-Range": f"bytes */{stored.size}"})
    if byte_range is not None:
        start, end = byte_range
        status = 206

    headers = dict(stored.headers)
    headers["Content-Length"] = str(end - start + 1)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"  # §14.4
    if request.method == "HEAD":
        stored.file.close()
        return _headers_only(status, headers)
    # Django calls the body's close() once the response is done, sent in full or not. An ASGI
    # server consumes a sync body by first reading all of it into a list (the whole file in
    # memory), a WSGI server an async body likewise: each request gets the kind its server reads.
    body_type = _AsyncFileSlice if isinstance(request, ASGIRequest) else _FileSlice
    response = StreamingHttpResponse(body_type(stored.file, start, end - start + 1), status=status)
    for header, value in headers.items():
        response[header] = value
    return response


def _headers_only(status: int, headers: dict[str, str]) -> HttpResponse:
    response = HttpResponse(status=status)
    for header, value in headers.items():
        response[header] = value
    if status == 304:
        del response["Content-Type"]
    return response


class _FileSlice:
    """`length` bytes of `file` from `start`, read in chunks; closing it closes the file."""

    __slots__ = ("file", "length", "start")

    def __init__(self, file: BinaryIO, start: int, length: int):
        self.file, self.start, self.length = file, start, length

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(self.start)
        remaining = self.length
        while remaining > 0:
            chunk = self.file.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break  # the file shrank under us; the client sees a short body and retries
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


class _AsyncFileSlice:
    """_FileSlice for an ASGI server: one chunk at a time, each read in a worker thread, so the
    event loop never waits on the disk. pread, since the reads need not share a file position."""

    __slots__ = ("file", "length", "start")

    def __init__(self, file: BinaryIO, start: int, length: int):
        self.file, self.start, self.length = file, start, length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        descriptor = self.file.fileno()
        position, end = self.start, self.start + self.length
        while position < end:
            size = min(CHUNK_SIZE, end - position)
            chunk = await loop.run_in_executor(None, os.pread, descriptor, size, position)
            if not chunk:
                break  # as in _FileSlice
            position += len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


def _entity_tags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _preconditions(request: HttpRequest, stored: StoredFile) -> int | None:
    """412 or 304 when a precondition says so, None to go on; evaluated in §13.2.2's order."""
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        # §13.1.1: strong comparison.
        tags = _entity_tags(if_match)
        if "*" not in tags and stored.etag not in tags:
            return 412
    else:
        since = parse_http_date_safe(request.headers.get("If-Unmodified-Since", ""))
        if since is not None and stored.last_modified > since:  # §13.1.4
            return 412
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        # §13.1.2 (RFC 7232 §3.2): weak comparison; '*' matches any current representation.
        tags = _entity_tags(if_none_match)
        if "*" in tags or _opaque(stored.etag) in map(_opaque, tags):
            return 304
        return None
    since = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    if since is not None and stored.last_modified <= since:  # §13.1.3 (RFC 7232 §3.3)
        return 304
    return None


ByteRange = tuple[int, int] | Literal["unsatisfiable"] | None

# One range, 'bytes=first-last', 'bytes=first-' or 'bytes=-suffix' (§14.1.2), its numbers
# read by the rules of numbers.whole_number (ASCII digits only, at most MAX_DIGITS): larger
# than any file, and int() stays cheap. Anything else is ignored.
_NUMBER = rf"([0-9]{{0,{MAX_DIGITS}}})"
_RANGE = re.compile(rf"[ \t]*bytes[ \t]*=[ \t]*{_NUMBER}[ \t]*-[ \t]*{_NUMBER}[ \t]*", re.ASCII | re.I)


def _requested_range(request: HttpRequest, stored: StoredFile) -> ByteRange:
    """(first, last) byte positions, 'unsatisfiable', or None to send the whole file."""
    header = request.headers.get("Range")
    if request.method != "GET" or header is None:
        return None  # §14.2: range handling is defined for GET only
    if_range = request.headers.get("If-Range")
    if if_range is not None and not _if_range_holds(if_range.strip(), stored):
        return None  # §13.1.5: the client's copy is stale, so it gets the whole new file
    match = _RANGE.fullmatch(header)
    if match is None:
        # Not one well-formed byte range: several ranges, another unit, non-ASCII digits,
        # or a number longer than any file. §14.2 lets a server ignore Range; one range is
        # all an audio or video player asks for.
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None  # 'bytes=-' is syntactically invalid: ignored (§14.1.1)
    size = stored.size
    if not first:
        # A suffix range (§14.1.2): the last N bytes.
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid, so ignored (§14.1.1)
    if start >= size:
        return "unsatisfiable"  # §14.1.1: no byte of the range is in the file
    return start, min(int(last), size - 1) if last else size - 1


def _if_range_holds(value: str, stored: StoredFile) -> bool:
    if value.startswith(('"', "W/")):
        return value == stored.etag  # strong comparison; a weak tag never matches (§13.1.5)
    return parse_http_date_safe(value) == stored.last_modified
