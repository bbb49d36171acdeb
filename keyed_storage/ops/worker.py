"""The doctor's section on background work: which backend runs it, and whether it gets done.

It reads the rows' own records (KeyedImageField's pending_field, keyed_storage.images.progress)
rather than the queue, because every backend keeps those, and django_tasks_db's table as well
when that is the backend, because only it tells a queue nobody takes work from.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.db import DatabaseError, models
from django.utils import timezone

from .. import background
from ..fields import KeyedImageField
from .step import Step

#: Variants still to come this long after the save mean work that is stuck, not slow.
PENDING_TOO_LONG = datetime.timedelta(hours=1)
#: Tasks waiting this long with no task started or finished meanwhile mean no worker runs.
NO_WORKER_AFTER = datetime.timedelta(minutes=5)
TASK_PREFIX = "keyed_storage.tasks."


def findings() -> Iterator[Step]:
    """The backend, then warnings about rows waiting too long, failed tasks and an idle queue."""
    tasks_framework = background.framework()
    try:
        chosen = background.backend()
    except Exception:  # any TASKS at all: describe() names the problem in one line
        yield Step(
            False,
            "background work",
            background.describe() + ".",
            f"Fix TASKS[{background.BACKEND_ALIAS!r}] in the settings: BACKEND is the dotted path of a "
            "task backend class, e.g. 'django_tasks_db.DatabaseBackend'; without TASKS work runs in "
            "the request.",
        )
        return
    yield Step(True, f"background work: {background.describe()}")
    if tasks_framework is None or chosen is None:
        return
    for field, model in pending_fields():
        yield from _field_findings(model, field)
    if _is_database_backend(chosen):
        found = _idle_queue()
        if found is not None:
            yield found


def pending_fields() -> list[tuple[KeyedImageField, type[models.Model]]]:
    """Every KeyedImageField with variants and a pending_field, with the model whose table holds it."""
    return [
        (field, model)
        for model in apps.get_models()
        if not model._meta.proxy
        for field in model._meta.fields
        if isinstance(field, KeyedImageField)
        and field.model is model
        and field.variants
        and field.pending_field
    ]


def _field_findings(model: type[models.Model], field: KeyedImageField) -> Iterator[Step]:
    """Rows of `field` waiting more than PENDING_TOO_LONG, and rows whose task failed."""
    label = f"{model._meta.object_name}.{field.name}"
    command = f"manage.py keyed_storage variants --model {model._meta.label} --field {field.name}"
    assert field.pending_field is not None
    try:
        records = list(_records(model, field.pending_field))
    except DatabaseError as error:
        yield Step(
            False,
            f"{label}: variants pending",
            f"The rows could not be read: {error}.",
            "Run `manage.py migrate`.",
        )
        return
    cutoff = datetime.datetime.now(datetime.UTC) - PENDING_TOO_LONG
    late = [record for record in records if _since(record) < cutoff]
    failed = [record for record in records if record.get("error")]
    if late:
        yield Step(
            True,
            f"{len(late)} {label} images have variants pending for more than an hour",
            f"The oldest has waited since {min(map(_since, late)):%Y-%m-%d %H:%M} UTC: pages show a "
            "stand-in (the original or a smaller variant) until a worker stores them.",
            f"Check that a worker runs and takes tasks of the backend TASKS[{background.BACKEND_ALIAS!r}]; "
            f"`{command} --missing --enqueue` hands them to it again.",
            warning=True,
        )
    if failed:
        example = failed[0]
        yield Step(
            True,
            f"{len(failed)} {label} images record a failed task making their variants",
            f"For example, after {example.get('tries', '?')} tries: {example['error']}",
            f"Fix the cause, then `{command} --missing --enqueue` tries them again (or without "
            "--enqueue, in the command itself).",
            warning=True,
        )


def _records(model: type[models.Model], attname: str) -> Iterator[dict[str, Any]]:
    # Only rows whose record is set: the others (nearly all) cost nothing to skip with an index
    # on the column, and a full table is never loaded.
    rows = model._base_manager.exclude(**{f"{attname}__isnull": True}).values_list(attname, flat=True)
    for record in rows.iterator():
        if isinstance(record, dict):
            yield record


def _since(record: dict[str, Any]) -> datetime.datetime:
    """When the record began; a record without a readable time counts as long ago."""
    try:
        when = datetime.datetime.fromisoformat(str(record.get("since")))
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    # Without USE_TZ, timezone.now() wrote the local time of TIME_ZONE.
    return when if timezone.is_aware(when) else timezone.make_aware(when)


def _is_database_backend(chosen: Any) -> bool:
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:
        return False
    return isinstance(chosen, DatabaseBackend)


def _idle_queue() -> Step | None:
    """django_tasks_db's backend: keyed_storage tasks due for NO_WORKER_AFTER while no task at
    all started or finished in that time; None when a worker is seen or nothing waits."""
    title = "worker for django_tasks_db's queue"
    if not apps.is_installed("django_tasks_db"):
        return Step(
            False,
            title,
            "TASKS uses django_tasks_db.DatabaseBackend but django_tasks_db is not in INSTALLED_APPS: "
            "nothing can be enqueued.",
            "Add 'django_tasks_db' to INSTALLED_APPS and run `manage.py migrate`.",
        )
    from django_tasks_db.models import DBTaskResult, get_date_max

    cutoff = timezone.now() - NO_WORKER_AFTER
    due = models.Q(run_after=get_date_max(), enqueued_at__lt=cutoff) | models.Q(run_after__lt=cutoff)
    try:
        waiting = DBTaskResult.objects.filter(
            due, status="READY", task_path__startswith=TASK_PREFIX, backend_name=background.BACKEND_ALIAS
        ).aggregate(count=models.Count("pk"), since=models.Min("enqueued_at"))
        seen = DBTaskResult.objects.filter(
            models.Q(started_at__gte=cutoff) | models.Q(finished_at__gte=cutoff)
        )
        worked = seen.exists()
    except DatabaseError as error:
        return Step(False, title, f"The task table could not be read: {error}.", "Run `manage.py migrate`.")
    if not waiting["count"] or worked:
        return None
    return Step(
        True,
        f"no worker seen: {waiting['count']} keyed_storage tasks waiting since "
        f"{waiting['since']:%Y-%m-%d %H:%M} UTC; start `manage.py db_worker`",
        f"No task started or finished in the last {NO_WORKER_AFTER.seconds // 60} minutes: variants, "
        "deletions and sweeps wait in the table.",
        "Run `manage.py db_worker` beside the site (a service of its own, restarted with it).",
        warning=True,
    )
