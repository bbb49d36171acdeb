"""Backends: one module per place files can live. Each is a Django Storage built from a Config."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple, TypeAlias, cast

from ..config import Config

if TYPE_CHECKING:
    from .local import LocalBackend
    from .s3 import S3Backend

# What for_config() returns: the Storage of the place the Config names.
Backend: TypeAlias = "LocalBackend | S3Backend"


class Head(NamedTuple):
    """What a backend knows of a stored object without reading it."""

    size: int
    # Changes whenever the bytes may have: S3's ETag, the file's inode and mtime on disk.
    # Reads and header updates made against it fail with ObjectChanged once it is stale.
    version: str


_lock = threading.Lock()
_backends: dict[Config, Backend] = {}
# The last Config asked for and its backend: url() on a page of links must not hash a
# dataclass per call, and the Config only changes when it is reset.
_last: tuple[Config | None, Backend | None] = (None, None)


def for_config(config: Config) -> Backend:
    """The one backend for this Config, shared by every KeyedStorage in the process.

    Sharing it means one boto3 client per process however many FileFields there are.
    """
    global _last
    last_config, last_backend = _last
    if last_config is config:
        # Set together with its Config below, so never None here. A cast, not a check: this
        # runs for every link.
        return cast("Backend", last_backend)
    backend = _backends.get(config)
    if backend is None:
        with _lock:
            backend = _backends.get(config)
            if backend is None:
                cls: type[Backend]
                if config.backend == "s3":
                    from .s3 import S3Backend as cls
                else:
                    from .local import LocalBackend as cls
                backend = _backends[config] = cls(config)
    _last = (config, backend)
    return backend
