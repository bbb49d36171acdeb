"""Local disk: atomic writes under MEDIA_ROOT, links made absolute from the base URL or the request."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from urllib.parse import quote

from django.core.files.storage import FileSystemStorage

from ..config import Config
from ..content import ContentInfo
from ..exceptions import NoOrigin, StorageError
from ..keys import is_token
from ..origin import current_origin

TEMP_PREFIX = ".keyed-"  # in-progress writes; never listed, never a key (keys have no '.keyed-' files)
COPY_CHUNK = 1024 * 1024


def url_path(name: str) -> str:
    """Percent-encode an object name once for a URL path ('+' and '#' included)."""
    return quote(name, safe="/~")


class LocalBackend(FileSystemStorage):
    backend = "local"

    def __init__(self, config: Config):
        # Uniqueness is decided by KeyedStorage.get_available_name; the backend writes where told.
        super().__init__(location=config.media_root, base_url=config.media_url, allow_overwrite=True)
        self.keyed_config = config
        self._absolute_media_url = "://" in config.media_url
        mode = self.file_permissions_mode
        self._file_mode = mode if mode is not None else 0o666 & ~_umask()

    def url(self, name: str) -> str:
        if self._absolute_media_url:
            return self.keyed_config.media_url + url_path(name)
        origin = self.keyed_config.base_url or current_origin()
        if origin is None:
            raise NoOrigin(name)  # never a made-up host that serves nothing
        return origin + self.keyed_config.media_url + url_path(name)

    def store(self, name: str, content, info: ContentInfo) -> str:
        """Write atomically: a temporary file beside the target, fsync, then rename over it.

        A reader sees the old file or the whole new one, never a part; a writer killed
        midway leaves the old file in place and only a '.keyed-*' temporary behind.
        """
        path = self.path(name)
        directory = os.path.dirname(path)
        try:
            self._make_directory(directory)
            if not self._move_upload(content, path):
                self._write(content, directory, path)
        except (NotADirectoryError, FileExistsError) as error:
            raise self._conflict(name, "a part of the key is already a file") from error
        except IsADirectoryError as error:
            raise self._conflict(name, "that key is a directory holding other keys' files") from error
        _fsync_directory(directory)
        return name

    def _write(self, content, directory: str, path: str) -> None:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(content, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self._file_mode)
            os.replace(temporary, path)
        except BaseException:
            _remove(temporary)
            raise

    def _conflict(self, name: str, why: str) -> StorageError:
        return StorageError(
            f"Cannot store {name!r} under {self.location!r}: {why} (on the local disk a key "
            "stored with exact=True cannot also hold other keys, nor the reverse).",
            name=name,
            location=self.location,
        )

    def _move_upload(self, content, path: str) -> bool:
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
            os.replace(source, path)
        except OSError as error:
            if error.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES):
                return False  # another file system, or not ours to move: copy instead
            raise
        return True

    def _make_directory(self, directory: str) -> None:
        if self.directory_permissions_mode is None:
            os.makedirs(directory, exist_ok=True)
            return
        old = os.umask(0o777 & ~self.directory_permissions_mode)
        try:
            os.makedirs(directory, self.directory_permissions_mode, exist_ok=True)
        finally:
            os.umask(old)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        directories, files = super().listdir(path)
        return directories, [file for file in files if not file.startswith(TEMP_PREFIX)]

    def delete(self, name: str) -> None:
        super().delete(name)
        # An upload's token directory holds that one file; remove it so no empty
        # directories pile up under a key that is replaced every day.
        parent = os.path.dirname(self.path(name))
        if is_token(os.path.basename(parent)):
            try:
                os.rmdir(parent)
            except OSError:
                pass  # not empty: a write is in progress there, so it stays


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
