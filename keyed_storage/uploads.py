"""upload(file, key): store a file under a meaningful key and return its absolute URL."""

from __future__ import annotations

import io
import logging
from functools import partial
from typing import Any

from django.core.files import File
from django.db import transaction

from .keys import object_name, validate_key
from .storage import KeyedStorage

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


def _as_file(file: Any) -> File:
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
    return File(_Readable(file), name=name if isinstance(name, str) else None)


class _Readable(io.RawIOBase):
    """Gives any object with read() the file protocol Django and boto3 rely on."""

    def __init__(self, source: Any):
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

    def readinto(self, buffer) -> int:
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
        self._source.seek(offset, whence)
        return self._source.tell()

    def tell(self) -> int:
        if not self.seekable():
            raise io.UnsupportedOperation("tell")
        return self._source.tell()


def upload(file: Any, key: str, *, exact: bool = False) -> str:
    """Store `file` under `key` and return its absolute URL.

    By default the object is named <key>/<token>/<filename> with a fresh random token, and
    once the upload has succeeded (and the surrounding database transaction, if any, has
    committed) the key's earlier objects are deleted. Objects of longer keys nested under
    `key` are never touched. With exact=True the object is stored at exactly `key`,
    replacing whatever is there.
    """
    content = _as_file(file)
    key = validate_key(key)
    storage = _storage()
    if exact:
        name = storage.save(key, content, overwrite=True)
        return storage.url(name)
    name = storage.save(object_name(key, content.name), content)
    _after_commit(partial(_delete_earlier, storage, key, keep=name))
    return storage.url(name)


def _after_commit(cleanup) -> None:
    """Run `cleanup` once the surrounding transaction commits, or now outside one.

    Like on_commit(robust=True), a failing cleanup is logged, never raised: the upload it
    follows has succeeded. Outside a transaction no database connection is needed at all.
    """
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(cleanup, robust=True)
        return
    try:
        cleanup()
    except Exception:
        logger.exception("keyed_storage: could not delete the earlier objects of a key")


def _delete_earlier(storage: KeyedStorage, key: str, keep: str) -> None:
    # Keep only the newest object of the key. Tokens start with the upload time, so when
    # uploads to one key race, every one of them converges on the same survivor. The
    # just-stored object's name is known, so a key with no earlier upload costs one listing.
    mine = keep.rsplit("/", 2)[-2]
    tokens = set(storage.key_tokens(key)) | {mine}
    newest = max(tokens)
    for token in sorted(tokens - {newest}):
        for name in [keep] if token == mine else storage.token_objects(key, token):
            storage.delete(name)
            logger.info("keyed_storage: deleted %s, replaced by the upload %s of %s", name, newest, key)
