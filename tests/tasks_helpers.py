"""A real task worker for the tests: django-tasks-db's `manage.py db_worker`, a process of its own.

The `worker` fixture points Django's TASKS at the database backend for one test, so what the
test enqueues is stored in the test database, and runs `db_worker` against that same database
(SQLite's test file, or PostgreSQL's test database on the run's throwaway cluster) with the
test's storage environment: the variables `env`, `s3` and `local` set, and MEDIA_ROOT. Nothing
else of the test's settings reaches the worker; it reads testproject's settings.

    def test_something(worker):
        result = some_task.enqueue(...)
        worker.drain()                  # runs every task enqueued so far, then exits
        result.refresh()

Browser tests start a worker that keeps polling, `worker.start()`; it is stopped when the test
ends, whatever happens. Each run's output goes to a file in the test's temporary directory and
is shown whenever the worker fails or is asked for (`worker.output()`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from keyed_storage import background

from .helpers import REPO

try:  # Django 6.0 and later; the receivers of `signals` forget the backends when TASKS changes.
    import django.tasks.signals  # noqa: F401
    from django.tasks import task_backends
except ImportError:  # Django 5.2: the django-tasks backport
    import django_tasks.signals  # noqa: F401
    from django_tasks import task_backends

from django_tasks_db import DatabaseBackend

TESTPROJECT = Path(REPO) / "testproject"
DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Hang detectors, not expectations: a batch of a test's tasks takes seconds.
DRAIN_TIMEOUT = 120
STOP_TIMEOUT = 10


@dataclass(frozen=True)
class WorkerRun:
    """One db_worker process that has ended: its exit status and everything it printed."""

    returncode: int
    output: str


class Worker:
    """db_worker processes against the running test's database and storage."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._runs = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._process_log: Path | None = None

    def drain(self, *, check: bool = True) -> WorkerRun:
        """Run every task enqueued so far (`db_worker --batch`), then return once the worker has
        exited. With check (the default) a worker that exits with an error fails the test, with
        its output; a task that fails does not (the worker records it in the task's result)."""
        log = self._next_log("drain")
        with open(log, "wb") as out:
            try:
                process = subprocess.run(
                    self._command("--batch"),
                    cwd=TESTPROJECT,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=DRAIN_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                pytest.fail(f"db_worker --batch still running after {DRAIN_TIMEOUT} s:\n{_read(log)}")
        run = WorkerRun(process.returncode, _read(log))
        if check and run.returncode != 0:
            pytest.fail(f"db_worker --batch exited with {run.returncode}:\n{run.output}")
        return run

    def start(self) -> None:
        """A worker that keeps polling for tasks (every 0.1 s) until stop() or the test's end."""
        if self._process is not None:
            raise RuntimeError("a worker is already running; stop() it first")
        self._process_log = self._next_log("worker")
        with open(self._process_log, "wb") as out:
            self._process = subprocess.Popen(
                self._command("--interval", "0.1"),
                cwd=TESTPROJECT,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> WorkerRun:
        """Stop the started worker (SIGTERM: a task in progress finishes; SIGKILL if it hangs)."""
        process, log = self._process, self._process_log
        if process is None or log is None:
            raise RuntimeError("no worker was started")
        self._process = None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return WorkerRun(process.returncode, _read(log))

    def output(self) -> str:
        """What the started worker has printed so far (for a failing test's message)."""
        return _read(self._process_log) if self._process_log else ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self, *options: str) -> list[str]:
        # --no-reload: the autoreloader (on under DEBUG) would put the worker in a child process
        # that outlives a stopped parent.
        return [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload", *options]

    def _environment(self) -> dict[str, str]:
        """The test's environment as it is now (so after `env(...)` and the `s3` fixture), plus the
        test database, MEDIA_ROOT and the database task backend."""
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "DJANGO_DEBUG": "0",  # as in the test process: Django's test set-up turns DEBUG off
            "KEYED_STORAGE_DEMO_TASKS": "database",
            "DEMO_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            # This checkout's keyed_storage and the tests' own task modules (tests.*).
            "PYTHONPATH": os.pathsep.join(
                filter(None, [REPO, str(TESTPROJECT), os.environ.get("PYTHONPATH")])
            ),
        }
        database = connection.settings_dict
        if connection.vendor == "sqlite":
            environment["DEMO_DB"] = str(database["NAME"])
        elif connection.vendor == "postgresql":
            environment.pop("DEMO_DB", None)
            environment.update(
                KEYED_STORAGE_TEST_DB="postgres",
                KEYED_STORAGE_TEST_DB_NAME=str(database["NAME"]),
                # libpq's own variables: testproject's settings leave HOST, PORT and USER empty.
                PGHOST=str(database["HOST"]),
                PGPORT=str(database["PORT"]),
                PGUSER=str(database["USER"]),
            )
        else:
            raise RuntimeError(f"the worker fixture knows SQLite and PostgreSQL, not {connection.vendor}")
        return environment

    def _next_log(self, kind: str) -> Path:
        self._runs += 1
        return self._logs / f"{self._runs:02d}-{kind}.log"


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


@pytest.fixture
def worker(transactional_db, settings, tmp_path) -> Iterator[Worker]:
    """Tasks go to the database for this test, where `worker.drain()` or `worker.start()` runs them.

    Transactional: the worker is another process, and sees only committed rows.
    """
    settings.TASKS = DATABASE_TASKS
    # Django keeps its task backends once made; the receiver of setting_changed must have
    # dropped them, or this test's enqueue would still run its tasks at once.
    backend = task_backends["default"]
    if not isinstance(backend, DatabaseBackend):
        raise RuntimeError(f"TASKS changed, but the default task backend is still {backend!r}")
    logs = tmp_path / "worker-logs"
    logs.mkdir()
    helper = Worker(logs)
    try:
        yield helper
    finally:
        if helper.running:
            run = helper.stop()
            # Shown by pytest with a failing test's report ("Captured stdout teardown").
            print(f"db_worker exited with {run.returncode}:\n{run.output}")


# The tasks framework the suite runs on: Django's own (6.0+) or the django-tasks backport (5.2,
# from the test extra), and its two in-process backends.
FRAMEWORK = background.framework()
assert FRAMEWORK is not None, "the test extra installs django-tasks on Django 5.2"
DUMMY = f"{FRAMEWORK.__name__}.backends.dummy.DummyBackend"
IMMEDIATE = f"{FRAMEWORK.__name__}.backends.immediate.ImmediateBackend"


@pytest.fixture
def queue(settings):
    """Work is enqueued to a DummyBackend: nothing runs until the test runs it (in process)."""
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    chosen = background.backend()
    assert type(chosen).__name__ == "DummyBackend" and background.in_background()
    chosen.clear()
    return chosen
