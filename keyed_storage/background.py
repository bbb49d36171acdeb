"""Whether work goes to a worker, and how it is enqueued (the tasks themselves: keyed_storage.tasks).

keyed_storage chooses no queue. It uses `django.tasks` (Django 6.0+) or, on Django 5.2, the
`django-tasks` backport when it is installed, and enqueues to the site's default task backend
(`TASKS["default"]`), so the site's own choice (a database worker, RQ, Celery through a backend)
runs it. With no tasks framework, or with the immediate backend (Django's default when `TASKS`
is not set), nothing is enqueued: the work runs in the request exactly as without this module.

Work is enqueued after the transaction that asked for it commits, never before its row exists,
with JSON arguments only (a model's label, a primary key as text, a field's name, a stored
name). Every task is idempotent: it looks at the row and the storage as they are when it runs,
does nothing (and says so in its return value) when the row was deleted or its file replaced
meanwhile, and two runs of it at once write the same bytes under the same names. A task that
fails is enqueued again later (30 s, 2 min, 8 min, 32 min: five tries in 42 minutes) when the
backend can defer work; after the last try the error stays in the row, where `doctor` finds it.
If the backend refuses the work (it is down), the work is done in the request instead.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger("keyed_storage")

#: The task backend keyed_storage enqueues to: the site's default one.
BACKEND_ALIAS = "default"
#: Tries of a task that keeps failing, and the wait before the first retry (then 4 times longer each).
MAX_TRIES = 5
FIRST_RETRY = datetime.timedelta(seconds=30)


@functools.cache
def framework() -> ModuleType | None:
    """`django.tasks` (Django 6.0+), else the `django-tasks` backport, else None."""
    try:
        import django.tasks as tasks_framework
    except ImportError:
        try:
            import django_tasks as tasks_framework  # type: ignore[no-redef,import-not-found,unused-ignore]
        except ImportError:
            return None
    return tasks_framework


def backend() -> Any | None:
    """The task backend keyed_storage enqueues to, or None without a tasks framework. An
    invalid TASKS setting raises the framework's own error, which names the problem."""
    tasks_framework = framework()
    if tasks_framework is None:
        return None
    return tasks_framework.task_backends[BACKEND_ALIAS]


def in_background() -> bool:
    """True when work is enqueued for a worker: a tasks framework is there and the backend is
    not the immediate one (which would run it in the request anyway, later and less simply)."""
    try:
        chosen = backend()
    except Exception:  # an invalid TASKS: the framework's check and `doctor` report it
        return False
    return chosen is not None and type(chosen).__name__ != "ImmediateBackend"


def describe() -> str:
    """One line for `doctor`: which backend runs keyed_storage's work, and where."""
    tasks_framework = framework()
    if tasks_framework is None:
        return "no tasks framework (Django 5.2 without django-tasks): work runs in the request"
    try:
        chosen = backend()
    except Exception as error:
        return f"TASKS[{BACKEND_ALIAS!r}] is invalid ({error}): work runs in the request"
    path = f"{type(chosen).__module__}.{type(chosen).__qualname__}"
    where = "enqueued for a worker" if in_background() else "runs in the request"
    return f"{tasks_framework.__name__}, TASKS[{BACKEND_ALIAS!r}] = {path}: work {where}"


def as_task(function: Callable[..., str]) -> Any:
    """`function` as a task of the framework there is, else as it is (only ever called directly)."""
    tasks_framework = framework()
    return tasks_framework.task(function) if tasks_framework is not None else function


def enqueue_after_commit(path: str, *args: Any, using: str | None = None) -> None:
    """Enqueue the task at `path` (such as 'keyed_storage.tasks.make_variants') with `args`
    once the current transaction commits (now, outside one). A backend that refuses it gets
    it done here instead, so nothing is lost to a queue that is down. The task is named by its
    path so that the modules that enqueue work need not import the module of the tasks, which
    imports them."""

    def send() -> None:
        work = import_string(path)  # a Task: only called when in_background()
        try:
            work.enqueue(*args)
        except Exception:
            logger.exception("keyed_storage: could not enqueue %s%r; doing it now", work.name, args)
            try:
                work.call(*args)
            except Exception:
                logger.exception("keyed_storage: %s%r failed", work.name, args)

    transaction.on_commit(send, using=using)


def retry(work: Any, error: BaseException, args: tuple[Any, ...], tries: int) -> bool:
    """Enqueue try number `tries + 1` of `work` after its backoff; False when there is none
    left or the backend cannot wait (it would run the retry at once, in a loop)."""
    chosen = backend()
    if tries >= MAX_TRIES or chosen is None or not getattr(chosen, "supports_defer", False):
        return False
    wait = FIRST_RETRY * 4 ** (tries - 1)
    work.using(run_after=timezone.now() + wait).enqueue(*args[:-1], tries + 1)
    logger.warning("keyed_storage: %s%r failed (%s); try %d in %s", work.name, args, error, tries + 1, wait)
    return True
