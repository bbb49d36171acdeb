"""Local disk: atomic writes under MEDIA_ROOT, links made absolute from the base URL or the request."""

from __future__ import annotations

import errno
import getpass
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from django.urls import NoReverseMatch, reverse

from ..caching import cache_control
from ..config import Config
from ..exceptions import NameTaken, NoOrigin, ObjectChanged, ObjectUnreadable, StorageError
from ..files.sniffing import GENERIC, ContentInfo
from ..keys import PARTS_DIRECTORY, has_token
from ..numbers import whole_number
from ..serving.origin import current_origin
from . import Digest, Head, Listing, Look, Part, Stored
from .percent import url_path

TEMP_PREFIX = ".keyed-"  # in-progress writes; never listed, never a key (keys have no '.keyed-' files)
COPY_CHUNK = 1024 * 1024
# Direct-upload tickets of the local endpoint are signed with this salt, so no other signed
# value of the site (a session, a password-reset token, a direct-upload reference) is one.
TICKET_SALT = "keyed_storage.backends.local.direct-ticket"
# Part URLs of multipart direct uploads are signed with their own salt: no ticket is one.
PART_SALT = "keyed_storage.backends.local.direct-part"
# In a multipart upload's directory: the name of the file it will create.
TARGET_FILE = "name"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# What copy_file_range() answers where the kernel or the file system cannot do it.
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)


class Grant(NamedTuple):
    """What a valid local direct-upload ticket allows: one new file, `name`, of exactly `size` bytes."""

    name: str
    size: int


class TicketRefused(Exception):
    """A local direct-upload ticket that is altered, expired or not a ticket at all."""


class PartGrant(NamedTuple):
    """What a valid local part URL allows: part `number` of upload `upload_id` of `name`, `size` bytes."""

    name: str
    upload_id: str
    number: int
    size: int


