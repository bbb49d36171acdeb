"""The local disk's side of direct uploads: tickets for keyed_storage's endpoint, receiving, publishing."""

from __future__ import annotations

import errno
import os
from typing import IO

from ...exceptions import NameTaken, ObjectChanged, ObjectUnreadable
from ...files.sniffing import ContentInfo
from ...signed import DiskTicket, Expired, Invalid
from .base import (
    TicketRefused,
    endpoint_path,
    file_version,
    fsync_directory,
    place_new,
    remove_file,
)
from .storage import LocalStoring


class LocalDirect(LocalStoring):
    """Direct uploads to the disk: a POST to keyed_storage's endpoint carrying a signed ticket
    (keyed_storage.signed.DiskTicket), received into a temporary, published by a hard link."""

    def direct_ticket(self, name: str, *, size: int, expires: int) -> tuple[str, dict[str, str]]:
        """(url, fields) of a POST to keyed_storage's endpoint that may create `name` once, with
        exactly `size` bytes, within `expires` seconds.

        The grant is signed into the URL itself, so the endpoint refuses a request before reading
        a byte of its body. `expires` is checked by open_ticket(), given the same lifetime.
        """
        ticket = DiskTicket(name, size).sign()
        return self.origin(name) + endpoint_path("keyed_storage:direct-upload", ticket), {"key": name}

    @staticmethod
    def open_ticket(ticket: str, expires: int) -> DiskTicket:
        """The grant a ticket made by direct_ticket() carries; TicketRefused if it is not one,
        was altered, or is older than `expires` seconds."""
        try:
            return DiskTicket.open(ticket, max_age=expires)
        except Expired as error:
            raise TicketRefused("This upload ticket has expired.") from error
        except Invalid as error:
            raise TicketRefused("This is not a valid upload ticket.") from error

    def incoming(self, name: str) -> Incoming:
        """A new direct upload of `name`, written beside it until it is whole (see Incoming)."""
        return Incoming(self, name)

    def read_start(self, name: str, length: int, version: str) -> bytes:
        """The first `length` bytes of `name`; ObjectChanged if it is no longer `version`."""
        try:
            with open(self.path(name), "rb") as file:
                if file_version(os.fstat(file.fileno())) != version:
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
        and bytes each time it is served (keyed_storage.responders), as for any saved file."""
        source, target = self.path(upload), self.path(name)
        made = self._make_directory(os.path.dirname(target))
        try:
            try:
                if file_version(os.stat(source)) != version:
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


class Incoming:
    """A direct upload being received: the bytes go to a temporary file beside the target, and
    only a whole file is placed, under its name only if nothing has it yet (so a ticket can
    never replace a file, not even the one it created). Anything else leaves nothing behind:
    no temporary file, no directory made for it."""

    def __init__(self, backend: LocalDirect, name: str):
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
        place_new(self._temporary, self._path, self.name)
        self._finished = True
        remove_file(self._temporary)
        fsync_directory(self._directory)

    def discard(self) -> None:
        """Remove what an unfinished upload wrote; nothing once it is placed."""
        if self._finished:
            return
        self._finished = True
        if self._file is not None:
            self._file.close()
        if self._temporary is not None:
            remove_file(self._temporary)
        self._backend._remove_empty(reversed(self._created))
