"""S3's storage: store, open, delete, list and link objects (the StorageBackend capability)."""

from __future__ import annotations

import os
import posixpath
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from storages.backends.s3 import S3File

from ...caching import cache_control
from ...exceptions import NameTaken, StorageError
from ...files.sniffing import ContentInfo
from ...keys import has_token
from ..percent import url_path
from ..protocols import Head

if TYPE_CHECKING:
    from django.core.files import File
from .base import S3Base, name_taken, object_params
from .connections import MULTIPART_THRESHOLD

DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys in one request


class S3Storing(S3Base):
    """Storing, reading, listing, deleting and linking objects: what KeyedStorage asks."""

    def store(
        self,
        name: str,
        content: IO[Any],
        info: ContentInfo,
        *,
        exclusive: bool = False,
        cache_control: str | None = None,
    ) -> str:
        """Upload `content` as `name`. Exclusive: only if no object has that name (a conditional
        write, If-None-Match: *, which AWS and current S3 servers honour), else NameTaken.

        `cache_control` is stored with the object (one header more on the same PUT, or on the
        CreateMultipartUpload of a large file); S3 sends it with every GET of the object.
        """
        params: dict[str, Any] = dict(object_params(info, cache_control))
        if exclusive:
            with self._exclusive_lock:
                self._exclusive[name] += 1
        # Below the threshold, one PutObject sent by this thread: s3transfer's manager (a thread
        # pool per call) costs more than the PUT itself for a small file. Above it, parts, and if
        # any part fails (or the completion's condition does) s3transfer aborts the multipart
        # upload, so no invisible, billed parts remain.
        try:
            with self._failing("store", name):
                try:
                    if (body := _whole_if_small(content, MULTIPART_THRESHOLD)) is not None:
                        self.client.put_object(Bucket=self.bucket_name, Key=name, Body=body, **params)
                    else:
                        self.client.upload_fileobj(
                            # s3transfer only reads, seeks and tells (_KeptOpen does); the stubs ask for IO.
                            _KeptOpen(content),  # type: ignore[arg-type]
                            self.bucket_name,
                            name,
                            ExtraArgs=params,
                            Config=self.transfer_config,
                        )
                except ClientError as error:
                    if exclusive and name_taken(error):
                        raise NameTaken(name) from error
                    raise
        finally:
            if exclusive:
                with self._exclusive_lock:
                    self._exclusive[name] -= 1
                    if not self._exclusive[name]:
                        del self._exclusive[name]
        return name

    def get_object_parameters(self, name: str) -> dict[str, Any]:
        """django-storages' parameters of writes that bypass store() (sync's uploads, a file
        opened for writing), with the Cache-Control the name calls for. Nothing tells how such
        a file was first saved, so the name's shape decides, as the local view decides it."""
        params = dict(super().get_object_parameters(name))
        params["CacheControl"] = cache_control(self.keyed_config, immutable=has_token(name))
        return params

    def delete(self, name: str) -> None:
        with self._failing("delete", name):
            self.client.delete_object(Bucket=self.bucket_name, Key=name)

    def names_under(self, key: str) -> list[str]:
        """Every object named '<key>/...', nested keys included: one listing, paginated past 1000."""
        with self._failing("list", key):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=key + "/"
            )
            return [entry["Key"] for page in pages for entry in page.get("Contents", ())]

    def names_of_prefix(self, prefix: str) -> list[str]:
        """Names of the object named `prefix` and of every object named '<prefix>/...', sorted."""
        with self._failing("list", prefix):
            # The shortest key starting with 'prefix' is 'prefix' itself: one key tells whether it exists.
            first = self.client.list_objects_v2(Bucket=self.bucket_name, Prefix=prefix, MaxKeys=1)
        exact = [prefix] if [entry["Key"] for entry in first.get("Contents", ())] == [prefix] else []
        return sorted(exact + self.names_under(prefix))

    def delete_prefix(self, prefix: str) -> list[str]:
        """Delete what names_of_prefix() lists (DeleteObjects per 1000) and return those names."""
        names = self.names_of_prefix(prefix)
        if names:
            self.delete_many(names)
        return names

    def delete_many(self, names: list[str]) -> None:
        """Delete `names`: one DeleteObject for one name, else DeleteObjects per 1000 names.

        Raises StorageError naming the objects S3 refused, after trying all of them.
        """
        if len(names) == 1:
            self.delete(names[0])
            return
        failed: list[str] = []
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            with self._failing("delete", batch[0]):
                answer = self.client.delete_objects(
                    Bucket=self.bucket_name,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            failed += [
                f"{error.get('Key')} ({error.get('Code')}: {error.get('Message')})"
                for error in answer.get("Errors", ())
            ]
        if failed:
            raise StorageError(
                f"Deleted {len(names) - len(failed)} of {len(names)} objects in {self._where}, but S3 "
                f"refused {len(failed)}: " + "; ".join(failed[:10]),
                location=self.keyed_config.bucket,
            )

    def exists(self, name: str) -> bool:
        with self._failing("look up", name):
            try:
                self.client.head_object(Bucket=self.bucket_name, Key=name)
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return False
                raise
            return True

    def size(self, name: str) -> int:
        with self._failing("read the size of", name):
            try:
                return self.client.head_object(Bucket=self.bucket_name, Key=name)["ContentLength"]
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    raise FileNotFoundError(f"{name!r} does not exist in {self._where}") from error
                raise

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        prefix = path.rstrip("/") + "/" if path else ""
        directories: list[str] = []
        files: list[str] = []
        with self._failing("list", path):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                directories += [
                    entry["Prefix"][len(prefix) :].rstrip("/") for entry in page.get("CommonPrefixes", ())
                ]
                files += [
                    posixpath.relpath(entry["Key"], prefix or ".")
                    for entry in page.get("Contents", ())
                    if entry["Key"] != prefix
                ]
        return directories, files

    def files_starting_with(self, prefix: str) -> list[str]:
        """Names of the objects in `prefix`'s directory that start with `prefix`."""
        with self._failing("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"
            )
            return [entry["Key"] for page in pages for entry in page.get("Contents", ())]

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        with self._failing("open", name):
            opened = super()._open(name, mode)
        # Its bytes are fetched at the first read: errors then are translated too.
        opened.__class__ = _KeyedS3File
        return opened  # type: ignore[no-any-return]  # django-storages is untyped

    def url(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        if not name:
            return self._public_base  # the base every link starts with (Django's url(None))
        if not self.keyed_config.private:
            return self._public_base + url_path(name)
        if parameters or http_method not in (None, "GET"):
            # django-storages is untyped; its url() returns a str.
            return super().url(  # type: ignore[no-any-return]
                name, parameters=parameters, expire=expire, http_method=http_method
            )
        presigner = self._presigner or self._signer()  # an attribute read per link, not a call
        return presigner.url(url_path(name), expire or self.keyed_config.url_expires)

    def head(self, name: str) -> Head | None:
        """Size and ETag of the object `name` (one HEAD), or None if there is none."""
        with self._failing("look up", name):
            try:
                answer = self.client.head_object(Bucket=self.bucket_name, Key=name)
            except ClientError as error:
                if error.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return None
                raise
        return Head(answer["ContentLength"], answer["ETag"])


class _KeyedS3File(S3File):  # type: ignore[misc]  # django-storages has no type information
    """django-storages' S3File whose download (at the first read) fails with a StorageError.
    A body cut short is an error (botocore checks it against Content-Length), never a
    shorter file."""

    def _get_file(self) -> Any:
        try:
            with self._storage._failing("read", self.name):
                return super()._get_file()
        except StorageError:
            # S3File keeps what it wrote so far: forget it, or the next read would return it.
            self._file = None
            raise

    file = property(_get_file, S3File._set_file)


def _whole_if_small(content: IO[Any], limit: int) -> bytes | None:
    """The rest of `content` if it can seek and holds at most `limit` bytes, else None (and
    `content` where it was). Its size comes from seeking to the end: nothing is read twice."""
    try:
        start = content.tell()
        end = content.seek(0, os.SEEK_END)
        content.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    if end - start > limit:
        return None
    data = content.read()
    if not isinstance(data, bytes):  # text: leave it to the streamed path, from where it was
        content.seek(start)
        return None
    return data


class _KeptOpen:
    """The file as s3transfer sees it, minus close(): s3transfer closes the file objects it is
    given, but the caller's file is still needed afterwards (ImageField reads its dimensions)."""

    __slots__ = ("_file",)

    def __init__(self, file: IO[bytes]):
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        try:
            return self._file.seekable()
        except (AttributeError, ValueError):
            return False

    def close(self) -> None:
        pass
