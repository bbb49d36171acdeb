"""Reading a file's first bytes (to tell its type) without losing them, and bounding a stream."""

from __future__ import annotations

import io
import shutil
import tempfile
from typing import IO, Any, Protocol, TypeVar

from django.core.files import File

from .sniffing import SNIFF_BYTES


class Readable(Protocol):
    """Anything upload() can read a file from: read(size) returns bytes (a file opened with 'rb',
    an HTTP response, a boto3 StreamingBody). A .name or .filename attribute, if present, names it."""

    def read(self, size: int, /) -> bytes | bytearray: ...


_Content = TypeVar("_Content", bound=IO[Any])


class _Prepended(io.RawIOBase):
    """A stream whose first bytes were already read for sniffing, read again from the start."""

    def __init__(self, head: bytes, rest: Readable):
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    # io hands readinto a memoryview (BufferedReader) or a bytearray; typeshed's Buffer type
    # has neither len() nor slicing, so the parameter is narrower than RawIOBase's.
    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def rewind(content: IO[Any]) -> bool:
    try:
        content.seek(0)
    except (AttributeError, OSError, ValueError):
        return False
    return True


def peek(content: _Content) -> tuple[bytes, _Content | File[bytes]]:
    """The first bytes of `content`, and a file to store that still starts at byte 0."""
    try:
        seekable = content.seekable()
    except (AttributeError, ValueError):
        seekable = False
    if seekable:
        content.seek(0)
        head = content.read(SNIFF_BYTES)
        content.seek(0)
    else:
        head = content.read(SNIFF_BYTES)
    if isinstance(head, str):
        # Text content (ContentFile("...")): stored as UTF-8.
        data = (head + content.read()).encode("utf-8") if not seekable else content.read().encode("utf-8")
        return data[:SNIFF_BYTES], File(io.BytesIO(data), name=content.name)
    if not seekable:
        return head, File(io.BufferedReader(_Prepended(head, content)), name=content.name)
    return head, content


def seekable(content: Any) -> Any:
    """`content` itself if it can seek, else a copy that can (in memory up to 4 MiB, then on disk)."""
    try:
        if content.seekable():
            return content
    except (AttributeError, ValueError):
        pass
    copy = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)
    shutil.copyfileobj(content, copy, 1024 * 1024)
    copy.seek(0)
    return File(copy, name=getattr(content, "name", None))
