"""Background work on Django's Tasks framework: variants, deletions and sweeps off the request.

Each task is enqueued by keyed_storage.background after the transaction that asked for it
commits, with JSON arguments only (a model's label, a primary key as text, a field's name, a
stored name). Every task is idempotent: it looks at the row and the storage as they are when it
runs, does nothing (and says so in its return value) when the row was deleted or its file
replaced meanwhile, and two runs of it at once write the same bytes under the same names. A
failing task is tried again later (keyed_storage.background.retry); after the last try the
error stays in the row, where `doctor` finds it.
"""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .background import as_task, retry
from .exceptions import FileRefused
from .images import progress
from .lifecycle.replacement import claimed, delete_stored, remove_unclaimed
from .uploads import delete_earlier


class _Gone(Exception):
    """The model or field a task names is no longer there (a deployment changed it meanwhile)."""


def _field(model: str, field: str) -> tuple[type[models.Model], models.FileField]:
    try:
        model_class = apps.get_model(model)
        found = model_class._meta.get_field(field)
    except (LookupError, FieldDoesNotExist) as error:
        raise _Gone(f"nothing to do: {model}.{field} no longer exists ({error})") from error
    if not isinstance(found, models.FileField):
        raise _Gone(f"nothing to do: {model}.{field} is no longer a file field")
    return model_class, found


@as_task
def make_variants(model: str, pk: str, field: str, name: str, tries: int = 1) -> str:
    """Render and store the variants of `name` the row `model` `pk` still waits for."""
    try:
        model_class, file_field = _field(model, field)
    except _Gone as gone:
        return str(gone)
    row = model_class._base_manager.filter(pk=pk).first()
    if row is None:
        return f"nothing to do: {model} {pk} was deleted"
    file = getattr(row, file_field.attname)
    if file.name != name:
        return f"nothing to do: {model} {pk}.{field} holds {file.name!r} now, not {name!r}"
    if progress.pending_field(file_field) is None:
        # The field no longer records what is pending (a deployment changed it meanwhile), so
        # pages link every variant: make them all, as a save in the request would have.
        made = file.make_variants(list(getattr(file_field, "variants", {})))
        return f"made {len(made)} variants of {name}: {', '.join(made) or 'the field declares none'}"
    if progress.state(row, file_field) is None:
        return f"nothing to do: the variants of {name} are made"
    try:
        made = file.make_variants()
    except FileRefused as refused:  # the same bytes will be refused again: no retry
        progress.failed(row, file_field, name, str(refused), tries)
        raise
    except Exception as error:
        progress.failed(row, file_field, name, f"{type(error).__name__}: {error}", tries)
        retry(make_variants, error, (model, pk, field, name, tries), tries)
        raise
    if not progress.finish(row, file_field, name):
        # Replaced or deleted while the variants were made: the clean-up of the old file may
        # have run before they were stored, so they go now unless a row names the file.
        remove_unclaimed(file_field, name)
        return f"made {len(made)} variants of {name}, then removed them: the row holds another file now"
    return f"made {len(made)} variants of {name}: {', '.join(made) or 'none were missing'}"


@as_task
def delete_file(model: str, field: str, name: str, tries: int = 1) -> str:
    """Delete a stored file of a field (and its variants) unless a row names it or it is the default."""
    try:
        _, file_field = _field(model, field)
    except _Gone as gone:  # which rows claim it cannot be asked: kept (orphans finds it)
        return f"kept {name}: {gone}"
    if claimed(file_field, name):
        return f"kept {name}: a {model} row or the field's default names it"
    try:
        delete_stored(file_field, name)
    except Exception as error:
        retry(delete_file, error, (model, field, name, tries), tries)
        raise
    return f"deleted {name}"


@as_task
def sweep_key(key: str, keep: str, tries: int = 1) -> str:
    """Delete the objects of `key` older than the newest upload (what upload() replaced)."""
    try:
        doomed = delete_earlier(key, keep)
    except Exception as error:
        retry(sweep_key, error, (key, keep, tries), tries)
        raise
    return f"deleted {len(doomed)} earlier objects of {key}"
