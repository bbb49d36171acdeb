"""The local disk's storage: atomic writes, reads, listings, deletes, links (StorageBackend)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import IO, Any

from ...exceptions import NameTaken, NoOrigin
from ...files.sniffing import ContentInfo
from ...keys import PARTS_DIRECTORY
from ...serving.origin import current_origin
from ..percent import url_path
from ..protocols import Head
from .base import (
    COPY_CHUNK,
    TEMP_PREFIX,
    LocalBase,
    file_version,
    fsync_directory,
    place_new,
    remove_file,
)


class LocalStoring(LocalBase):
    """Storing, reading, listing, deleting and linking files: what KeyedStorage asks."""

    # Narrower than Storage.url(name: str | None): KeyedStorage.url() turns None into '' first.
    def url(self, name: str) -> str:  # type: ignore[override]
        if self._absolute_media_url:
            return self.keyed_config.media_url + url_path(name)
        # origin() inlined: this runs for every link on a page.
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
        fsync_directory(directory)
        return name

    def _write(self, content: IO[Any], name: str, directory: str, path: str, exclusive: bool) -> None:
        temporary = self._temporary(directory)
        try:
            with open(temporary, "wb") as out:
                shutil.copyfileobj(content, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self.file_mode)
            if exclusive:
                place_new(temporary, path, name)
            else:
                os.replace(temporary, path)
        finally:
            remove_file(temporary)  # gone already once placed

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
            os.chmod(source, self.file_mode)
            if exclusive:
                place_new(source, path, name)
                remove_file(source)
            else:
                os.replace(source, path)
        except NameTaken:
            raise
        except OSError as error:
            if error.errno in (errno.EXDEV, errno.ENOENT, errno.EPERM, errno.EACCES):
                return False  # another file system, or not ours to move: copy instead
            raise
        return True

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        directories, files = super().listdir(path)
        if not path.strip("/"):
            directories = [directory for directory in directories if directory != PARTS_DIRECTORY]
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

    def names_of_prefix(self, prefix: str) -> list[str]:
        """Names of the file named `prefix` and of every file under its directory, sorted.

        A symbolic link is listed as a file and never followed out of the tree."""
        top = self.path(prefix)  # safe_join: never outside MEDIA_ROOT
        if os.path.islink(top) or os.path.isfile(top):
            return [prefix]
        names: list[str] = []
        for directory, subdirectories, files in os.walk(top):
            entries = files + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]
            names.extend(self._relative(os.path.join(directory, entry)) for entry in entries)
        return sorted(names)

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete the file named `prefix` or its whole directory tree (links removed, not
        followed), then the directories left empty up to MEDIA_ROOT; return the names deleted."""
        top = self.path(prefix)
        if os.path.islink(top) or os.path.isfile(top):
            os.remove(top)
            self.remove_empty_parents(top)
            return [prefix]
        deleted = []
        for directory, subdirectories, files in os.walk(top, topdown=False):
            for entry in files + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]:
                path = os.path.join(directory, entry)
                os.remove(path)
                deleted.append(self._relative(path))
            os.rmdir(directory)
        self.remove_empty_parents(top)  # 'events' goes too once 'events/7' was all it held
        return sorted(deleted)

    def delete_many(self, names: list[str]) -> None:
        """Delete `names` (those already gone are fine) and the directories they leave empty."""
        for name in names:
            path = self.path(name)
            remove_file(path)
            self.remove_empty_parents(path)

    def delete(self, name: str) -> None:
        super().delete(name)
        # A key's directories hold nothing but its uploads: once the last file under one
        # is gone, remove the empty directories up to MEDIA_ROOT, so none pile up.
        self.remove_empty_parents(self.path(name))

    def head(self, name: str) -> Head | None:
        """Size and version of the file `name`, or None if there is no such file."""
        try:
            found = os.stat(self.path(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return Head(found.st_size, file_version(found))
