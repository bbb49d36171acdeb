"""The backend interface, by capability: what storage, direct uploads, multipart uploads and
the operations each ask of a place files can live (as Active Storage's services are keyed by key).

A caller names the capability it uses (storage_backend(), direct_backend(), ... in
keyed_storage.backends), so what it depends on is visible; every place implements them all.
Names given here are already validated. This module imports no backend: backends import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from django.core.files import File

    from ..config import Config
    from ..files.sniffing import ContentInfo


class Head(NamedTuple):
    """What a backend knows of a stored object without reading it."""

    size: int
    # Changes whenever the bytes may have: S3's ETag, the file's inode and mtime on disk.
    # Reads and header updates made against it fail with ObjectChanged once it is stale.
    version: str


# Operations (doctor, sync) ------------------------------------------------------------------


class Look(NamedTuple):
    """What one look at a stored object tells (S3: a HEAD), for sync and the doctor."""

    size: int
    cache_control: str | None
    # The place's own answer, handed back to its digest() and refresh_cache_control() so
    # they need no second look; nobody else reads it.
    answer: Mapping[str, Any]


class Digest(NamedTuple):
    """A checksum a place vouches for without the bytes being read: the MD5 of the whole
    object (part_size None), or S3's multipart ETag, the MD5 of the MD5s of parts of
    part_size bytes, then '-' and their number."""

    value: str
    part_size: int | None = None


class Listing(NamedTuple):
    """Some names under a prefix, and the place's clock when it listed them (None: no other clock)."""

    names: list[str]
    server_time: datetime | None


# Every stored object with its time (keyed_storage.ops.orphans) -----------------------------


class Stored(NamedTuple):
    """One stored object as a listing sees it: name, size in bytes, last modification (UTC)."""

    name: str
    size: int
    modified: datetime
    # A write's own leftover (the local disk's in-progress '.keyed-*' files): never a key's file.
    temporary: bool = False


class Part(NamedTuple):
    """One stored part of a multipart upload."""

    number: int  # 1 to 10,000
    size: int
    # S3's ETag of the part ('' on disk): CompleteMultipartUpload names each part by it.
    etag: str


class StorageBackend(Protocol):
    """What KeyedStorage (and key replacement, prefixes, uploads) asks of a place: store, read,
    link, list and delete objects. The Django Storage methods KeyedStorage delegates to (exists,
    size, listdir, path, the times, open) are part of it: each backend is a Storage."""

    backend: str  # the name the configuration gives this place: "s3" or "local"
    keyed_config: Config

    def store(
        self,
        name: str,
        content: IO[Any],
        info: ContentInfo,
        *,
        exclusive: bool = False,
        cache_control: str | None = None,
    ) -> str:
        """Write `content` as `name` with the headers `info` and `cache_control` call for;
        exclusive: NameTaken if it exists."""

    def url(self, name: str) -> str:
        """The absolute link of `name` (no network I/O); '' gives the base every link starts with."""

    def head(self, name: str) -> Head | None:
        """Size and version of `name`, or None if there is no such object."""

    # Many objects -----------------------------------------------------------------------
    def names_under(self, key: str) -> list[str]:
        """Every object named '<key>/...', nested keys included."""

    def names_of_prefix(self, prefix: str) -> list[str]:
        """The object named `prefix` and every object named '<prefix>/...', sorted."""

    def files_starting_with(self, prefix: str) -> list[str]:
        """The objects in `prefix`'s directory whose names start with `prefix`."""

    def delete_many(self, names: list[str]) -> None:
        """Delete `names` in as few requests as the place allows; missing ones are fine."""

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete what names_of_prefix() lists and return those names."""

    # Django's Storage API, as KeyedStorage delegates it ------------------------------------
    def delete(self, name: str) -> None: ...
    def exists(self, name: str) -> bool: ...
    def size(self, name: str) -> int: ...
    def listdir(self, path: str) -> tuple[list[str], list[str]]: ...
    def path(self, name: str) -> str: ...
    def open(self, name: str, mode: str = "rb") -> File[Any]: ...
    def get_accessed_time(self, name: str) -> datetime: ...
    def get_created_time(self, name: str) -> datetime: ...
    def get_modified_time(self, name: str) -> datetime: ...


class DirectBackend(StorageBackend, Protocol):
    """What direct uploads (keyed_storage.direct) ask of a place, beside storing: a signed POST
    for the browser, reading the start of what arrived, and publishing it once checked."""

    def direct_ticket(self, name: str, *, size: int, expires: int) -> tuple[str, dict[str, str]]:
        """(url, fields) of a POST that may create `name` with exactly `size` bytes, for `expires` seconds."""

    def read_start(self, name: str, length: int, version: str) -> bytes:
        """The first `length` bytes of `name` while it is still `version` (else ObjectChanged)."""

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
        """Give the checked object `upload` (still `version`, else ObjectChanged) the new name
        `name` (free, else NameTaken) and the headers a save of the same bytes (`info`) would
        have; `upload` is gone after.
        `size` is the upload's, in bytes (S3 copies one above 5 GiB in parts)."""

    def settle(
        self, name: str, info: ContentInfo, version: str, *, cache_control: str | None = None, size: int = 0
    ) -> None:
        """Give the checked object `name` (a completed multipart upload, still `version`, else
        ObjectChanged) the headers `info` and `cache_control` call for, touching no byte when
        it has them already (it was started with the headers its name and claim announced)."""


