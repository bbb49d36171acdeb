"""`keyed_storage doctor` on background work: which task backend runs it, rows whose variants wait
too long or whose task failed, a django_tasks_db queue nobody works on, and any TASKS setting
told in one line rather than a traceback."""

from __future__ import annotations

import datetime
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from events.models import Event
from keyed_storage import background, tasks

from ..image_helpers import encode, halves
from ..ops_helpers import run
from ..tasks_helpers import DUMMY, FRAMEWORK, IMMEDIATE

pytestmark = pytest.mark.django_db(transaction=True)

DATABASE = "django_tasks_db.DatabaseBackend"


def section(out: str) -> list[str]:
    """The doctor's lines from the background work's first one to the summary."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "background work" in line)
    return lines[start:]


def logo() -> SimpleUploadedFile:
    return SimpleUploadedFile("logo.png", encode(halves(800, 600), "PNG"))


def age(events: list[Event], by: datetime.timedelta) -> None:
    """What the rows would hold had their saves been `by` ago."""
    for event in events:
        event.refresh_from_db()
        since = datetime.datetime.fromisoformat(event.logo_pending["since"]) - by
        Event.objects.filter(pk=event.pk).update(
            logo_pending={**event.logo_pending, "since": since.isoformat()}
        )


def test_without_task_settings_work_runs_in_the_request(local, settings):
    os.makedirs(settings.MEDIA_ROOT)
    out, _, code = run("doctor")
    assert code == 0, out
    assert (
        f"✓ background work: {FRAMEWORK.__name__}, TASKS['default'] = {IMMEDIATE}: work runs in the request"
        in out
    )


def test_without_a_tasks_framework_work_runs_in_the_request(local, settings, monkeypatch):
    os.makedirs(settings.MEDIA_ROOT)
    monkeypatch.setattr(background, "framework", lambda: None)  # Django 5.2 without django-tasks
    out, _, code = run("doctor")
    assert code == 0, out
    assert (
        "✓ background work: no tasks framework (Django 5.2 without django-tasks): work runs in the request"
    ) in out


def test_a_worker_backend_is_named(local, settings, queue):
    os.makedirs(settings.MEDIA_ROOT)
    out, _, code = run("doctor")
    assert code == 0, out
    assert (
        f"✓ background work: {FRAMEWORK.__name__}, TASKS['default'] = {DUMMY}: work enqueued for a worker"
        in out
    )
    assert "!" not in "\n".join(section(out))  # nothing waits: no warning


@pytest.mark.parametrize(
    "tasks_setting, told",
    [
        ({"default": {"BACKEND": "no.such.Backend"}}, "no.such.Backend"),
        ({"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}, "FileSystemStorage"),
        ({"default": {}}, "TASKS['default'] is invalid"),
        ({"other": {"BACKEND": DUMMY}}, "default"),
        (
            {"default": {"BACKEND": DATABASE, "OPTIONS": {"id_function": "no.such.id"}}},
            "No module named 'no'",
        ),
        ("not a dict", "TASKS['default'] is invalid"),
    ],
)
def test_any_task_setting_is_one_line_not_a_traceback(local, settings, tasks_setting, told):
    os.makedirs(settings.MEDIA_ROOT)
    settings.TASKS = tasks_setting
    out, err, code = run("doctor")
    assert code == 1, out
    assert [line for line in out.splitlines() if line.startswith("✗")] == ["✗ background work"]
    cause = next(line for line in out.splitlines() if "cause:" in line)
    assert "TASKS['default'] is invalid" in cause and told in cause and "work runs in the request" in cause
    assert "Traceback" not in out + err
    assert "fix:   Fix TASKS['default']" in out


def test_the_section_follows_a_failed_storage_step(local, settings, queue):
    out, _, code = run("doctor")  # MEDIA_ROOT does not exist: the storage's steps stop there
    assert code == 1
    assert f"✗ MEDIA_ROOT {settings.MEDIA_ROOT} exists" in out
    assert f"✓ background work: {FRAMEWORK.__name__}, TASKS['default'] = {DUMMY}" in out


def test_rows_waiting_for_variants_more_than_an_hour_are_counted_by_field(mode, queue):
    late = [Event.objects.create(name=f"Late {i}", logo=logo()) for i in range(3)]
    Event.objects.create(name="Recent", logo=logo())  # pending for a moment: as it should be
    Event.objects.create(name="None")  # no file, no record
    age(late, datetime.timedelta(hours=1, minutes=1))
    out, _, code = run("doctor")
    assert code == 0, out
    assert "! 3 Event.logo images have variants pending for more than an hour" in out
    assert "Event.background" not in out  # no row of that field waits
    assert "manage.py keyed_storage variants --model events.Event --field logo --missing --enqueue" in out


def test_a_row_whose_variants_are_made_is_not_counted(mode, queue):
    event = Event.objects.create(name="Made", logo=logo())
    age([event], datetime.timedelta(hours=2))
    [result] = queue.results
    tasks.make_variants.call(*result.args)  # the worker catches up
    out, _, code = run("doctor")
    assert code == 0, out
    assert "pending for more than an hour" not in out


def test_a_failed_task_is_counted_with_an_example_of_its_error(mode, queue):
    event = Event.objects.create(name="Broken", logo=logo())
    [result] = queue.results
    Event.logo.field.storage.delete(event.logo.name)  # the original is gone: the task fails
    with pytest.raises(OSError):  # FileNotFoundError, from the disk or from S3
        tasks.make_variants.call(*result.args)
    out, _, code = run("doctor")
    assert code == 0, out
    assert "! 1 Event.logo images record a failed task making their variants" in out
    cause = section(out)[
        section(out).index("! 1 Event.logo images record a failed task making their variants") + 1
    ]
    assert cause.startswith("    cause: For example, after 1 tries: ") and "Error" in cause


# django_tasks_db ------------------------------------------------------------------------------


@pytest.fixture
def database_queue(settings):
    """django_tasks_db's backend, with its table (created here when the project lacks the app)."""
    created = "django_tasks_db" not in settings.INSTALLED_APPS
    if created:
        settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_tasks_db"]
    from django_tasks_db.models import DBTaskResult

    if created:
        with connection.schema_editor() as editor:
            editor.create_model(DBTaskResult)
    settings.TASKS = {"default": {"BACKEND": DATABASE}}
    yield DBTaskResult
    if created:
        with connection.schema_editor() as editor:
            editor.delete_model(DBTaskResult)


