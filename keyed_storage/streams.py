"""Reading a file's first bytes (to tell its type) without losing them, and bounding a stream."""

from __future__ import annotations

import io
from typing import Any

from django.core.files import File

from .content import SNIFF_BYTES


class _Prepended(io.RawIOBase):
    """A stream whose first bytes were already read for sniffing, read again from the start."""

    def __init__(self, head: bytes, rest: Any):
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def rewind(content: Any) -> bool:
    try:
        content.seek(0)
    except (AttributeError, OSError, ValueError):
        return False
    return True


def peek(content: Any) -> tuple[bytes, Any]:
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
