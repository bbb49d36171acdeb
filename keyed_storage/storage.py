"""KeyedStorage: the one Storage that applications use; it picks the backend the environment names."""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from . import backends, config
from .caching import cache_control
from .exceptions import NameTaken, StorageError
from .files.sniffing import ContentInfo, identify
from .files.streams import peek, rewind, seekable
from .images.privacy import strip_identifying_metadata
from .keys import (
    alternative_name,
    claim_issued,
    fit_exact_name,
    fit_name,
    is_token,
    reissued_name,
    safe_filename,
    validate_key,
)

if TYPE_CHECKING:
    from _typeshed import StrPath

    from .backends import StorageBackend

# The formats keyed_storage.images.privacy cleans: the rest are stored as they are.
PRIVACY_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})

# Attempts at a free name before giving up: each alternative carries 7 random characters
# (or a new 72-bit token), so a second attempt is already rare; the bound keeps every loop
# finite whatever the storage answers.
MAX_NAME_ATTEMPTS = 100


@dataclass(slots=True)
class _Save:
    """What one save() call asked for, seen by its get_available_name() and _save() hooks."""

    overwrite: bool
    max_length: int | None
    immutable: bool | None = None  # the caller's word on caching; None: decided by provenance
    issued: bool = False  # the name came from keyed_storage.keys.object_name()


# One storage serves many threads and tasks, so per-call state lives in a ContextVar.
_saving: ContextVar[_Save | None] = ContextVar("keyed_storage_saving", default=None)


