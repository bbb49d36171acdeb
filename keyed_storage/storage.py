"""KeyedStorage: the one Storage that applications use; it picks the backend the environment names."""

from __future__ import annotations

import io
from contextvars import ContextVar
from typing import Any

from django.core.files import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from . import backends, config
from .content import SNIFF_BYTES, identify
from .keys import has_token, is_token, validate_key

# Set for the duration of one save(overwrite=True); a ContextVar, as one storage serves many threads.
_overwriting: ContextVar[bool] = ContextVar("keyed_storage_overwriting", default=False)


@deconstructible(path="keyed_storage.KeyedStorage")
class KeyedStorage(Storage):
    """Stores files in S3 when BUCKET_NAME is set, on the local disk under MEDIA_ROOT otherwise.

    It takes no arguments, and nothing from the environment is kept in the instance, so
    migrations never change with the environment. The backend is resolved on first use and
    again whenever the configuration is reset (see keyed_storage.config.reset).
    """

    @property
    def _impl(self) -> Storage:
        return backends.for_config(config.current())

    @property
    def backend(self) -> str:
        """'s3' or 'local': where files go under the current configuration."""
        return config.current().backend

    def __repr__(self) -> str:
        return "<KeyedStorage>"

    # Saving -----------------------------------------------------------------------------

    def save(
        self, name: str | None, content: Any, max_length: int | None = None, *, overwrite: bool = False
    ) -> str:
        """Django's save(), plus `overwrite=True` to store at exactly `name`, replacing what is there."""
        if name is None:
            name = content.name
        name = validate_key(name)
        token = _overwriting.set(overwrite)
        try:
            return super().save(name, content, max_length=max_length)
        finally:
            _overwriting.reset(token)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        name = validate_key(name)
        if _overwriting.get() or has_token(name):
            # A fresh random token makes the name unique: no exists() round trip needed.
            return name
        return super().get_available_name(name, max_length=max_length)

    def _save(self, name: str, content: Any) -> str:
        head, content = _peek(content)
        info = identify(head, name, getattr(content, "content_type", None))
        return self._impl.store(name, content, info)

    def _open(self, name: str, mode: str = "rb"):
        return self._impl._open(name, mode)

    # The rest of the Storage API, delegated ---------------------------------------------

    def delete(self, name: str) -> None:
        self._impl.delete(name)

    def exists(self, name: str) -> bool:
        return self._impl.exists(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        return self._impl.listdir(path)

    def size(self, name: str) -> int:
        return self._impl.size(name)

    def url(self, name: str) -> str:
        """The absolute URL of `name`. Pure string work (presigning included): no network I/O."""
        return self._impl.url(name)

    def path(self, name: str) -> str:
        return self._impl.path(name)

    def get_accessed_time(self, name: str):
        return self._impl.get_accessed_time(name)

    def get_created_time(self, name: str):
        return self._impl.get_created_time(name)

    def get_modified_time(self, name: str):
        return self._impl.get_modified_time(name)

    # Keys ---------------------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete every object under `prefix` (a whole key, e.g. 'events/7'); return their names."""
        from .prefixes import delete_prefix

        return delete_prefix(self._impl, prefix)

    def earlier_objects(self, key: str) -> list[str]:
        """Names of the objects earlier uploads stored under `key` (<key>/<token>/<file>).

        Objects of longer keys nested under it (events/7/logo/... under events/7) are not
        among them.
        """
        key = validate_key(key)
        return [name for token in self.key_tokens(key) for name in self.token_objects(key, token)]

    def key_tokens(self, key: str) -> list[str]:
        """The tokens of the uploads stored under `key`: one listing request."""
        try:
            directories, _ = self._impl.listdir(key)
        except FileNotFoundError:
            return []
        return [directory for directory in directories if is_token(directory)]

    def token_objects(self, key: str, token: str) -> list[str]:
        """The object(s) one upload stored under `key`: one listing request."""
        prefix = f"{key}/{token}"
        try:
            _, files = self._impl.listdir(prefix)
        except FileNotFoundError:
            return []
        return [f"{prefix}/{file}" for file in files]


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


def _peek(content: Any) -> tuple[bytes, Any]:
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
