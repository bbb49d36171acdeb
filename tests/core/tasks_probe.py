"""Tasks of the tests' own, to check that the `worker` fixture's process runs what a test enqueues."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@task
def touch(path: str) -> int:
    """Write "ran" to path; returns the id of the process that ran it."""
    Path(path).write_text("ran")
    return os.getpid()


@task
def store(name: str, text: str) -> str:
    """Save text under name in the default storage (keyed_storage, local or S3 by environment)."""
    return default_storage.save(name, ContentFile(text.encode()))


@task
def fail(message: str) -> None:
    raise RuntimeError(message)
