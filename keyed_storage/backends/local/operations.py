"""What the operations (doctor, sync, orphans) ask of the local disk: listings, looks, checked writes."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from ...caching import cache_control
from ...files.sniffing import GENERIC, ContentInfo
from ...keys import PARTS_DIRECTORY, has_token
from ..protocols import Digest, Listing, Look, Stored
from .base import (
    COPY_CHUNK,
    TEMP_PREFIX,
    fsync_directory,
    remove_file,
)
from .storage import LocalStoring


class LocalOperations(LocalStoring):
    """What doctor, sync and orphans ask of the disk."""

    def identity(self) -> str:
        """Files are read and written as the user the site runs as."""
        return f"the site's own user ({getpass.getuser()})"

    def region(self) -> None:
        """A disk is in no region."""

    def listing(self, prefix: str, limit: int) -> Listing:
        """Up to `limit` file names starting with `prefix`, in name order; the clock is this machine's."""
        names = sorted(name for name, _ in self.inventory() if name.startswith(prefix))
        return Listing(names[:limit], None)

    def incomplete_upload_expiry(self) -> int | None:
        """None: nothing here removes the parts of a multipart direct upload never finished
        (in the parts directory, which no key can name) but `keyed_storage orphans --delete`,
        which aborts those begun before its grace period. A save cut short leaves at most a
        '.keyed-*' temporary, which no listing shows and the same command removes."""
        return None

    def browser_origins(self, method: str) -> list[str] | None:
        """None: direct uploads go to keyed_storage's endpoint, on the site's own origin."""
        return None

    def look(self, name: str) -> Look | None:
        """The file's size, and the Cache-Control the local view sends for its name."""
        found = self.head(name)
        if found is None:
            return None
        sent = cache_control(self.keyed_config, immutable=has_token(name))
        return Look(found.size, sent, {})

    def digest(self, name: str, look: Look, *, recorded: bool = True) -> Digest | None:
        """None: a file carries no checksum; only reading it tells."""
        return None

    def stream(self, name: str) -> Iterator[bytes]:
        with open(self.path(name), "rb") as file:
            while chunk := file.read(COPY_CHUNK):
                yield chunk

    def part_size(self, size: int) -> None:
        """A file is written in one piece."""

    def store_file(self, name: str, path: str, *, md5: str, progress: Callable[[int], object]) -> None:
        """Copy the file at `path` in as store() writes (atomically); a file has nowhere to keep `md5`."""
        with open(path, "rb") as file:
            # The disk keeps no headers: the view decides them from the bytes when serving.
            self.store(name, file, ContentInfo(GENERIC, attachment=False))
            progress(os.fstat(file.fileno()).st_size)

    def refresh_cache_control(self, name: str, look: Look) -> bool:
        """False: the local view decides the header from the name each time it serves the file."""
        return False

    def store_checked(self, name: str, chunks: Iterable[bytes], check: Callable[[], None]) -> None:
        """Write `chunks` as `name` once `check()` has passed (it raises to refuse them).

        They go to a '.keyed-*' temporary beside the target, which no listing shows, so
        neither a reader nor a key's replacement sweep sees a file before it is whole and
        checked; then it is renamed into place, replacing what was there. Directories are made
        with FILE_UPLOAD_DIRECTORY_PERMISSIONS and the file gets FILE_UPLOAD_PERMISSIONS, as a
        save's. A refusal or an interruption leaves `name` as it was and removes the
        temporary and the directories made for it.
        """
        path = self.path(name)
        directory = os.path.dirname(path)
        created = self._make_directory(directory)
        temporary = None
        try:
            temporary = self._temporary(directory)
            with open(temporary, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            check()
            os.chmod(temporary, self.file_mode)
            os.replace(temporary, path)
        except BaseException:
            if temporary is not None:
                remove_file(temporary)
            self._remove_empty(reversed(created))
            raise
        fsync_directory(directory)

    def inventory(self) -> Iterator[tuple[str, int]]:
        """(name, size) of every file under MEDIA_ROOT, in name order, without the temporaries
        of writes in progress or cut short (which are never a key's file)."""
        for directory, subdirectories, files in os.walk(self.location):
            if directory == self.location and PARTS_DIRECTORY in subdirectories:
                subdirectories.remove(PARTS_DIRECTORY)  # uploads in progress, not objects
            subdirectories.sort()
            for file in sorted(files):
                if not file.startswith(TEMP_PREFIX):
                    path = os.path.join(directory, file)
                    yield self._relative(path), os.path.getsize(path)

    # Every stored object with its time (keyed_storage.ops.orphans) ----------------------------

    def stored_objects(self, under: str = "") -> Iterator[Stored]:
        """Every file under MEDIA_ROOT with its size and mtime, in the order of the names' UTF-8
        bytes, as S3 lists: each directory is read whole (one os.scandir) and its entries sorted,
        a subdirectory as its name plus '/', since every name under it starts so. Memory grows
        with the largest directory and the depth, not with the count of files.

        Temporaries of writes (in progress or cut short) are listed, flagged. Directories are
        not objects; symbolic links are listed as files and never followed; a name the file
        system holds in bytes that are not UTF-8 is no key and is left out. `under`: only the
        files under that key's directory."""
        if under:
            yield from self._stored_objects(self.path(under), under + "/")
        else:
            yield from self._stored_objects(self.location, "")

    def _stored_objects(self, directory: str, prefix: str) -> Iterator[Stored]:
        try:
            with os.scandir(directory) as found:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in found
                    if _utf8(entry.name)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return  # removed meanwhile (its last file deleted): nothing left to list
        # Python compares str by code point, which is the order of their UTF-8 bytes.
        entries.sort(key=lambda pair: pair[0])
        for sort_name, entry in entries:
            if not prefix and sort_name == PARTS_DIRECTORY + "/":
                continue  # parts of multipart uploads in progress: incomplete_uploads() lists those
            if sort_name.endswith("/"):
                yield from self._stored_objects(entry.path, prefix + sort_name)
                continue
            try:
                found_stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted since the directory was read
            yield Stored(
                prefix + entry.name,
                found_stat.st_size,
                datetime.fromtimestamp(found_stat.st_mtime, UTC),
                temporary=entry.name.startswith(TEMP_PREFIX),
            )


def _utf8(filename: str) -> bool:
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes of bytes that are not UTF-8
        return False
    return True
