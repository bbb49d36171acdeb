"""Moved to keyed_storage.direct.multipart; this path still works, with a DeprecationWarning."""

from .moved import forward

__getattr__ = forward(__name__, "keyed_storage.direct.multipart")
