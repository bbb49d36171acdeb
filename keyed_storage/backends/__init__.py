"""Backends: one module per place files can live. Each is a Django Storage built from a Config."""

from __future__ import annotations

import threading

from django.core.files.storage import Storage

from ..config import Config

_lock = threading.Lock()
_backends: dict[Config, Storage] = {}
# The last Config asked for and its backend: url() on a page of links must not hash a
# dataclass per call, and the Config only changes when it is reset.
_last: tuple[Config | None, Storage | None] = (None, None)


def for_config(config: Config) -> Storage:
    """The one backend for this Config, shared by every KeyedStorage in the process.

    Sharing it means one boto3 client per process however many FileFields there are.
    """
    global _last
    last_config, last_backend = _last
    if last_config is config:
        return last_backend
    backend = _backends.get(config)
    if backend is None:
        with _lock:
            backend = _backends.get(config)
            if backend is None:
                if config.backend == "s3":
                    from .s3 import S3Backend as cls
                else:
                    from .local import LocalBackend as cls
                backend = _backends[config] = cls(config)
    _last = (config, backend)
    return backend
