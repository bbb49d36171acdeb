"""`keyed_storage variants --enqueue`: rows record their variants as pending and a worker's task is
enqueued for each, with JSON arguments; running the tasks stores the variants and clears the
record. Refused without a worker backend, and for fields without a pending_field.

The tasks framework's DummyBackend keeps what is enqueued and the test runs it, as in
tests/images/test_background_variants.py.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from events.models import Event
from keyed_storage import background, tasks
from keyed_storage.images.variants import variant_name
from keyed_storage.ops import variants as ops

from ..image_helpers import encode, halves, image_model
from ..ops_helpers import run
from ..tasks_helpers import DUMMY, FRAMEWORK
from .test_variants import registered

pytestmark = pytest.mark.django_db(transaction=True)

LOGO = ("--model", "events.Event", "--field", "logo")
SPECS = Event.logo.field.variants


def logo(i: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"logo{i}.png", encode(halves(800 + i, 600), "PNG"))


def stored_in_the_request(count: int) -> list[Event]:
    """Rows saved before the site had a worker: every variant stored, nothing pending."""
    return [Event.objects.create(name=f"E{i}", logo=logo(i)) for i in range(count)]


def storage():
    return Event.logo.field.keyed_storage


def variant(event: Event, key: str) -> str:
    return variant_name(event.logo.name, key, SPECS[key])


def enqueued(queue) -> list[tuple]:
    return [tuple(result.args) for result in queue.results if result.task.name == "make_variants"]


def summary(text: str) -> str:
    return text.strip().splitlines()[-1].removeprefix("CommandError: ")


def test_rows_are_marked_and_a_task_enqueued_for_each_which_makes_the_variants(mode, settings):
    events = stored_in_the_request(2)  # no TASKS yet: the immediate backend, variants in the request
    for event in events:
        for key in SPECS:
            storage().delete(variant(event, key))  # as if their spec had changed since
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    queue = background.backend()
    queue.clear()
    before = datetime.datetime.now(datetime.UTC)
    out, err, code = run("variants", *LOGO, "--enqueue")
    assert code == 0, err
    assert out.startswith(
        "2 rows with a file; every declared variant is enqueued for a worker (TASKS['default']):"
    )
    assert summary(out) == "Enqueued 6 variants of 2 rows for a worker, skipped 0 already there, 0 failed."
    args = enqueued(queue)
    assert args == [("events.Event", str(event.pk), "logo", event.logo.name) for event in events]
    json.dumps(args)
    for event in events:
        event.refresh_from_db()
        record = event.logo_pending
        assert record["made"] == [] and record["tries"] == 0 and record["error"] == ""
        assert datetime.datetime.fromisoformat(record["since"]) >= before
        assert event.logo.unready_variants() == set(SPECS)
        assert not any(storage().exists(variant(event, key)) for key in SPECS)  # nothing built here
    for one in args:
        assert tasks.make_variants.call(*one).startswith("made 3 variants of ")
    for event in events:
        event.refresh_from_db()
        assert event.logo_pending is None
        assert all(storage().exists(variant(event, key)) for key in SPECS)


def test_with_missing_only_what_is_not_stored_is_enqueued(mode, settings):
    whole, lacking = stored_in_the_request(2)
    storage().delete(variant(lacking, "card_2x"))
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    queue = background.backend()
    queue.clear()
    out, err, code = run("variants", *LOGO, "--missing", "--enqueue", "-v", "2")
    assert code == 0, err
    assert summary(out) == "Enqueued 1 variants of 1 rows for a worker, skipped 5 already there, 0 failed."
    assert f"enqueued: {variant(lacking, 'card_2x')}" in err
    assert enqueued(queue) == [("events.Event", str(lacking.pk), "logo", lacking.logo.name)]
    whole.refresh_from_db()
    lacking.refresh_from_db()
    assert whole.logo_pending is None  # nothing to do: no record, no task
    assert sorted(lacking.logo_pending["made"]) == ["card-320x320-q80.webp", "thumb-160x160-q80.webp"]
    assert lacking.logo.unready_variants() == {"card_2x"}
    assert tasks.make_variants.call(*enqueued(queue)[0]) == f"made 1 variants of {lacking.logo.name}: card_2x"
    lacking.refresh_from_db()
    assert lacking.logo_pending is None and storage().exists(variant(lacking, "card_2x"))


def test_dry_run_marks_nothing_and_enqueues_nothing(local, queue):
    [event] = stored_in_the_request(1)
    queue.clear()
    Event.objects.filter(pk=event.pk).update(logo_pending=None)
    out, err, code = run("variants", *LOGO, "--enqueue", "--dry-run")
    assert code == 0, err
    assert (
        summary(out) == "Would enqueue 3 variants of 1 rows for a worker, skipped 0 already there, 0 failed."
    )
    assert f"would enqueue: {variant(event, 'card')}" in err
    assert enqueued(queue) == []
    event.refresh_from_db()
    assert event.logo_pending is None


def test_a_row_replaced_meanwhile_keeps_its_new_record_and_gets_no_task(local, queue, monkeypatch):
    [event] = stored_in_the_request(1)
    old = event.logo.name
    storage().delete(variant(event, "card"))
    listed = ops.stored_variants

    def replaced_during(*args, **kwargs):
        # Another request stores a new logo while the command looks at the old one.
        other = Event.objects.get(pk=event.pk)
        other.logo = logo(5)
        other.save()
        return listed(*args, **kwargs)

    monkeypatch.setattr(ops, "stored_variants", replaced_during)
    queue.clear()
    _, err, code = run("variants", *LOGO, "--missing", "--enqueue")
    assert code == 0, err
    assert f"replaced meanwhile, left alone: events.Event.logo pk={event.pk}" in err
    event.refresh_from_db()
    assert event.logo.name != old
    # Only the new save's own task: none for the old file, and the new file's record stands.
    assert enqueued(queue) == [("events.Event", str(event.pk), "logo", event.logo.name)]
    assert event.logo_pending["made"] == ["thumb-160x160-q80.webp"]


def test_refused_without_a_worker_backend(local):
    stored_in_the_request(1)
    _, err, code = run("variants", *LOGO, "--enqueue")  # no TASKS: the immediate backend
    assert code == 1
    assert summary(err) == (
        "--enqueue hands the variants to a worker, but there is none: "
        f"{FRAMEWORK.__name__}, TASKS['default'] = {FRAMEWORK.__name__}.backends.immediate.ImmediateBackend: "
        "work runs in the request. Set TASKS['default'] to a backend a worker runs (such as "
        "django_tasks_db.DatabaseBackend, with `manage.py db_worker`), or leave out --enqueue to build the "
        "variants in this command."
    )
    assert Event.objects.get().logo_pending is None


@pytest.fixture
def Picture():
    """A model whose KeyedImageField has variants but no pending_field."""
    with image_model() as model, registered(model):
        yield model


def test_refused_for_a_field_without_a_pending_field(local, queue, Picture):
    Picture.objects.create(image=logo())
    queue.clear()
    _, err, code = run("variants", "--model", "events.Picture", "--enqueue")
    assert code == 1
    assert summary(err) == (
        "--enqueue needs a pending_field, where the row records the variants to come; events.Picture.image "
        "has none. Declare one (KeyedImageField(pending_field=...)), or build those in this command without "
        "--enqueue."
    )
    _, err, code = run("variants", "--enqueue")  # every field: the others are named
    assert code == 1
    assert "events.Picture.image has none" in err
    assert "fields that can be enqueued: " in err and "events.Event.logo" in err
    assert enqueued(queue) == [] and Picture.objects.get().width  # nothing changed


# The record of a row whose variants the command stores ----------------------------------------


def test_building_in_the_command_clears_the_record_the_worker_never_cleared(mode, queue):
    event = Event.objects.create(name="Stuck", logo=logo())  # a worker never ran its task
    age_by_two_hours(event)
    assert "1 Event.logo images have variants pending" in run("doctor")[0]
    out, err, code = run("variants", *LOGO, "--missing")
    assert code == 0, err
    assert summary(out).startswith("Built 2 variants (")
    event.refresh_from_db()
    assert event.logo_pending is None and event.logo.unready_variants() == frozenset()
    assert all(storage().exists(variant(event, key)) for key in SPECS)
    assert "variants pending" not in run("doctor")[0]


def test_a_record_whose_variants_are_all_stored_is_cleared_without_a_task(local, settings):
    [event] = stored_in_the_request(1)  # no TASKS yet: every variant stored in the request
    stale = {
        "made": [],
        "since": "2026-01-01T00:00:00+00:00",
        "tries": 5,
        "error": "OSError: gone for a while",
    }
    Event.objects.filter(pk=event.pk).update(logo_pending=stale)
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    queue = background.backend()
    queue.clear()
    out, err, code = run("variants", *LOGO, "--missing", "--enqueue")
    assert code == 0, err
    assert summary(out) == "Enqueued 0 variants of 0 rows for a worker, skipped 3 already there, 0 failed."
    assert enqueued(queue) == []
    event.refresh_from_db()
    assert event.logo_pending is None


def test_a_dry_run_leaves_the_record(local, settings):
    [event] = stored_in_the_request(1)
    stale = {"made": [], "since": "2026-01-01T00:00:00+00:00", "tries": 0, "error": ""}
    Event.objects.filter(pk=event.pk).update(logo_pending=stale)
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    for enqueue in ((), ("--enqueue",)):
        assert run("variants", *LOGO, "--missing", "--dry-run", *enqueue)[2] == 0
        event.refresh_from_db()
        assert event.logo_pending == stale


def age_by_two_hours(event: Event) -> None:
    event.refresh_from_db()
    since = datetime.datetime.fromisoformat(event.logo_pending["since"]) - datetime.timedelta(hours=2)
    Event.objects.filter(pk=event.pk).update(logo_pending={**event.logo_pending, "since": since.isoformat()})
