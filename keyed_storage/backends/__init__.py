"""Backends: one module per place files can live. Each is a Django Storage built from a Config."""

from __future__ import annotations

import threading

from django.core.files.storage import Storage

from ..config import Config

_lock = threading.Lock()
_backends: dict[Config, Storage] = {}


def for_config(config: Config) -> Storage:
    """The one backend for this Config, shared by every KeyedStorage in the process.

    Sharing it means one boto3 connection per thread however many FileFields there are.
    """
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
    return backend