class PartRefused(Exception):
    """A part that cannot be stored: its upload is gone, or its body is not its size."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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
        # origin() inlined: this runs for every link on a page.
        origin = self.keyed_config.base_url or current_origin()
        if origin is None:
            raise NoOrigin(name)  # never a made-up host that serves nothing
        return origin + self.keyed_config.media_url + url_path(name)

    def origin(self, name: str = "") -> str:
        """The origin this site's own URLs start with (the base URL, else the current request's)."""
        origin = self.keyed_config.base_url or current_origin()
        if origin is None:
            raise NoOrigin(name)  # never a made-up host that serves nothing
        return origin

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
        that serves the file decides it from the name (keyed_storage.serving.responses).
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
    def file_mode(self) -> int:
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
            os.chmod(temporary, self.file_mode)
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
            os.chmod(source, self.file_mode)
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

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.location).replace(os.sep, "/")

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

    # Direct uploads ------------------------------------------------------------------------

    def direct_ticket(self, name: str, *, size: int, expires: int) -> tuple[str, dict[str, str]]:
        """(url, fields) of a POST to keyed_storage's endpoint that may create `name` once, with
        exactly `size` bytes, within `expires` seconds.

        The grant is signed into the URL itself, so the endpoint refuses a request before reading
        a byte of its body. `expires` is checked by open_ticket(), given the same lifetime.
        """
        ticket = signing.dumps({"n": name, "s": size}, salt=TICKET_SALT, compress=True)
        return self.origin(name) + _endpoint("keyed_storage:direct-upload", ticket), {"key": name}

    @staticmethod
    def open_ticket(ticket: str, expires: int) -> Grant:
        """The grant a ticket made by direct_ticket() carries; TicketRefused if it is not one,
        was altered, or is older than `expires` seconds."""
        try:
            payload = signing.loads(ticket, salt=TICKET_SALT, max_age=expires)
            return Grant(str(payload["n"]), int(payload["s"]))
        except signing.SignatureExpired as error:
            raise TicketRefused("This upload ticket has expired.") from error
        except (signing.BadSignature, KeyError, TypeError, ValueError) as error:
            raise TicketRefused("This is not a valid upload ticket.") from error

    def incoming(self, name: str) -> Incoming:
        """A new direct upload of `name`, written beside it until it is whole (see Incoming)."""
        return Incoming(self, name)

    def head(self, name: str) -> Head | None:
        """Size and version of the file `name`, or None if there is no such file."""
        try:
            found = os.stat(self.path(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(found.st_mode):
            return None
        return Head(found.st_size, _version(found))

    def read_start(self, name: str, length: int, version: str) -> bytes:
        """The first `length` bytes of `name`; ObjectChanged if it is no longer `version`."""
        try:
            with open(self.path(name), "rb") as file:
                if _version(os.fstat(file.fileno())) != version:
                    raise ObjectChanged(f"{name!r} was replaced while it was being checked.", name=name)
                return file.read(length)
        except FileNotFoundError as error:
            raise ObjectChanged(f"{name!r} was removed while it was being checked.", name=name) from error
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            # The disk has the file and cannot read it (a bad sector, a lost network volume).
            raise ObjectUnreadable(
                f"Could not read {name!r} under {self.location!r}: {error}", name=name, location=self.location
            ) from error

    def publish(
        self,
        upload: str,
        name: str,
        info: ContentInfo,
        version: str,
        *,
        cache_control: str | None = None,
        size: int = 0,
    ) -> None:
        """Move the checked file `upload` to the new name `name` (a hard link, made only if
        `name` is free, then the unlink of `upload`), if `upload` is still `version`; the file
        is then dated now, so its age (for `orphans`) counts from its publication, not from
        the upload's arrival.

        Headers (Cache-Control included) need nothing here: a file's are decided from its name
        and bytes each time it is served (keyed_storage.serving.responses), as for any saved file."""
        source, target = self.path(upload), self.path(name)
        made = self._make_directory(os.path.dirname(target))
        try:
            try:
                if _version(os.stat(source)) != version:
                    raise ObjectChanged(f"{upload!r} was replaced while it was being checked.", name=upload)
                os.link(source, target)
            except FileNotFoundError as error:
                raise ObjectChanged(
                    f"{upload!r} was removed while it was being checked.", name=upload
                ) from error
            except FileExistsError as error:
                raise NameTaken(name) from error
        except BaseException:
            self._remove_empty(reversed(made))
            raise
        self.delete(upload)
        # Only now: while `upload` still named the same inode, a new time would have been its too.
        os.utime(target)

    def settle(
        self, name: str, info: ContentInfo, version: str, *, cache_control: str | None = None, size: int = 0
    ) -> None:
        """Nothing to give a completed upload: headers are decided each time a file is served.
        ObjectChanged if `name` is no longer `version`."""
        found = self.head(name)
        if found is None or found.version != version:
            raise ObjectChanged(f"{name!r} was replaced or removed while it was being checked.", name=name)

    # Operations: what doctor and sync ask of the disk -------------------------------------

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
                _remove(temporary)
            self._remove_empty(reversed(created))
            raise
        _fsync_directory(directory)

    # Multipart direct uploads (keyed_storage.direct.multipart) --------------------------------------
    #
    # An upload is a directory <MEDIA_ROOT>/.keyed-storage-parts/<upload id>/ (no key can name
    # it, see keys.PARTS_DIRECTORY) holding the target's name and one file per part, each
    # written to a temporary and renamed, so a part is whole or absent. Completing copies the
    # parts, in order, into a temporary beside the target and links it into place only if the
    # name is new, as a single direct upload is placed; then the directory goes. The target is
    # the published name itself, so this one copy is the only one (a POST's file is published
    # by a hard link). It is a copy of every byte, in-kernel (os.copy_file_range: a reflink on
    # file systems that have them, XFS and Btrfs); a plain disk cannot join files otherwise.

    def _upload_directory(self, upload_id: str) -> str:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"{upload_id!r} is not an upload id of this disk.")
        return os.path.join(self.location, PARTS_DIRECTORY, upload_id)

    def _upload_of(self, name: str, upload_id: str) -> str | None:
        """The upload's directory, if it exists and is an upload of `name`."""
        directory = self._upload_directory(upload_id)
        try:
            with open(os.path.join(directory, TARGET_FILE), encoding="utf-8") as target:
                return directory if target.read() == name else None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def start_parts(
        self, name: str, info: ContentInfo | None = None, *, cache_control: str | None = None
    ) -> str:
        """A directory of parts for `name`; `info` and `cache_control` need no storing (headers
        are decided each time a file is served)."""
        upload_id = secrets.token_hex(16)
        directory = self._upload_directory(upload_id)
        self._make_directory(directory)
        temporary = self._temporary(directory)
        with open(temporary, "w", encoding="utf-8") as target:
            target.write(name)
        os.replace(temporary, os.path.join(directory, TARGET_FILE))
        return upload_id

    def part_url(self, name: str, upload_id: str, number: int, *, size: int, expires: int) -> str:
        """A PUT to keyed_storage's endpoint, the grant signed into the URL (as a ticket is);
        `expires` is checked by open_part_ticket(), given the same lifetime."""
        grant = {"n": name, "u": upload_id, "i": number, "s": size}
        ticket = signing.dumps(grant, salt=PART_SALT, compress=True)
        path = _endpoint("keyed_storage:direct-part", ticket)
        # partNumber as in S3's part URLs, for logs and tools; the signed ticket alone decides.
        return f"{self.origin(name)}{path}?partNumber={number}"

    @staticmethod
    def open_part_ticket(ticket: str, expires: int) -> PartGrant:
        """The grant a part URL made by part_url() carries; TicketRefused if it is not one,
        was altered, or is older than `expires` seconds."""
        try:
            payload = signing.loads(ticket, salt=PART_SALT, max_age=expires)
            return PartGrant(str(payload["n"]), str(payload["u"]), int(payload["i"]), int(payload["s"]))
        except signing.SignatureExpired as error:
            raise TicketRefused("This part URL has expired: ask for a new one.") from error
        except (signing.BadSignature, KeyError, TypeError, ValueError) as error:
            raise TicketRefused("This is not a valid part URL.") from error

    def receive_part(self, grant: PartGrant, chunks: Iterable[bytes]) -> None:
        """Store one part from `chunks` (a request body, read a chunk at a time), replacing an
        earlier copy of it only once the new one is whole and exactly `grant.size` bytes."""
        directory = self._upload_of(grant.name, grant.upload_id)
        if directory is None:
            raise PartRefused(404, "This upload was finished or cancelled: start it again.")
        try:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX, suffix=".part")
        except FileNotFoundError:  # finished or cancelled a moment ago
            raise PartRefused(404, "This upload was finished or cancelled: start it again.") from None
        try:
            received = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    received += len(chunk)
                    if received > grant.size:
                        raise PartRefused(413, f"Part {grant.number} is {grant.size} bytes; more were sent.")
                    out.write(chunk)
                if received != grant.size:
                    raise PartRefused(
                        400, f"Part {grant.number} is {grant.size} bytes; {received} were received."
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, os.path.join(directory, str(grant.number)))
        except FileNotFoundError:
            raise PartRefused(404, "This upload was finished or cancelled: start it again.") from None
        finally:
            _remove(temporary)

    def list_parts(self, name: str, upload_id: str) -> list[Part] | None:
        directory = self._upload_of(name, upload_id)
        if directory is None:
            return None
        parts = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if (number := whole_number(entry.name)) is not None:
                        parts.append(Part(number, entry.stat().st_size, ""))
        except FileNotFoundError:
            return None
        return sorted(parts)

    def complete_parts(self, name: str, upload_id: str, parts: list[Part]) -> bool:
        """Assemble the parts into `name` atomically; False if that was done already."""
        upload = self._upload_of(name, upload_id)
        if upload is None:
            return False  # completed (or cancelled) by another request: finish_upload() looks at `name`
        path = self.path(name)
        directory = os.path.dirname(path)
        created = self._make_directory(directory)
        temporary = self._temporary(directory)
        try:
            with open(temporary, "wb") as out:
                for part in parts:
                    with open(os.path.join(upload, str(part.number)), "rb") as source:
                        _append(source, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self.file_mode)
            _place_new(temporary, path, name)
            completed = True
        except NameTaken:
            completed = False  # completed by another request, with the same parts
        except FileNotFoundError:
            # The parts went (completed or cancelled meanwhile): finish_upload() looks at `name`.
            self._remove_empty(reversed(created))
            return False
        finally:
            _remove(temporary)
        _fsync_directory(directory)
        shutil.rmtree(upload, ignore_errors=True)
        return completed

    def abort_parts(self, name: str, upload_id: str) -> None:
        if self._upload_of(name, upload_id) is not None:
            shutil.rmtree(self._upload_directory(upload_id), ignore_errors=True)

    def incomplete_uploads(self) -> Iterator[tuple[str, str, datetime]]:
        root = os.path.join(self.location, PARTS_DIRECTORY)
        try:
            upload_ids = sorted(os.listdir(root))
        except FileNotFoundError:
            return
        for upload_id in upload_ids:
            if not _UPLOAD_ID.fullmatch(upload_id):
                continue
            target = os.path.join(root, upload_id, TARGET_FILE)
            try:
                with open(target, encoding="utf-8") as file:
                    name = file.read()
                started = datetime.fromtimestamp(os.stat(target).st_mtime, UTC)
            except FileNotFoundError:
                continue  # completed or cancelled while listed
            yield name, upload_id, started


