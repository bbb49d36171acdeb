"""Old files of a model go only after the new state is committed; a rollback undoes new files.

When a FileField on KeyedStorage gets a new file, or its instance is deleted, the file it
held is deleted once the transaction commits. If the transaction rolls back instead, the
old file is still there and the file stored for the rolled-back save is deleted, so neither
a live row nor the bucket is left wrong.
"""

from __future__ import annotations

import functools
import logging
import weakref

from django.db import transaction
from django.db.models import FileField
from django.db.models.signals import post_delete, post_init, post_save

from .storage import KeyedStorage

logger = logging.getLogger("keyed_storage")

_ORIGINAL = "_keyed_storage_original_names"


@functools.cache
def _keyed_fields(model: type) -> tuple[FileField, ...]:
    return tuple(
        field
        for field in model._meta.concrete_fields
        if isinstance(field, FileField) and isinstance(field.storage, KeyedStorage)
    )


def _loaded(sender, instance, **kwargs) -> None:
    fields = _keyed_fields(sender)
    if fields:
        # Right after __init__ the attribute holds the name from the database (a str), or a
        # file for a new instance; a deferred field is absent and stays unknown.
        values = {field.attname: instance.__dict__.get(field.attname) for field in fields}
        instance.__dict__[_ORIGINAL] = {
            attname: value if isinstance(value, str) else None for attname, value in values.items()
        }


def _saved(sender, instance, raw=False, update_fields=None, using=None, **kwargs) -> None:
    fields = _keyed_fields(sender)
    if not fields or raw:
        return
    original = instance.__dict__.get(_ORIGINAL, {})
    for field in fields:
        if update_fields is not None and field.attname not in update_fields:
            continue
        old = original.get(field.attname)
        new = getattr(instance, field.attname).name
        if old == new:
            continue
        _after_commit(
            using,
            on_commit=(field.storage, old) if old else None,
            on_rollback=(field.storage, new) if new else None,
        )
        original[field.attname] = new
    instance.__dict__[_ORIGINAL] = original


def _deleted(sender, instance, using=None, **kwargs) -> None:
    for field in _keyed_fields(sender):
        name = getattr(instance, field.attname).name
        if name:
            _after_commit(using, on_commit=(field.storage, name), on_rollback=None)


class _Cleanup:
    """The on_commit callback. If the transaction rolls back, Django drops its pending
    callbacks unrun; the finalizer below notices that and removes the new file instead."""

    def __init__(self, on_commit, state):
        self._on_commit = on_commit
        self._state = state

    def __call__(self) -> None:
        self._state["committed"] = True
        if self._on_commit:
            _delete(*self._on_commit)


def _after_rollback(state, on_rollback) -> None:
    if not state["committed"] and on_rollback:
        _delete(*on_rollback)


def _after_commit(using, *, on_commit, on_rollback) -> None:
    if not transaction.get_connection(using).in_atomic_block:
        if on_commit:
            _delete(*on_commit)
        return
    state = {"committed": False}
    callback = _Cleanup(on_commit, state)
    weakref.finalize(callback, _after_rollback, state, on_rollback)
    transaction.on_commit(callback, using=using, robust=True)


def _delete(storage: KeyedStorage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.exception("keyed_storage: could not delete %s", name)


def connect() -> None:
    post_init.connect(_loaded, dispatch_uid="keyed_storage.replacement.loaded")
    post_save.connect(_saved, dispatch_uid="keyed_storage.replacement.saved")
    post_delete.connect(_deleted, dispatch_uid="keyed_storage.replacement.deleted")