def _as_name(name: StrPath) -> str:
    """A name as given to the Storage API: a str, or a path-like object as Django accepts."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    return validate_key(name)


@deconstructible(path="keyed_storage.KeyedStorage")
class KeyedStorage(Storage):
    """Stores files in S3 when BUCKET_NAME is set, on the local disk under MEDIA_ROOT otherwise.

    It takes no arguments, and nothing from the environment is kept in the instance, so
    migrations never change with the environment. The backend is resolved on first use and
    again whenever the configuration is reset (see keyed_storage.config.reset).

    Every method that takes a name validates it with the same rules as save() (see
    keyed_storage.keys.validate_key), so no entry point reaches outside its place.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            given = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            raise TypeError(
                f"KeyedStorage() takes no arguments (got {given}): where files go comes from the "
                "environment (BUCKET_NAME, AWS_KEY, AWS_SECRET, ...) and the MEDIA_ROOT and "
                "MEDIA_URL settings. See the configuration reference in keyed_storage's documentation."
            )

    @property
    def _impl(self) -> StorageBackend:
        return backends.for_config(config.current())

    @property
    def backend(self) -> str:
        """'s3' or 'local': where files go under the current configuration."""
        return config.current().backend

    def __repr__(self) -> str:
        return "<KeyedStorage>"

    # Saving -----------------------------------------------------------------------------

    def get_valid_name(self, name: str) -> str:
        """A client's filename made safe (Django calls this for FileField uploads): no path,
        no characters a key refuses, at most 255 bytes with its extension kept."""
        return safe_filename(name)

    def save(
        self,
        name: StrPath | None,
        content: IO[Any],
        max_length: int | None = None,
        *,
        overwrite: bool = False,
        immutable: bool | None = None,
    ) -> str:
        """Django's save(), plus `overwrite=True` to store at exactly `name`, replacing what is there.

        Without overwrite, the name returned is one no other save got: the write itself is
        conditional (created only if absent, on disk and in S3), and a name taken meanwhile
        is replaced by an alternative.

        `immutable` says whether the bytes under this name can ever change, which decides how
        long caches may keep them (see keyed_storage.caching). By default only names
        keyed_storage issued are immutable; an image variant stored beside one says so itself.
        """
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            # A path-like name rides along as the File's name; only the str below names the object.
            content = File(content, name)  # type: ignore[arg-type]
        name = _as_name(name)
        token = _saving.set(_Save(overwrite, max_length, immutable))
        try:
            name = self.get_available_name(name, max_length=max_length)
            return self._save(name, content)
        finally:
            _saving.reset(token)

    def get_available_name(self, name: StrPath, max_length: int | None = None) -> str:
        """A name free for new content, at most `max_length` characters.

        Names keyed_storage issued (<key>/<token>/<filename> from a key builder or upload())
        are unique by their fresh token: only the filename is shortened to fit, never the key
        or the token, and the storage is not asked. Any other name is checked with exists(),
        as Django does; the conditional write in _save() settles any race that remains.
        """
        name = _as_name(name)
        state = _saving.get()
        if state is not None and state.overwrite:
            return fit_exact_name(name, max_length)
        if claim_issued(name):
            if state is not None:
                state.issued = True
            return fit_name(name, max_length)
        name = fit_name(name, max_length)
        for _ in range(MAX_NAME_ATTEMPTS):
            if not self.exists(name):
                return name
            name = alternative_name(name, max_length)
        raise SuspiciousFileOperation(
            f"Storage can not find an available filename for {name!r} after {MAX_NAME_ATTEMPTS} attempts."
        )

    def _save(self, name: str, content: IO[Any]) -> str:
        head, content = peek(content)
        info = identify(head, name, getattr(content, "content_type", None))
        if info.content_type not in PRIVACY_TYPES or config.current().keep_metadata:
            return self._store(name, content, info)
        # Photos lose their location and other identifying metadata before they are stored;
        # the pixels are not touched (see keyed_storage.images.privacy). A stream is copied first.
        readable = seekable(content)
        cleaned = strip_identifying_metadata(readable)
        try:
            return self._store(name, File(cleaned, name=content.name) if cleaned else readable, info)
        finally:
            for made in (cleaned, readable if readable is not content else None):
                if made is not None:
                    made.close()

    def _store(self, name: str, content: IO[Any], info: ContentInfo) -> str:
        state = _saving.get() or _Save(overwrite=False, max_length=None)
        immutable = state.issued if state.immutable is None else state.immutable
        caching = cache_control(config.current(), immutable=immutable)
        if state.overwrite:
            return self._impl.store(name, content, info, exclusive=False, cache_control=caching)
        for _ in range(MAX_NAME_ATTEMPTS):
            try:
                return self._impl.store(name, content, info, exclusive=True, cache_control=caching)
            except NameTaken:
                # Another save took the name between our check and our write.
                if not rewind(content):
                    raise StorageError(
                        f"Could not store {name!r}: a concurrent save took the name, and the "
                        "content is a stream that cannot be read a second time.",
                        name=name,
                    ) from None
                name = (
                    reissued_name(name, state.max_length)
                    if state.issued
                    else alternative_name(name, state.max_length)
                )
        raise StorageError(f"Could not find a free name for {name!r} in {MAX_NAME_ATTEMPTS} attempts.")

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        # The backend's public open(), which calls its own _open() hook.
        return self._impl.open(_as_name(name), mode)

    # The rest of the Storage API, delegated after the same validation -------------------

    def delete(self, name: StrPath) -> None:
        if name is None or name == "":
            raise ValueError("The name must be given to delete().")
        self._impl.delete(_as_name(name))

    def exists(self, name: StrPath) -> bool:
        return self._impl.exists(_as_name(name))

    def listdir(self, path: StrPath) -> tuple[list[str], list[str]]:
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if path in ("", ".", "/"):
            return self._impl.listdir("")
        return self._impl.listdir(_as_name(path.rstrip("/") if isinstance(path, str) else path))

    def size(self, name: StrPath) -> int:
        return self._impl.size(_as_name(name))

    def url(self, name: StrPath | None) -> str:
        """The absolute URL of `name`. Pure string work (presigning included): no network I/O.

        None or '' give the base URL every link starts with, as Django's storages do.
        """
        if name is None or name == "":
            return self._impl.url("")
        return self._impl.url(_as_name(name))

    def path(self, name: StrPath) -> str:
        return self._impl.path(_as_name(name))

    def get_accessed_time(self, name: StrPath) -> datetime:
        return self._impl.get_accessed_time(_as_name(name))

    def get_created_time(self, name: StrPath) -> datetime:
        return self._impl.get_created_time(_as_name(name))

    def get_modified_time(self, name: StrPath) -> datetime:
        return self._impl.get_modified_time(_as_name(name))

    # Keys ---------------------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete every object under `prefix` (a whole key, e.g. 'events/7'); return their names."""
        from .ops.prefixes import delete_prefix

        return delete_prefix(self._impl, prefix)

    def earlier_objects(self, key: str) -> list[str]:
        """Names of the objects earlier uploads stored under `key` (<key>/<token>/<file>, their
        variants included): one listing, paginated past 1000 objects.

        Objects of longer keys nested under it (events/7/logo/... under events/7) are not
        among them.
        """
        return [name for names in self.uploads_of(key).values() for name in names]

    def uploads_of(self, key: str) -> dict[str, list[str]]:
        """The objects stored under `key` by each upload, by token, from one listing."""
        key = validate_key(key)
        uploads: dict[str, list[str]] = {}
        for name in self._impl.names_under(key):
            token, _, filename = name[len(key) + 1 :].partition("/")
            if is_token(token) and filename and "/" not in filename:
                uploads.setdefault(token, []).append(name)
        return uploads

    def delete_many(self, names: list[str]) -> None:
        """Delete `names` in as few requests as the place allows (S3: DeleteObjects per 1000)."""
        if names:
            self._impl.delete_many([_as_name(name) for name in names])

    def names_starting_with(self, prefix: str) -> list[str]:
        """Names of the objects in `prefix`'s directory that start with `prefix`: one listing."""
        return self._impl.files_starting_with(validate_key(prefix))