def _endpoint(route: str, ticket: str) -> str:
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


class Incoming:
    """A direct upload being received: the bytes go to a temporary file beside the target, and
    only a whole file is placed, under its name only if nothing has it yet (so a ticket can
    never replace a file, not even the one it created). Anything else leaves nothing behind:
    no temporary file, no directory made for it."""

    def __init__(self, backend: LocalBackend, name: str):
        self.name = name
        self.size = 0
        self._backend = backend
        self._path = backend.path(name)
        self._directory = os.path.dirname(self._path)
        self._finished = False
        self._file: IO[bytes] | None = None
        self._temporary: str | None = None
        try:
            self._created = backend._make_directory(self._directory)
        except (NotADirectoryError, FileExistsError) as error:
            raise backend._conflict(name, "a part of the key is already a file") from error
        try:
            self._temporary = backend._temporary(self._directory)
            self._file = open(self._temporary, "wb")
        except BaseException:
            self.discard()
            raise

    def write(self, data: bytes) -> None:
        assert self._file is not None and not self._finished, "placed or discarded already"
        self._file.write(data)
        self.size += len(data)

    def place(self) -> None:
        """Make the bytes durable and give them their name; NameTaken if it is taken."""
        assert self._file is not None and self._temporary is not None and not self._finished
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self._temporary, self._backend.file_mode)
        _place_new(self._temporary, self._path, self.name)
        self._finished = True
        _remove(self._temporary)
        _fsync_directory(self._directory)

    def discard(self) -> None:
        """Remove what an unfinished upload wrote; nothing once it is placed."""
        if self._finished:
            return
        self._finished = True
        if self._file is not None:
            self._file.close()
        if self._temporary is not None:
            _remove(self._temporary)
        self._backend._remove_empty(reversed(self._created))


def _utf8(filename: str) -> bool:
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes of bytes that are not UTF-8
        return False
    return True


def _version(found: os.stat_result) -> str:
    return f"{found.st_ino:x}-{found.st_mtime_ns:x}-{found.st_size:x}"


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


def _append(source: IO[bytes], out: IO[bytes]) -> None:
    """Append the file `source` to `out`, in the kernel where it can (copy_file_range shares
    the blocks on XFS and Btrfs), else through a buffer."""
    out.flush()
    size = os.fstat(source.fileno()).st_size
    offset = 0
    try:
        while offset < size:
            copied = os.copy_file_range(source.fileno(), out.fileno(), size - offset, offset)
            if not copied:
                break
            offset += copied
    except (AttributeError, OSError) as error:  # no copy_file_range here (not Linux, an old kernel)
        if isinstance(error, OSError) and error.errno not in _NO_COPY_FILE_RANGE:
            raise
    source.seek(offset)
    out.seek(0, os.SEEK_END)
    shutil.copyfileobj(source, out, COPY_CHUNK)


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
