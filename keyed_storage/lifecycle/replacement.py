"""Old files of a model go only after the new state is committed; a rollback undoes new files.

When a FileField on KeyedStorage gets a new file, or its instance is deleted, the file it
held is deleted once the transaction commits. If the transaction rolls back instead, the
old file is still there and the file stored for the rolled-back save is deleted, so neither
a live row nor the bucket is left wrong.

A file is never deleted while another row of the same model's field still names it (rows
copied with pk=None or the admin's "Save as new" share their files), nor when it is the
field's default or db_default: the check is one query, made when a deletion is due.

What a row held is recorded when it is loaded, whatever ran before: Django's ImageField
connects its own post_init (update_dimension_fields) for each model with width_field or
height_field, and it may already have turned the name from the database into a FieldFile. A
deferred field (.only(), .defer()) is left unknown and, should it be saved or the row deleted,
read from the database then, in one query: never through the deferred attribute, which would
query once per field, and after a deletion find no row.

A save that stores a file runs in a transaction (Model.save_base is wrapped: an atomic block
without a savepoint, which inside an outer block adds nothing and outside one makes the save's
statements one transaction). The rollback clean-up of the files the save stored is registered in
that block once the save's statements have run or failed, so it is in place whatever fails: the
INSERT or UPDATE itself (a trigger, "database is locked", an IntegrityError), the narrow UPDATE
of a held file (signals.py), a later statement of the caller's block, or the commit. A signal
receiver could not do it: post_save never runs when the save raises, and outside a transaction
there is nothing to hook. The same block makes the INSERT of a row whose files wait for its pk
and their UPDATE one transaction. Saves that store no file are left exactly as Django runs them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import router, transaction
from django.db.models import NOT_PROVIDED, FileField, Model
from django.db.models.fields.files import FieldFile
from django.db.models.signals import post_delete, post_init, post_save, pre_delete, pre_save

from .. import background
from ..keys import FinishedName
from ..storage import KeyedStorage

logger = logging.getLogger("keyed_storage")

_ORIGINAL = "_keyed_storage_original_names"
_STORING = "_keyed_storage_storing"


@functools.cache
def _keyed_fields(model: type[Model]) -> tuple[FileField, ...]:
    return tuple(
        field
        for field in model._meta.concrete_fields
        if isinstance(field, FileField) and isinstance(field.storage, KeyedStorage)
    )


def _loaded(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    fields = _keyed_fields(sender)
    if fields:
        instance.__dict__[_ORIGINAL] = {
            field.attname: _stored_name(instance.__dict__[field.attname])
            for field in fields
            if field.attname in instance.__dict__  # a deferred field stays unknown
        }


def _stored_name(value: Any) -> str | None:
    """The stored file a field's value names: from the database a str, or the FieldFile
    Django's own post_init made of it; a new, uncommitted file names none."""
    if isinstance(value, FieldFile):
        committed = getattr(value, "_committed", False)  # FieldFile's, which django-stubs omits
        return value.name if committed and isinstance(value.name, str) else None
    return value if isinstance(value, str) else None


def _unknown(sender: type[Model], instance: Model, attnames: list[str], using: str | None) -> None:
    """Record what the database holds for the fields whose value was deferred at load."""
    if not attnames or instance._state.adding or instance.pk is None:
        return
    row = sender._base_manager.using(using).filter(pk=instance.pk).values_list(*attnames).first()
    original = instance.__dict__.setdefault(_ORIGINAL, {})
    for attname, name in zip(attnames, row or [None] * len(attnames), strict=True):
        original[attname] = name if isinstance(name, str) else None


