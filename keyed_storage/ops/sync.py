"""Copy every file between the local disk and S3 under the same names: streamed, verified, resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from django.core.exceptions import SuspiciousFileOperation

from .. import config
from ..keys import validate_key

CHUNK = 1024 * 1024  # bytes read at a time: memory stays flat whatever the file size
PART = 16 * 1024 * 1024  # multipart part size for large uploads
# Where a download is written before it is renamed into place; never listed, never uploaded.
PARTIAL_SUFFIX = ".keyed-sync-part"
METADATA_MD5 = "keyed-storage-md5"  # set on every object sync uploads: a checksum any ETag can't hide
_PLAIN_ETAG = re.compile(r"[0-9a-f]{32}")

Progress = Callable[[int], None]


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


def md5_of(chunks) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def backends_for(cfg: config.Config):
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
    def __init__(self, backend):
        self.backend = backend
        self.root = backend.location

    def entries(self) -> Iterator[Entry]:
        for directory, subdirectories, files in os.walk(self.root):
            subdirectories.sort()
            for file in sorted(files):
                if file.endswith(PARTIAL_SUFFIX):
                    continue
                path = os.path.join(directory, file)
                name = os.path.relpath(path, self.root).replace(os.sep, "/")
                yield Entry(name, os.path.getsize(path))

    def md5(self, name: str, size: int) -> str | None:
        """The file's MD5 if it exists with this size, else None."""
        path = self.backend.path(name)
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return None
        return md5_of(file_chunks(path))

    def write(self, name: str, chunks: Iterator[bytes], verify: Callable[[int, str], None]) -> None:
        """Write to a partial file beside the target, verify it, then rename it into place.

        An interruption or a failed verification leaves the target as it was: never half a file.
        """
        path = self.backend.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + PARTIAL_SUFFIX)
        digest, written = hashlib.md5(usedforsecurity=False), 0
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            verify(written, digest.hexdigest())
            os.replace(partial, path)
        except BaseException:
            _remove(partial)
            raise


class S3Side:
    def __init__(self, backend):
        self.backend = backend
        self.client = backend.connection.meta.client
        self.bucket = backend.bucket_name

    def entries(self) -> Iterator[Entry]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        for page in pages:
            for obj in page.get("Contents", ()):
                if not obj["Key"].endswith("/"):  # a console "folder" marker, not a file
                    yield Entry(obj["Key"], obj["Size"])

    def head(self, name: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def md5(self, name: str, size: int, head: dict | None = None) -> str | None:
        """The object's MD5 if it exists with this size, else None.

        A single-part ETag is the MD5; sync's own uploads carry it in metadata; for anything
        else (multipart uploads by other tools) the object is read and hashed.
        """
        head = head or self.head(name)
        if head is None or head["ContentLength"] != size:
            return None
        return self.known_md5(head) or md5_of(self.chunks(name))

    @staticmethod
    def known_md5(head: dict) -> str | None:
        """The MD5 an object's headers vouch for, without reading it: a plain ETag or sync's metadata."""
        etag = head.get("ETag", "").strip('"')
        if _PLAIN_ETAG.fullmatch(etag) and head.get("ServerSideEncryption") != "aws:kms":
            return etag
        return head.get("Metadata", {}).get(METADATA_MD5)

    def chunks(self, name: str, progress: Progress | None = None) -> Iterator[bytes]:
        # ChecksumMode makes botocore check the object's CRC/SHA checksum while streaming, when it has one.
        body = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                if progress:
                    progress(len(chunk))
                yield chunk
        finally:
            body.close()

    def upload(self, path: str, name: str, md5: str, progress: Progress) -> None:
        extra = self.backend._get_write_parameters(name)
        extra["Metadata"] = {**extra.get("Metadata", {}), METADATA_MD5: md5}
        # From a file name, boto3 reads each part lazily from disk; a single PUT is atomic and a
        # multipart upload is invisible until it completes, so an interruption never leaves half a file.
        self.client.upload_file(
            path,
            self.bucket,
            name,
            ExtraArgs=extra,
            Callback=progress,
            Config=TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4),
        )


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


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
        md5 = md5_of(file_chunks(path))
        if self.s3.md5(name, entry.size) == md5:
            on_bytes(entry.size)
            return "skipped"
        if self.dry_run:
            on_bytes(entry.size)
            return "would copy"
        self.s3.upload(path, name, md5, on_bytes)
        head = self.s3.head(name)
        if head is None or head["ContentLength"] != entry.size:
            raise SyncError(f"verification failed: S3 holds {head and head['ContentLength']} bytes")
        copied = self.s3.md5(name, entry.size, head)
        if copied != md5:
            raise SyncError(
                f"verification failed: the file read {md5} but S3 holds {copied} (did it change meanwhile?)"
            )
        return "copied"

    def _down(self, name: str, entry: Entry, on_bytes: Progress) -> str:
        head = self.s3.head(name)
        if head is None:
            raise SyncError("it vanished from the bucket while syncing")
        present = self.local.md5(name, entry.size)
        if present is not None and present == self.s3.md5(name, entry.size, head):
            on_bytes(entry.size)
            return "skipped"
        if self.dry_run:
            on_bytes(entry.size)
            return "would copy"
        known = self.s3.known_md5(head)

        def verify(written: int, md5: str) -> None:
            if written != head["ContentLength"] or (known and md5 != known):
                raise SyncError(
                    f"verification failed: got {written} bytes with MD5 {md5}, "
                    f"S3 holds {head['ContentLength']} bytes with MD5 {known}"
                )

        self.local.write(name, self.s3.chunks(name, on_bytes), verify)
        return "copied"
