"""Backends: one package per place files can live (s3/, local/), each implementing the
capabilities of keyed_storage.backends.protocols; and the one factory that picks the place.

Callers ask for the capability they use (storage_backend(), direct_backend(), ...): the same
shared object, typed as only what they need. This module imports no backend at import time
(the REGISTRY names them), so the backends can import the protocols without a cycle.
"""

from __future__ import annotations

import importlib
import threading
from typing import cast

from ..config import Config
from .protocols import (
    Backend,
    Digest,
    DirectBackend,
    Head,
    Listing,
    Look,
    MultipartBackend,
    OperationsBackend,
    Part,
    StorageBackend,
    Stored,
)

__all__ = [
    "REGISTRY",
    "Backend",
    "Digest",
    "DirectBackend",
    "Head",
    "Listing",
    "Look",
    "MultipartBackend",
    "OperationsBackend",
    "Part",
    "StorageBackend",
    "Stored",
    "direct_backend",
    "for_config",
    "multipart_backend",
    "operations_backend",
    "storage_backend",
]

# Config.backend -> (module, class) of the place: imported on first use only.
REGISTRY = {
    "s3": ("keyed_storage.backends.s3", "S3Backend"),
    "local": ("keyed_storage.backends.local", "LocalBackend"),
}

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
    backend: Backend | None = _backends.get(config)
    if backend is None:
        with _lock:
            backend = _backends.get(config)
            if backend is None:
                module, name = REGISTRY["s3" if config.backend == "s3" else "local"]
                backend = cast("Backend", getattr(importlib.import_module(module), name)(config))
                _backends[config] = backend
    _last = (config, backend)
    return backend


def storage_backend(config: Config) -> StorageBackend:
    """The place, as storing and reading files needs it."""
    return for_config(config)


def direct_backend(config: Config) -> DirectBackend:
    """The place, as direct uploads need it."""
    return for_config(config)


def multipart_backend(config: Config) -> MultipartBackend:
    """The place, as multipart direct uploads need it."""
    return for_config(config)


def operations_backend(config: Config) -> OperationsBackend:
    """The place, as the operations (doctor, sync, orphans) need it."""
    return for_config(config)
