"""The `worker` fixture (tests/tasks_helpers.py): a real db_worker process runs what a test
enqueues, against the test's own database (SQLite or PostgreSQL) and storage (local or S3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage

from .tasks_probe import fail, store, touch

try:
    from django.tasks import TaskResultStatus
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus

POLL_LIMIT = 60  # seconds; a hang detector for the polling worker, not a timing expectation


def test_without_a_worker_tasks_run_when_enqueued(tmp_path):
    # testproject's default (no KEYED_STORAGE_DEMO_TASKS): Django's immediate backend.
    path = tmp_path / "ran.txt"
    result = touch.enqueue(str(path))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == os.getpid()
    assert path.read_text() == "ran"


def test_drain_runs_what_the_test_enqueued_in_another_process(worker, tmp_path):
    path = tmp_path / "ran.txt"
    result = touch.enqueue(str(path))
    # Stored, not run: the test's enqueue went to the database backend.
    assert result.status == TaskResultStatus.READY
    assert not path.exists()

    run = worker.drain()

    assert path.is_file() and path.read_text() == "ran", run.output
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, run.output
    assert result.return_value != os.getpid()


def test_a_failing_task_is_recorded_as_failed_and_its_error_shown(worker):
    result = fail.enqueue("the probe failed on purpose")

    run = worker.drain()

    assert run.returncode == 0  # the worker itself carries on
    result.refresh()
    assert result.status == TaskResultStatus.FAILED, run.output
    assert "the probe failed on purpose" in result.errors[0].traceback
    assert "the probe failed on purpose" in run.output


def test_the_worker_stores_files_where_the_test_reads_them(worker, mode):
    # Local mode: the test's own MEDIA_ROOT; S3 mode: the test's bucket. Either way the link the
    # test makes serves what the worker wrote.
    result = store.enqueue("probe/worker.txt", "written by the worker")

    run = worker.drain()

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, run.output
    name = result.return_value
    response = requests.get(default_storage.url(name), timeout=30)
    assert response.status_code == 200
    assert response.content == b"written by the worker"


def test_a_started_worker_runs_tasks_as_they_come_and_stops(worker, tmp_path):
    worker.start()
    path = tmp_path / "ran.txt"
    result = touch.enqueue(str(path))

    deadline = time.monotonic() + POLL_LIMIT
    while result.status != TaskResultStatus.SUCCESSFUL and time.monotonic() < deadline:
        time.sleep(0.1)
        result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, worker.output()
    assert Path(path).read_text() == "ran"

    run = worker.stop()
    assert run.returncode == 0, run.output  # SIGTERM: a graceful stop
    assert not worker.running
    with pytest.raises(RuntimeError, match="no worker was started"):
        worker.stop()
