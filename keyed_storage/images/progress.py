"""What a row records of its image's variants while a worker makes them (KeyedImageField's pending_field).

The field named by `pending_field` is a nullable JSONField of the model. NULL (the value of
every row saved while work ran in the request, and of rows older than the field) means every
declared variant is stored. While a worker makes them it holds::

    {"made": ["thumb-160x160-crop-q80.webp"], "since": "2026-12-08T01:02:03+00:00",
     "tries": 0, "error": ""}

`made` lists the variants stored so far by their suffix, which encodes the spec, so a variant
whose spec changed meanwhile is not taken for made. Pages read it from the row they already
have: asking the storage what exists would cost a request per image. The worker sets it back
to NULL once all are stored, with an UPDATE conditional on the row still naming the same file,
so a row replaced meanwhile keeps the state of its new file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone

from .variants import Variant, variant_suffix


def pending_field(field: Any) -> str | None:
    name = getattr(field, "pending_field", None)
    return name if isinstance(name, str) and name else None


def state(instance: models.Model, field: Any) -> dict[str, Any] | None:
    """The row's record of variants being made, or None when they are all stored."""
    attname = pending_field(field)
    if attname is None:
        return None
    value = getattr(instance, attname, None)
    return value if isinstance(value, dict) else None


def begin(instance: models.Model, field: Any, made: Iterable[str]) -> dict[str, Any]:
    """Record on the instance (its save writes it) that variants other than `made` are to come."""
    attname = pending_field(field)
    assert attname is not None, "begin() is for fields with a pending_field"
    variants: dict[str, Variant] = field.variants
    record = {
        "made": sorted(variant_suffix(name, variants[name]) for name in made),
        "since": timezone.now().isoformat(),
        "tries": 0,
        "error": "",
    }
    setattr(instance, attname, record)
    return record


def unready(instance: models.Model, field: Any) -> frozenset[str]:
    """The names of the declared variants not stored yet (none when the row records nothing)."""
    record = state(instance, field)
    if record is None:
        return frozenset()
    made = set(record.get("made") or ())
    variants: dict[str, Variant] = field.variants
    return frozenset(name for name, spec in variants.items() if variant_suffix(name, spec) not in made)


def _same_file(instance: models.Model, field: Any, name: str) -> Any:
    return type(instance)._base_manager.filter(pk=instance.pk, **{field.attname: name})


def finish(instance: models.Model, field: Any, name: str) -> bool:
    """Mark every variant of `name` stored; False when the row no longer names that file."""
    attname = pending_field(field)
    assert attname is not None
    setattr(instance, attname, None)
    updated: int = _same_file(instance, field, name).update(**{attname: None})
    return updated > 0


def failed(instance: models.Model, field: Any, name: str, error: str, tries: int) -> None:
    """Record a failed try in the row, if it still names `name`: `doctor` reports it."""
    attname = pending_field(field)
    assert attname is not None
    record = dict(state(instance, field) or {})
    record.update(tries=tries, error=error[:500])
    record.setdefault("since", timezone.now().isoformat())
    record.setdefault("made", [])
    _same_file(instance, field, name).update(**{attname: record})
