"""Give a new instance its primary key before its files are named, so keys never read 'None'.

A key template such as "events/{id}/logo" needs the row's id, which a new instance gets only
from its INSERT. For such fields keyed_storage holds the new files back while the row is
inserted, then stores the files and saves their columns with a second, narrow UPDATE. This
works for model forms and the admin with no code in the model.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db.models import FileField, ImageField, Model
from django.db.models.signals import post_save, pre_save

from ..keys import KeyTemplate

_HELD = "_keyed_storage_held_files"


@functools.cache
def _fields_needing_pk(model: type[Model]) -> tuple[FileField, ...]:
    return tuple(
        field
        for field in model._meta.concrete_fields
        if isinstance(field, FileField)
        and isinstance(field.upload_to, KeyTemplate)
        and field.upload_to.needs_pk(model)
    )


def _hold_files(sender: type[Model], instance: Model, raw: bool = False, **kwargs: Any) -> None:
    if raw or instance.pk is not None:
        return
    held = {}
    for field in _fields_needing_pk(sender):
        file = getattr(instance, field.attname)
        if file and not file._committed:
            held[field] = file
    for field, file in held.items():
        # A file the field would refuse (KeyedImageField: not an image, too many pixels) is
        # refused now, before the row is inserted, so no row is left without its file.
        vet = getattr(field, "vet", None)
        if vet is not None:
            vet(file)
    for field in held:
        setattr(instance, field.attname, "")
    if held:
        instance.__dict__[_HELD] = held


def _save_held_files(sender: type[Model], instance: Model, raw: bool = False, **kwargs: Any) -> None:
    held = instance.__dict__.pop(_HELD, None)
    if not held:
        return
    update_fields = []
    for field, file in held.items():
        setattr(instance, field.attname, file)
        update_fields.append(field.attname)
        if isinstance(field, ImageField):
            # django-stubs take width_field and height_field as arguments but leave out the attributes.
            update_fields += [name for name in (field.width_field, field.height_field) if name]  # type: ignore[attr-defined]
        # A KeyedImageField whose variants a worker makes records which are to come.
        pending = getattr(field, "pending_field", None)
        if pending:
            update_fields.append(pending)
    instance.save(update_fields=update_fields)


def connect() -> None:
    pre_save.connect(_hold_files, dispatch_uid="keyed_storage.hold_files")
    post_save.connect(_save_held_files, dispatch_uid="keyed_storage.save_held_files")
