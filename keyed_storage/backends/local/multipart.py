"""The local disk's multipart direct uploads: a directory of parts per upload, joined in the kernel."""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO

from ...exceptions import NameTaken
from ...files.sniffing import ContentInfo
from ...keys import PARTS_DIRECTORY
from ...numbers import whole_number
from ...signed import DiskPartTicket, Expired, Invalid
from ..protocols import Part
from .base import (
    COPY_CHUNK,
    TEMP_PREFIX,
    LocalBase,
    TicketRefused,
    endpoint_path,
    fsync_directory,
    place_new,
    remove_file,
)

# In a multipart upload's directory: the name of the file it will create.
TARGET_FILE = "name"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# What copy_file_range() answers where the kernel or the file system cannot do it.
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)


class PartRefused(Exception):
    """A part that cannot be stored: its upload is gone, or its body is not its size."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class LocalMultipart(LocalBase):
    """Multipart direct uploads (keyed_storage.multipart) on the disk, parts sent to
    keyed_storage's endpoint with a signed part ticket (keyed_storage.signed.DiskPartTicket)."""

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
        ticket = DiskPartTicket(name, upload_id, number, size).sign()
        path = endpoint_path("keyed_storage:direct-part", ticket)
        # partNumber as in S3's part URLs, for logs and tools; the signed ticket alone decides.
        return f"{self.origin(name)}{path}?partNumber={number}"

    @staticmethod
    def open_part_ticket(ticket: str, expires: int) -> DiskPartTicket:
        """The grant a part URL made by part_url() carries; TicketRefused if it is not one,
        was altered, or is older than `expires` seconds."""
        try:
            return DiskPartTicket.open(ticket, max_age=expires)
        except Expired as error:
            raise TicketRefused("This part URL has expired: ask for a new one.") from error
        except Invalid as error:
            raise TicketRefused("This is not a valid part URL.") from error

    def receive_part(self, grant: DiskPartTicket, chunks: Iterable[bytes]) -> None:
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
            remove_file(temporary)

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
            place_new(temporary, path, name)
            completed = True
        except NameTaken:
            completed = False  # completed by another request, with the same parts
        except FileNotFoundError:
            # The parts went (completed or cancelled meanwhile): finish_upload() looks at `name`.
            self._remove_empty(reversed(created))
            return False
        finally:
            remove_file(temporary)
        fsync_directory(directory)
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
