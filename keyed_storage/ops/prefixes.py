"""Removing everything under a key prefix, e.g. all files of a deleted event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import SuspiciousFileOperation

from ..keys import validate_key

if TYPE_CHECKING:
    from ..backends import StorageBackend


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


def list_prefix(backend: StorageBackend, prefix: str) -> list[str]:
    """Names of every object under the whole key `prefix`: 'prefix' itself and 'prefix/...', sorted."""
    return backend.names_of_prefix(whole_key(prefix))


def delete_prefix(backend: StorageBackend, prefix: str) -> list[str]:
    """Delete every object under the whole key `prefix` and return their names, sorted.

    'events/7' covers the object named exactly 'events/7' and everything named 'events/7/...',
    never 'events/70/...'. An empty prefix, or one that is not a valid key, is refused.
    """
    return backend.delete_prefix(whole_key(prefix))
