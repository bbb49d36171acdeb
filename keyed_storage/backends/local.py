"""Local disk: atomic writes under MEDIA_ROOT, links made absolute from the base URL or the request."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import IO, Any

from django.core.files.storage import FileSystemStorage

from ..config import Config
from ..content import ContentInfo
from ..exceptions import NameTaken, NoOrigin, StorageError
from ..origin import current_origin
from ..percent import url_path

TEMP_PREFIX = ".keyed-"  # in-progress writes; never listed, never a key (keys have no '.keyed-' files)
COPY_CHUNK = 1024 * 1024


class LocalBackend(FileSystemStorage):
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

    # Narrower than Storage.url(name: str | None): KeyedStorage.url() turns None into '' first.
    def url(self, name: str) -> str:  # type: ignore[override]
        if self._absolute_media_url:
            return self.keyed_config.media_url + url_path(name)
        origin = self.keyed_config.base_url or current_origin()
        if origin is None:
            raise NoOrigin(name)  # never a made-up host that serves nothing
        return origin + self.keyed_config.media_url + url_path(name)

    def store(
        self,
        name: str,
        content: IO[Any],
        info: ContentInfo,
        *,
        exclusive: bool = False,
        cache_control: str | None = None,
    ) -> str:
        """Write atomically: a temporary file beside the target, fsync, then into place.

        A reader sees the old file or the whole new one, never a part; a writer killed
        midway leaves the old file in place and only a '.keyed-*' temporary behind. An
        exclusive write creates the name only if nothing is there (a hard link, which fails
        if the name exists, as open(O_EXCL) does) and raises NameTaken otherwise. A failed
        write removes the directories it created, so no empty token directory stays.

        A file has nowhere to keep a Cache-Control, so `cache_control` is not stored: the view
        that serves the file decides it from the name (keyed_storage.responders).
        """
        path = self.path(name)
        directory = os.path.dirname(path)
        created: list[str] = []
        try:
            created = self._make_directory(directory)
            if not self._move_upload(content, name, path, exclusive):
                self._write(content, name, directory, path, exclusive)
        except BaseException as error:
            self._remove_empty(reversed(created))
            if isinstance(error, NameTaken):
                raise
            if isinstance(error, (NotADirectoryError, FileExistsError)):
                raise self._conflict(name, "a part of the key is already a file") from error
            if isinstance(error, IsADirectoryError):
                raise self._conflict(name, "that key is a directory holding other keys' files") from error
            raise
        _fsync_directory(directory)
        return name

    @property
    def _file_mode(self) -> int:
        # Read at each write: FILE_UPLOAD_PERMISSIONS may change at run time (tests do).
        mode = self.file_permissions_mode
        return mode if mode is not None else 0o666 & ~self._umask

    def _write(self, content: IO[Any], name: str, directory: str, path: str, exclusive: bool) -> None:
        temporary = self._temporary(directory)
        try:
            with open(temporary, "wb") as out:
                shutil.copyfileobj(content, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self._file_mode)
            if exclusive:
                _place_new(temporary, path, name)
            else:
                os.replace(temporary, path)
        finally:
            _remove(temporary)  # gone already once placed

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

    def _move_upload(self, content: IO[Any], name: str, path: str, exclusive: bool) -> bool:
        """Rename a large upload's temporary file into place instead of copying its bytes.

        Django spools big uploads to a file (TemporaryUploadedFile); on the same file system
        one rename stores it, atomically. The file is fsynced first, as a copy would be. The
        upload object keeps reading the same bytes through its open descriptor.
        """
        source = getattr(content, "temporary_file_path", None)
        if not callable(source):
            return False
        source = source()
        try:
            with open(source, "rb") as stored:
                os.fsync(stored.fileno())
            os.chmod(source, self._file_mode)
            if exclusive:
                _place_new(source, path, name)
                _remove(source)
            else:
                os.replace(source, path)
        except NameTaken:
            raise
        except OSError as error:
            if error.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES):
                return False  # another file system, or not ours to move: copy instead
            raise
        return True

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

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        directories, files = super().listdir(path)
        return directories, [file for file in files if not file.startswith(TEMP_PREFIX)]

    def files_starting_with(self, prefix: str) -> list[str]:
        """Names of the files in `prefix`'s directory that start with `prefix`."""
        directory, _, start = prefix.rpartition("/")
        try:
            _, files = self.listdir(directory)
        except FileNotFoundError:
            return []
        return [f"{directory}/{file}" if directory else file for file in files if file.startswith(start)]

    def names_under(self, key: str) -> list[str]:
        """Every file named '<key>/...', nested keys included (in-progress temporaries left out)."""
        top = self.path(key)
        names = []
        for directory, _, files in os.walk(top):
            relative = os.path.relpath(directory, self.location).replace(os.sep, "/")
            names += [f"{relative}/{file}" for file in files if not file.startswith(TEMP_PREFIX)]
        return names

    def delete_many(self, names: list[str]) -> None:
        """Delete `names` (those already gone are fine) and the directories they leave empty."""
        for name in names:
            path = self.path(name)
            _remove(path)
            self.remove_empty_parents(path)

    def delete(self, name: str) -> None:
        super().delete(name)
        # A key's directories hold nothing but its uploads: once the last file under one
        # is gone, remove the empty directories up to MEDIA_ROOT, so none pile up.
        self.remove_empty_parents(self.path(name))


def _place_new(source: str, path: str, name: str) -> None:
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


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_directory(directory: str) -> None:
    # Make the rename itself durable, not only the file's bytes.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except FileNotFoundError:
        return  # a newer upload of the key already replaced this file and swept its directory
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
