"""Old import paths of modules that moved into the feature subpackages: they forward and warn."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib import import_module


def forward(old: str, new: str) -> Callable[[str], object]:
    """A module-level __getattr__ for `old` that warns and answers from `new`."""

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(f"{old} moved to {new}: import {name} from {new}", DeprecationWarning, stacklevel=2)
        return getattr(import_module(new), name)

    return __getattr__