def _saving(
    sender: type[Model],
    instance: Model,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    # Which fields this save stores a new file for: only those files are this save's own,
    # to remove if it rolls back. A name copied from another row is not; a direct upload's
    # finished name is (the save is the first to refer to it).
    fields = [field for field in _keyed_fields(sender) if _saves(instance, field, update_fields)]
    if fields and not raw:
        original = instance.__dict__.get(_ORIGINAL, {})
        _unknown(sender, instance, [f.attname for f in fields if f.attname not in original], using)
        instance.__dict__[_STORING] = {field.attname for field in fields if _brings_own_file(instance, field)}


def _brings_own_file(instance: Model, field: FileField) -> bool:
    """Whether the field's value is a file this save stores, or a direct upload's finished name
    the row does not hold yet (an instance saved again still holds the FinishedName it got)."""
    file = getattr(instance, field.attname)
    if not file:
        return False
    if not getattr(file, "_committed", True):
        return True
    held = instance.__dict__.get(_ORIGINAL, {}).get(field.attname)
    return isinstance(file.name, FinishedName) and file.name != held


def _saves(instance: Model, field: FileField, update_fields: frozenset[str] | None) -> bool:
    """Whether a save writes this field: it is among update_fields (Django's own, or those a
    row with deferred fields saves), and it is loaded (a deferred one is not written)."""
    return (update_fields is None or field.attname in update_fields) and field.attname in instance.__dict__


def _saved(
    sender: type[Model],
    instance: Model,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    fields = _keyed_fields(sender)
    if not fields or raw:
        return
    original = instance.__dict__.get(_ORIGINAL, {})
    for field in fields:
        if not _saves(instance, field, update_fields):
            continue
        old = original.get(field.attname)
        new = getattr(instance, field.attname).name
        if old == new:
            continue
        if old:
            _after_commit(using, on_commit=_Deletion(field, old, using), on_rollback=None)
        original[field.attname] = new
    instance.__dict__[_ORIGINAL] = original


def _deleting(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    # After the deletion no row is left to read a deferred field from: read it now.
    original = instance.__dict__.get(_ORIGINAL, {})
    deferred = [
        field.attname
        for field in _keyed_fields(sender)
        if field.attname not in original and field.attname not in instance.__dict__
    ]
    _unknown(sender, instance, deferred, using)


def _deleted(sender: type[Model], instance: Model, using: str | None = None, **kwargs: Any) -> None:
    original = instance.__dict__.get(_ORIGINAL, {})
    for field in _keyed_fields(sender):
        # What the row held: the name recorded at load or at the last save, else (a row made
        # without loading, e.g. Model(pk=1)) the value it was given.
        name = original.get(field.attname)
        if name is None and field.attname in instance.__dict__:
            name = getattr(instance, field.attname).name
        if name:
            _after_commit(using, on_commit=_Deletion(field, name, using), on_rollback=None)


class _Deletion:
    """Delete one file of a field, unless it is the field's default or a row still names it."""

    __slots__ = ("field", "name", "using")

    def __init__(self, field: FileField, name: str, using: str | None):
        self.field, self.name, self.using = field, name, using

    def __call__(self) -> None:
        if background.in_background():  # the worker asks whether a row claims it, then deletes
            model, field = self.field.model._meta.label, self.field.name
            background.enqueue_after_commit("keyed_storage.tasks.delete_file", model, field, self.name)
            return
        remove_unclaimed(self.field, self.name, self.using)


def claimed(field: FileField, name: str, using: str | None = None) -> bool:
    """Whether `name` is the field's default or a row of the field names it (one query)."""
    if name in default_names(field):
        return True
    return field.model._base_manager.using(using).filter(**{field.attname: name}).exists()


def claimed_anywhere(name: str, using: str | None = None) -> bool:
    """Whether any file field on KeyedStorage, of any installed model, claims `name` (one query
    a field): for code that holds a name but not the field it went to (a direct upload)."""
    return any(
        claimed(field, name, using)
        for model in apps.get_models()
        if not model._meta.proxy
        for field in _keyed_fields(model)
    )


def remove_unclaimed(field: FileField, name: str, using: str | None = None) -> None:
    """Delete a file of the field (and its variants) unless it is claimed: the field's default,
    or named by a row this connection sees (a committed one, after a rollback). If that cannot
    be asked (the connection is broken mid-rollback), the file is kept: a file left over is
    found by `keyed_storage orphans`, a file deleted under a row is lost."""
    try:
        if claimed(field, name, using):
            logger.info("keyed_storage: kept %s, which another %s row uses", name, field.model.__name__)
            return
    except Exception:
        logger.exception("keyed_storage: kept %s: could not ask whether a row uses it", name)
        return
    _remove(field, name)


def _remove_after_rollback(field: FileField, name: str, using: str | None) -> None:
    connection = transaction.get_connection(using)
    try:
        remove_unclaimed(field, name, using)
    finally:
        # Django runs this while it rolls the outermost block back, before it turns autocommit
        # on again: the query above began a transaction of its own, which ends here
        # (PostgreSQL refuses to change autocommit inside one). Inside an outer block (a
        # savepoint rolled back) the query was part of that block's transaction.
        if not connection.in_atomic_block and not connection.autocommit and connection.connection is not None:
            connection.rollback()


def _remove(field: FileField, name: str) -> None:
    try:
        delete_stored(field, name)
    except Exception:
        logger.exception("keyed_storage: could not delete %s", name)


def delete_stored(field: FileField, name: str) -> None:
    """Delete one file of a field, with what the field stores beside it (KeyedImageField's variants)."""
    delete = getattr(field, "delete_stored", None) or field.storage.delete
    delete(name)


def default_names(field: FileField) -> set[str]:
    """The names a new row gets without a file: the field's default and its db_default."""
    names = set()
    if field.has_default():
        default = field.get_default()
        names.add(getattr(default, "name", default))
    db_default = getattr(field, "db_default", NOT_PROVIDED)
    if db_default is not NOT_PROVIDED:
        names.add(getattr(db_default, "value", db_default))  # Django wraps it in Value()
    return {name for name in names if isinstance(name, str) and name}


class _Cleanup:
    """The on_commit callback. If the transaction rolls back, Django drops its pending
    callbacks unrun; the finalizer below notices that and removes the new file instead."""

    def __init__(self, on_commit: Callable[[], None] | None, state: dict[str, bool]):
        self._on_commit = on_commit
        self._state = state

    def __call__(self) -> None:
        self._state["committed"] = True
        if self._on_commit:
            self._on_commit()


def _after_rollback(state: dict[str, bool], on_rollback: Callable[[], None] | None) -> None:
    if not state["committed"] and on_rollback:
        on_rollback()


def _after_commit(
    using: str | None, *, on_commit: Callable[[], None] | None, on_rollback: Callable[[], None] | None
) -> None:
    if not transaction.get_connection(using).in_atomic_block:
        if on_commit:
            on_commit()
        return
    state = {"committed": False}
    callback = _Cleanup(on_commit, state)
    weakref.finalize(callback, _after_rollback, state, on_rollback)
    transaction.on_commit(callback, using=using, robust=True)


def _guarded(save_base: Callable[..., None]) -> Callable[..., None]:
    """Model.save_base, in an atomic block when the save stores a file of ours (module docstring)."""

    @functools.wraps(save_base)
    def guarded_save_base(
        self: Model,
        raw: bool = False,
        force_insert: Any = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Any = None,
    ) -> None:
        fields = _keyed_fields(type(self))
        if not fields:
            return save_base(self, raw, force_insert, force_update, using, update_fields)
        using = using or router.db_for_write(type(self), instance=self)
        own = [f for f in fields if not raw and _saves(self, f, update_fields) and _brings_own_file(self, f)]
        # The files not stored yet, as they are before this save stores them (see below).
        unstored = {
            f.attname: (file, file.name) for f in own if not (file := getattr(self, f.attname))._committed
        }
        with transaction.atomic(using=using, savepoint=False) if own else contextlib.nullcontext():
            # A save of held files (signals.py) runs inside the save that inserted the row:
            # each save registers the files its own pre_save found, and the outer's are kept.
            outer = self.__dict__.pop(_STORING, None)
            failed = True
            try:
                save_base(self, raw, force_insert, force_update, using, update_fields)
                failed = False
            finally:
                registered = _register_own_files(self, self.__dict__.pop(_STORING, set()), using)
                if outer is not None:
                    self.__dict__[_STORING] = outer
                if failed:
                    # The files stored go with the transaction: the instance gets its unstored
                    # file back, so saving it again stores the file again rather than naming a
                    # removed one (a retry after "database is locked").
                    for attname in registered & unstored.keys():
                        file, name = unstored[attname]
                        file.name, file._committed = name, False
                        self.__dict__[attname] = file

    guarded_save_base.keyed_storage_guard = True  # type: ignore[attr-defined]
    return guarded_save_base


def _register_own_files(instance: Model, storing: set[str], using: str) -> set[str]:
    """Have each file this save stored removed if its transaction does not commit, unless a
    committed row names it by then: a form sent twice finishes one direct upload twice, and
    the other save may have won. A file whose storing failed is not there to remove."""
    registered = set()
    for field in _keyed_fields(type(instance)):
        if field.attname not in storing:
            continue
        file = getattr(instance, field.attname)
        if file and getattr(file, "_committed", False) and isinstance(file.name, str):
            remove = functools.partial(_remove_after_rollback, field, file.name, using)
            _after_commit(using, on_commit=None, on_rollback=remove)
            registered.add(field.attname)
    return registered


def connect() -> None:
    if not getattr(Model.save_base, "keyed_storage_guard", False):
        Model.save_base = _guarded(Model.save_base)  # type: ignore[method-assign]
    post_init.connect(_loaded, dispatch_uid="keyed_storage.replacement.loaded")
    pre_save.connect(_saving, dispatch_uid="keyed_storage.replacement.saving")
    post_save.connect(_saved, dispatch_uid="keyed_storage.replacement.saved")
    pre_delete.connect(_deleting, dispatch_uid="keyed_storage.replacement.deleting")
    post_delete.connect(_deleted, dispatch_uid="keyed_storage.replacement.deleted")
