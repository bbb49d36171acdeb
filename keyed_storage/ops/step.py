"""One line of the doctor's report: a check passed, failed, or passed with a warning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .explain import Diagnosis


@dataclass(frozen=True)
class Step:
    ok: bool
    title: str
    cause: str = ""
    fix: str = ""
    # Passed, but with something worth fixing: shown with its cause and fix, never a failure.
    warning: bool = False

    @classmethod
    def failed(cls, title: str, diagnosis: Diagnosis) -> Step:
        return cls(False, title, diagnosis.cause, diagnosis.fix)