def waited(model, minutes: int) -> None:
    model.objects.update(enqueued_at=timezone.now() - datetime.timedelta(minutes=minutes))


def test_tasks_nobody_takes_are_a_warning_to_start_the_worker(local, database_queue):
    Event.objects.create(name="A", logo=logo())
    Event.objects.create(name="B", logo=logo())
    assert database_queue.objects.filter(task_path="keyed_storage.tasks.make_variants").count() == 2
    waited(database_queue, 6)
    out, _, code = run("doctor")
    assert code == 0, out
    oldest = database_queue.objects.earliest("enqueued_at").enqueued_at
    assert (
        f"! no worker seen: 2 keyed_storage tasks waiting since {oldest:%Y-%m-%d %H:%M} UTC; "
        "start `manage.py db_worker`"
    ) in out


def test_tasks_enqueued_a_moment_ago_or_with_a_worker_seen_are_no_warning(local, database_queue):
    Event.objects.create(name="A", logo=logo())
    out, _, _ = run("doctor")
    assert "no worker seen" not in out  # just enqueued: a worker has not had its chance
    waited(database_queue, 6)
    database_queue.objects.create(
        task_path="other.tasks.send_mail",
        args_kwargs={"args": [], "kwargs": {}},
        backend_name="default",
        run_after=timezone.now(),
        status="SUCCESSFUL",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    out, _, _ = run("doctor")
    assert "no worker seen" not in out  # a worker finished a task a moment ago: it is busy


def test_the_database_backend_without_its_app_is_named(local, settings):
    os.makedirs(settings.MEDIA_ROOT)
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_tasks_db"]
    settings.TASKS = {"default": {"BACKEND": DATABASE}}
    out, err, code = run("doctor")
    assert code == 1, out
    assert "✗ worker for django_tasks_db's queue" in out
    assert "Add 'django_tasks_db' to INSTALLED_APPS" in out and "Traceback" not in out + err
