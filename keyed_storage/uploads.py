"""upload(file, key): store a file under a meaningful key and return its absolute URL."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any

from django.core.files import File
from django.db import transaction

from . import background
from .files.streams import Readable, peek
from .keys import object_name, validate_key
from .storage import KeyedStorage
from .validators import accepted_patterns, accepted_type, refuse_size

logger = logging.getLogger("keyed_storage")

_default_storage: KeyedStorage | None = None

ACCEPTED = (
    "a Django File or UploadedFile (request.FILES[...]), a file opened in binary mode, "
    "or any object with a read() method returning bytes and a .name or .filename"
)


def _storage() -> KeyedStorage:
    global _default_storage
    if _default_storage is None:
        _default_storage = KeyedStorage()
    return _default_storage


def _as_file(file: File[Any] | Readable) -> File[Any]:
    if isinstance(file, File):
        return file
    if (
        isinstance(file, (str, bytes, bytearray, int, float))
        or file is None
        or not callable(getattr(file, "read", None))
    ):
        raise TypeError(f"upload() takes {ACCEPTED}; got {type(file).__name__}.")
    if isinstance(file, io.TextIOBase):
        raise TypeError(f"upload() got a file opened in text mode; open it with 'rb'. It takes {ACCEPTED}.")
    name = getattr(file, "filename", None) or getattr(file, "name", None)
    # File wraps anything with read(); typeshed does not count an io.RawIOBase as an IO.
    return File(_Readable(file), name=name if isinstance(name, str) else None)  # type: ignore[arg-type]


class _Readable(io.RawIOBase):
    """Gives any object with read() the file protocol Django and boto3 rely on."""

    def __init__(self, source: Readable):
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(
                f"upload(): read() returned {type(data).__name__}, not bytes; open the file with 'rb'."
            )
        return bytes(data)

    # io hands readinto a memoryview (BufferedReader) or a bytearray; typeshed's Buffer type
    # has neither len() nor slicing, so the parameter is narrower than RawIOBase's.
    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        probe = getattr(self._source, "seekable", None)
        if callable(probe):
            return bool(probe())  # e.g. a BufferedReader over a pipe has seek() but refuses it
        return callable(getattr(self._source, "seek", None)) and callable(getattr(self._source, "tell", None))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("seek")
        # seek() and tell() are optional on a Readable; seekable() said the source has them.
        self._source.seek(offset, whence)  # type: ignore[attr-defined]
        return self._source.tell()  # type: ignore[attr-defined, no-any-return]

    def tell(self) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("tell")
        return self._source.tell()  # type: ignore[attr-defined, no-any-return]  # as in seek()


def upload(
    file: File[Any] | Readable,
    key: str,
    *,
    exact: bool = False,
    accept: str | Iterable[str] | None = None,
    max_size: int | None = None,
) -> str:
    """Store ``file`` under ``key`` and return its absolute URL.

    By default the object is named ``<key>/<token>/<filename>`` with a fresh random token, and
    once the upload has succeeded (and the surrounding database transaction, if any, has
    committed) the key's earlier objects are deleted. Objects of longer keys nested under
    ``key`` are never touched. With ``exact=True`` the object is stored at exactly ``key``,
    replacing whatever is there.

    ``accept`` is one MIME pattern or a list of them, as in HTML (``"image/*"``, ``"audio/mpeg"``,
    ``"application/pdf"``), checked against the type told from the file's bytes; ``max_size`` is
    the largest size in bytes. A refused file raises ``FileTypeRefused`` or ``FileTooLarge`` (both
    ``ValidationError``) before anything is stored or deleted.
    """
    content = _as_file(file)
    key = validate_key(key)
    patterns = accepted_patterns(accept) if accept is not None else None
    if max_size is not None:
        content = _within(content, _max_size(max_size))
    if patterns is not None:
        head, content = peek(content)
        accepted_type(head, content.name or "", patterns)
    storage = _storage()
    # A link that cannot be made (local mode, no origin) must fail before anything is
    # stored or deleted: the base every link starts with is pure string work.
    storage.url(None)
    if exact:
        name = storage.save(key, content, overwrite=True)
        return storage.url(name)
    name = storage.save(object_name(key, content.name), content)
    url = storage.url(name)
    _sweep_after_commit(key, name)
    return url


def _max_size(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"upload(max_size=...) is a number of bytes (an int, 0 or more), not {value!r}.")
    return value


def _within(content: File[Any], max_size: int) -> File[Any]:
    """Refuse `content` now if its size is known and too large; else count while it is read."""
    try:
        size = content.size
    except (AttributeError, OSError, ValueError):
        size = None  # a stream: its length shows only as it is read
    if size is not None:
        if size > max_size:
            raise refuse_size(size, max_size)
        return content
    return File(io.BufferedReader(_Bounded(content, max_size)), name=content.name)


class _Bounded(io.RawIOBase):
    """Reads a stream of unknown length and raises FileTooLarge past `max_size` bytes, which
    aborts the store: the partial file is removed (a multipart upload aborted) and nothing of
    the key is deleted."""

    def __init__(self, source: Readable, max_size: int):
        self._source = source
        self._max_size = max_size
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]  # as _Readable's
        # Ask for one byte more than is allowed, so a file of exactly max_size passes.
        data = self._source.read(min(len(buffer), self._max_size - self._read + 1))
        self._read += len(data)
        if self._read > self._max_size:
            raise refuse_size(self._read, self._max_size)
        buffer[: len(data)] = data
        return len(data)


def _sweep_after_commit(key: str, keep: str) -> None:
    """Delete the key's earlier objects once the surrounding transaction commits, or now
    outside one; with a task worker (keyed_storage.tasks), by the worker.

    A failing sweep is logged, never raised: the upload it follows has succeeded. It logs
    for itself rather than through on_commit(robust=True), whose own logging of a failure
    reads the callback's __qualname__, which a functools.partial lacks: the AttributeError
    then escaped the committed atomic block and the callbacks after it never ran. Outside a
    transaction no database connection is needed at all (unless a worker takes the sweep).
    """
    if background.in_background():
        background.enqueue_after_commit("keyed_storage.tasks.sweep_key", key, keep)
        return

    def delete_earlier_objects() -> None:
        try:
            delete_earlier(key, keep)
        except Exception:
            logger.exception("keyed_storage: could not delete the earlier objects of a key")

    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(delete_earlier_objects)
    else:
        delete_earlier_objects()


def delete_earlier(key: str, keep: str) -> list[str]:
    """Delete the objects of `key` older than its newest upload; the names deleted.

    Keep only the newest upload of the key. Tokens start with the upload time, so when
    uploads to one key race, every one of them converges on the same survivor. One
    listing finds every earlier object (however many crashed or racing uploads left),
    and one request deletes them: replacing a key costs the PUT and these two.
    """
    storage = _storage()
    mine = keep.rsplit("/", 2)[-2]
    uploads = storage.uploads_of(key)
    newest = max(set(uploads) | {mine})
    doomed = [name for token, names in uploads.items() if token != newest for name in names]
    if mine != newest and keep not in doomed:
        doomed.append(keep)  # a listing that does not show it yet must not save it
    storage.delete_many(doomed)
    for name in doomed:
        logger.info("keyed_storage: deleted %s, replaced by the upload %s of %s", name, newest, key)
    return doomed
