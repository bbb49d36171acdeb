"""Copy every file between the local disk and S3 under the same names: streamed, verified, resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.exceptions import SuspiciousFileOperation

from .. import config
from ..backends import Digest, Look, OperationsBackend
from ..keys import validate_key

if TYPE_CHECKING:
    from ..backends.local import LocalBackend

CHUNK = 1024 * 1024  # bytes read at a time: memory stays flat whatever the file size

Progress = Callable[[int], object]  # told how many more bytes were done; what it returns is unused


class SyncError(Exception):
    """One file could not be copied or verified; the message says why."""


@dataclass(frozen=True)
class Entry:
    name: str
    size: int


@dataclass
class Report:
    copied: list[Entry] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why)

    @property
    def copied_bytes(self) -> int:
        return sum(entry.size for entry in self.copied)


class Checksum:
    """The MD5 of some bytes and, given a part size, the ETag S3 gives them uploaded in such parts."""

    def __init__(self, part_size: int | None = None):
        self.part_size = part_size
        self._whole = hashlib.md5(usedforsecurity=False)
        self._part = hashlib.md5(usedforsecurity=False)
        self._in_part = 0
        self._parts: list[bytes] = []
        self.size = 0

    def update(self, data: bytes) -> None:
        self._whole.update(data)
        self.size += len(data)
        view = memoryview(data)
        while self.part_size and view:
            piece = view[: self.part_size - self._in_part]
            self._part.update(piece)
            self._in_part += len(piece)
            view = view[len(piece) :]
            if self._in_part == self.part_size:
                self._parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(usedforsecurity=False), 0

    @property
    def md5(self) -> str:
        return self._whole.hexdigest()

    @property
    def etag(self) -> str:
        """A multipart ETag: the MD5 of the parts' MD5s, then '-' and the number of parts."""
        parts = self._parts + ([self._part.digest()] if self._in_part else [])
        return hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + f"-{len(parts)}"


def checksum(chunks: Iterable[bytes], part_size: int | None = None) -> Checksum:
    result = Checksum(part_size)
    for chunk in chunks:
        result.update(chunk)
    return result


def matches(digest: Digest, found: Checksum) -> bool:
    """Whether bytes hashed into `found` (in parts of digest.part_size) have the checksum `digest`."""
    return (found.md5 if digest.part_size is None else found.etag) == digest.value


def file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def backends_for(cfg: config.Config) -> tuple[LocalBackend, OperationsBackend]:
    """The local and the S3 backend of one configuration, both at once."""
    from ..backends.local import LocalBackend
    from ..backends.s3 import S3Backend

    if not cfg.bucket:
        raise ValueError("sync needs S3: set BUCKET_NAME (and AWS_KEY, AWS_SECRET) for the bucket to use.")
    if not cfg.media_root:
        raise ValueError("sync needs the local disk: the MEDIA_ROOT setting is empty.")
    return (
        LocalBackend(dataclasses.replace(cfg, backend="local")),
        S3Backend(dataclasses.replace(cfg, backend="s3")),
    )


# The two places ------------------------------------------------------------------------------


class LocalSide:
    def __init__(self, backend: LocalBackend):
        self.backend = backend

    def entries(self) -> Iterator[Entry]:
        for name, size in self.backend.inventory():
            yield Entry(name, size)

    def same_size(self, name: str, size: int) -> str | None:
        """The file's path if it exists with this size, else None."""
        path = self.backend.path(name)
        return path if os.path.isfile(path) and os.path.getsize(path) == size else None

    def write(self, name: str, chunks: Iterator[bytes], found: Checksum, verify: Callable[[], None]) -> None:
        """Hash `chunks` into `found` while the backend writes them beside the target, and let
        `verify` refuse them before they take its name: never half a file, never an unchecked one."""

        def hashed() -> Iterator[bytes]:
            for chunk in chunks:
                found.update(chunk)
                yield chunk

        self.backend.store_checked(name, hashed(), verify)