class MultipartBackend(Protocol):
    """What multipart direct uploads (keyed_storage.multipart, and orphans' clean-up of the
    unfinished ones) ask of a place."""

    def start_parts(
        self, name: str, info: ContentInfo | None = None, *, cache_control: str | None = None
    ) -> str:
        """Begin a multipart upload that will create `name` with the headers `info` and
        `cache_control` call for (no `info`: stored inert); its upload id."""

    def part_url(self, name: str, upload_id: str, number: int, *, size: int, expires: int) -> str:
        """A URL that takes a PUT of part `number` of the upload, of exactly `size` bytes,
        for `expires` seconds."""

    def list_parts(self, name: str, upload_id: str) -> list[Part] | None:
        """The parts stored so far, by number; None if there is no such upload (finished or aborted)."""

    def complete_parts(self, name: str, upload_id: str, parts: list[Part]) -> bool:
        """Join `parts` (as list_parts() gave them) into `name`, created only if it is new;
        False if another request completed the upload first."""

    def abort_parts(self, name: str, upload_id: str) -> None:
        """Drop the upload and every part stored for it; a missing upload is fine."""

    def incomplete_uploads(self) -> Iterator[tuple[str, str, datetime]]:
        """(name, upload id, started) of every multipart upload begun and not yet completed or aborted."""


class OperationsBackend(Protocol):
    """What the operations (doctor, sync, orphans) ask of a place.

    Errors here are the place's own (botocore's in S3, OSError on disk), unwrapped, so the
    doctor can explain them (stored_objects() and inventory() excepted: they list as storage does)."""

    backend: str
    keyed_config: Config

    def inventory(self) -> Iterator[tuple[str, int]]:
        """(name, size) of every stored object, in name order."""

    def stored_objects(self, under: str = "") -> Iterator[Stored]:
        """Every stored object (those named '<under>/...' when `under` is given), temporaries of
        writes included (flagged), in the store's listing order, streamed: memory does not grow
        with the count. That order is the names' UTF-8
        bytes on AWS S3 and the local disk ('a-b' before 'a/b'); some S3-compatible servers
        (SeaweedFS) list directory by directory ('a/b' before 'a-b')."""

    def identity(self) -> str | None:
        """Who the place's requests are made as, told for a person; None when nobody is."""

    def region(self) -> str | None:
        """The region the place says it is in (S3: the bucket's); None where there are none."""

    def listing(self, prefix: str, limit: int) -> Listing:
        """Up to `limit` names starting with `prefix`, in name order, and the place's clock."""

    def incomplete_upload_expiry(self) -> int | None:
        """Days after which the place removes the parts of a multipart upload nobody finished
        (S3: an enabled lifecycle rule covering the whole bucket); None: they stay, billed."""

    def browser_origins(self, method: str) -> list[str] | None:
        """The origins (patterns, '*' allowed) whose pages may send `method` requests here from
        a browser (S3: the bucket's CORS rules); None: the place has no such rules (the
        local endpoint is on the site's own origin)."""

    def look(self, name: str) -> Look | None:
        """What `name` is without reading it, or None if there is no such object."""

    def digest(self, name: str, look: Look, *, recorded: bool = True) -> Digest | None:
        """The checksum the place vouches `name` (as `look` saw it) has; recorded: also one
        stored with it by store_file(). None: only reading the bytes tells."""

    def stream(self, name: str) -> Iterator[bytes]:
        """The bytes of `name`, 1 MiB at a time, checked against its own checksum when it has one."""

    def part_size(self, size: int) -> int | None:
        """The part size store_file() sends a file of `size` bytes in; None: one piece."""

    def store_file(self, name: str, path: str, *, md5: str, progress: Callable[[int], object]) -> None:
        """Store the file at `path` as `name` (visible only once whole), recording `md5` with it;
        `progress` is told each number of bytes sent."""

    def refresh_cache_control(self, name: str, look: Look) -> bool:
        """Give `name` the Cache-Control its name calls for, keeping the rest; True if changed."""


class Backend(DirectBackend, MultipartBackend, OperationsBackend, Protocol):
    """Every capability: what a place files can live answers, and what for_config() gives.
    A new place is one package implementing this."""
