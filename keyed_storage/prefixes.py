"""Removing everything under a key prefix, e.g. all files of a deleted event."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from django.core.exceptions import SuspiciousFileOperation

from .keys import validate_key

if TYPE_CHECKING:
    from .backends import Backend
    from .backends.local import LocalBackend
    from .backends.s3 import S3Backend


def whole_key(prefix: object) -> str:
    """The prefix as a validated whole key ('events/7/' → 'events/7'), or SuspiciousFileOperation why not."""
    if isinstance(prefix, str) and prefix.strip("/") == "":
        raise SuspiciousFileOperation(
            f"Refused prefix {prefix!r}: it is empty, so it would delete every file. "
            "Name a whole key such as 'events/7'."
        )
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]  # 'events/7/' ends at a '/' boundary too: it means 'events/7'
    try:
        return validate_key(prefix)
    except SuspiciousFileOperation as error:
        raise SuspiciousFileOperation(
            f"{error} A prefix must be a whole key such as 'events/7', which covers 'events/7/...' "
            "and never 'events/70/...'."
        ) from None


def list_prefix(backend: Backend, prefix: str) -> list[str]:
    """Names of every object under the whole key `prefix`: 'prefix' itself and 'prefix/...', sorted."""
    prefix = whole_key(prefix)
    # Only S3Backend says "s3"; the casts tell mypy what that test has found out.
    if getattr(backend, "backend", "") == "s3":
        return _s3_names(cast("S3Backend", backend), prefix)
    return _local_names(cast("LocalBackend", backend), prefix)


def delete_prefix(backend: Backend, prefix: str) -> list[str]:
    """Delete every object under the whole key `prefix` and return their names, sorted.

    'events/7' covers the object named exactly 'events/7' and everything named 'events/7/...',
    never 'events/70/...'. An empty prefix, or one that is not a valid key, is refused.
    """
    prefix = whole_key(prefix)
    if getattr(backend, "backend", "") == "s3":
        return _s3_delete(cast("S3Backend", backend), prefix)
    return _local_delete(cast("LocalBackend", backend), prefix)


# S3 ---------------------------------------------------------------------------------------


def _s3_names(backend: S3Backend, prefix: str) -> list[str]:
    client = backend.client
    bucket = backend.bucket_name
    names = []
    # The shortest key starting with 'prefix' is 'prefix' itself, so one key tells whether it exists.
    first = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("Contents", ())
    if first and first[0]["Key"] == prefix:
        names.append(prefix)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    names.extend(obj["Key"] for page in pages for obj in page.get("Contents", ()))
    return sorted(names)


def _s3_delete(backend: S3Backend, prefix: str) -> list[str]:
    names = _s3_names(backend, prefix)
    if names:
        backend.delete_many(names)
    return names


# Local disk -------------------------------------------------------------------------------


def _relative(backend: LocalBackend, path: str) -> str:
    return os.path.relpath(path, backend.location).replace(os.sep, "/")


def _local_names(backend: LocalBackend, prefix: str) -> list[str]:
    top = backend.path(prefix)  # safe_join: never outside MEDIA_ROOT
    if os.path.islink(top) or os.path.isfile(top):
        return [prefix]
    names: list[str] = []
    for directory, subdirectories, files in os.walk(top):
        # A symlink is removed as a file and never followed out of the tree.
        entries = files + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]
        names.extend(_relative(backend, os.path.join(directory, entry)) for entry in entries)
    return sorted(names)


def _local_delete(backend: LocalBackend, prefix: str) -> list[str]:
    top = backend.path(prefix)
    if os.path.islink(top) or os.path.isfile(top):
        os.remove(top)
        backend.remove_empty_parents(top)
        return [prefix]
    deleted = []
    for directory, subdirectories, files in os.walk(top, topdown=False):
        for entry in files + [d for d in subdirectories if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, entry)
            os.remove(path)
            deleted.append(_relative(backend, path))
        os.rmdir(directory)
    backend.remove_empty_parents(top)  # 'events' goes too once 'events/7' was all it held
    return sorted(deleted)
