"""What every capability of the local disk shares: MEDIA_ROOT, directories, temporaries, atomic placing."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from django.urls import NoReverseMatch, reverse

from ...config import Config
from ...exceptions import NameTaken, NoOrigin, StorageError
from ...serving.origin import current_origin

TEMP_PREFIX = ".keyed-"  # in-progress writes; never listed, never a key (keys have no '.keyed-' files)
COPY_CHUNK = 1024 * 1024


class TicketRefused(Exception):
    """A local direct-upload ticket that is altered, expired or not a ticket at all."""


class LocalBase(FileSystemStorage):
    """Django's FileSystemStorage under MEDIA_ROOT with what every capability of LocalBackend
    (keyed_storage.backends.local) builds on: directories made and removed, temporaries."""

    backend = "local"
    # FileSystemStorage computes it with os.path.abspath(), so it is a str, never a Path.
    location: str

    def __init__(self, config: Config):
        # Uniqueness is decided by KeyedStorage: it asks for exclusive writes where a name
        # must be new, and for plain ones (replacing what is there) where it may not be.
        super().__init__(location=config.media_root, base_url=config.media_url, allow_overwrite=True)
        self.keyed_config = config
        self._absolute_media_url = "://" in config.media_url
        self._umask = _umask()

    def origin(self, name: str = "") -> str:
        """The origin this site's own URLs start with (the base URL, else the current request's)."""
        origin = self.keyed_config.base_url or current_origin()
        if origin is None:
            raise NoOrigin(name)  # never a made-up host that serves nothing
        return origin

    @property
    def file_mode(self) -> int:
        # Read at each write: FILE_UPLOAD_PERMISSIONS may change at run time (tests do).
        mode = self.file_permissions_mode
        return mode if mode is not None else 0o666 & ~self._umask

    def _temporary(self, directory: str) -> str:
        # A concurrent delete may remove an empty directory between our makedirs and the
        # file's creation; make it again (a bounded number of times).
        for attempt in range(3):
            try:
                fd, temporary = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=".part")
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._make_directory(directory)
                continue
            os.close(fd)
            return temporary
        raise AssertionError("unreachable")

    def _conflict(self, name: str, why: str) -> StorageError:
        return StorageError(
            f"Cannot store {name!r} under {self.location!r}: {why} (on the local disk a key "
            "stored with exact=True cannot also hold other keys, nor the reverse).",
            name=name,
            location=self.location,
        )

    def _make_directory(self, directory: str) -> list[str]:
        """Create `directory` and its missing parents; return those it created, outermost first."""
        missing = []
        parent = directory
        while parent != self.location and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        if self.directory_permissions_mode is None:
            os.makedirs(directory, exist_ok=True)
        else:
            old = os.umask(0o777 & ~self.directory_permissions_mode)
            try:
                os.makedirs(directory, self.directory_permissions_mode, exist_ok=True)
            finally:
                os.umask(old)
        return missing[::-1]

    def _remove_empty(self, directories: Iterable[str]) -> None:
        for directory in directories:
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (another upload is using it) or already gone

    def remove_empty_parents(self, path: str) -> None:
        """Remove the empty directories from `path`'s parent up to MEDIA_ROOT (never MEDIA_ROOT)."""
        root = self.location.rstrip(os.sep)
        directory = os.path.dirname(path)
        parents = []
        while directory.startswith(root + os.sep):
            parents.append(directory)
            directory = os.path.dirname(directory)
        self._remove_empty(parents)

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.location).replace(os.sep, "/")


def endpoint_path(route: str, ticket: str) -> str:
    """The path of keyed_storage's endpoint `route` for `ticket`; ImproperlyConfigured, saying
    what to add, when keyed_storage.urls is not routed."""
    try:
        return reverse(route, kwargs={"ticket": ticket})
    except NoReverseMatch as error:
        raise ImproperlyConfigured(
            "Direct uploads on the local disk are received by keyed_storage's endpoint, which "
            "is not routed: add path('', include('keyed_storage.urls')) to the project's "
            "URLconf (it also serves MEDIA_URL)."
        ) from error


def file_version(found: os.stat_result) -> str:
    return f"{found.st_ino:x}-{found.st_mtime_ns:x}-{found.st_size:x}"


def place_new(source: str, path: str, name: str) -> None:
    """Give `source`'s file the name `path` only if nothing has that name: NameTaken otherwise."""
    try:
        os.link(source, path)
    except FileExistsError:
        raise NameTaken(name) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A file system without hard links: claim the name with O_EXCL, then rename over
        # the claim. A reader may see an empty file for that instant; none is ever lost.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise NameTaken(name) from None
        os.replace(source, path)


def _umask() -> int:
    # Read once per backend, while it is built under the backends lock.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_directory(directory: str) -> None:
    # Make the rename itself durable, not only the file's bytes.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return  # a newer upload of the key already replaced this file and swept its directory
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