class S3Side:
    """The bucket's side, asked only what every backend answers."""

    def __init__(self, backend: OperationsBackend):
        self.backend = backend

    def entries(self) -> Iterator[Entry]:
        for name, size in self.backend.inventory():
            yield Entry(name, size)

    def head(self, name: str) -> Look | None:
        return self.backend.look(name)

    def holds(self, name: str, head: Look, local: Callable[[], Iterator[bytes]]) -> bool:
        """Whether the object holds the same bytes as `local` (called for a fresh read of them)."""
        digest = self.backend.digest(name, head)
        if digest is None:  # nothing to compare with but the bytes themselves
            return checksum(self.chunks(name)).md5 == checksum(local()).md5
        return matches(digest, checksum(local(), digest.part_size))

    def chunks(self, name: str, progress: Progress | None = None) -> Iterator[bytes]:
        for chunk in self.backend.stream(name):
            if progress:
                progress(len(chunk))
            yield chunk

    def settle_cache_control(self, name: str, head: Look) -> bool:
        """Give an object that already holds the right bytes the Cache-Control its name calls
        for (one stored before keyed_storage set it); True if it was changed."""
        return self.backend.refresh_cache_control(name, head)

    def upload(self, path: str, name: str, md5: str, progress: Progress) -> None:
        self.backend.store_file(name, path, md5=md5, progress=progress)


# Copying ------------------------------------------------------------------------------------


class Sync:
    """Copy every file of `source` to `target` ('local' or 's3'), or with dry_run say what it would do."""

    def __init__(self, cfg: config.Config, source: str, target: str, *, dry_run: bool = False):
        if {source, target} != {"local", "s3"}:
            raise ValueError("sync copies between 'local' and 's3': use --from local --to s3 or the reverse.")
        local, s3 = backends_for(cfg)
        self.local, self.s3 = LocalSide(local), S3Side(s3)
        self.upward = source == "local"
        self.dry_run = dry_run

    def entries(self) -> list[Entry]:
        return list((self.local if self.upward else self.s3).entries())

    def run(
        self,
        entries: list[Entry],
        *,
        on_bytes: Progress = lambda n: None,
        on_file: Callable[[Entry, str], None] = lambda entry, outcome: None,
    ) -> Report:
        report = Report()
        for entry in entries:
            try:
                outcome = self.copy(entry, on_bytes)
            except Exception as error:
                report.failed.append((entry.name, str(error) or type(error).__name__))
                outcome = "failed"
            else:
                (report.skipped if outcome == "skipped" else report.copied).append(entry)
            on_file(entry, outcome)
        return report

    def copy(self, entry: Entry, on_bytes: Progress) -> str:
        """'skipped' when the target already has the same bytes, else copy (unless dry run) and verify."""
        try:
            name = validate_key(entry.name)
        except SuspiciousFileOperation as error:
            raise SyncError(f"not copied: {error}") from None
        if self.upward:
            return self._up(name, entry, on_bytes)
        return self._down(name, entry, on_bytes)

    def _up(self, name: str, entry: Entry, on_bytes: Progress) -> str:
        path = self.local.backend.path(name)
        head = self.s3.head(name)
        if head is not None and head.size == entry.size:
            if self.s3.holds(name, head, lambda: file_chunks(path)):
                on_bytes(entry.size)
                if not self.dry_run:
                    self.s3.settle_cache_control(name, head)
                return "skipped"
        if self.dry_run:
            on_bytes(entry.size)
            return "would copy"
        # Hashed before the upload, in the parts the upload will use: a change since shows as a mismatch.
        before = checksum(file_chunks(path), self.s3.backend.part_size(entry.size))
        self.s3.upload(path, name, before.md5, on_bytes)
        head = self.s3.head(name)
        if head is None or head.size != entry.size:
            raise SyncError(f"verification failed: S3 holds {head and head.size} bytes")
        expected = self.s3.backend.digest(name, head, recorded=False)
        if expected is not None and expected.part_size in (None, before.part_size):
            same = matches(expected, before)
        else:  # no usable ETag (SSE-KMS, another part size): read the object back
            same = checksum(self.s3.chunks(name)).md5 == before.md5
        if not same:
            raise SyncError("verification failed: S3 holds other bytes than the file had (did it change?)")
        return "copied"

    def _down(self, name: str, entry: Entry, on_bytes: Progress) -> str:
        head = self.s3.head(name)
        if head is None:
            raise SyncError("it vanished from the bucket while syncing")
        present = self.local.same_size(name, entry.size)
        if present is not None and self.s3.holds(name, head, lambda: file_chunks(present)):
            on_bytes(entry.size)
            return "skipped"
        if self.dry_run:
            on_bytes(entry.size)
            return "would copy"
        expected = self.s3.backend.digest(name, head)
        found = Checksum(expected.part_size if expected else None)

        def verify() -> None:
            if found.size != head.size or (expected and not matches(expected, found)):
                raise SyncError(
                    f"verification failed: got {found.size} bytes (MD5 {found.md5}); S3 holds "
                    f"{head.size} bytes" + (f" with checksum {expected.value}" if expected else "")
                )

        self.local.write(name, self.s3.chunks(name, on_bytes), found, verify)
        return "copied"
