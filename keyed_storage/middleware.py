"""Moved to keyed_storage.serving.middleware; this path still works, with a DeprecationWarning."""

from .moved import forward

__getattr__ = forward(__name__, "keyed_storage.serving.middleware")
