"""Variants, deletions and sweeps handed to a task backend: what is enqueued, when, with what,
what pages show meanwhile, and what each task does when it runs (or runs twice, or late).

Here the tasks framework's DummyBackend keeps what is enqueued and the test runs it, in this
process and in the order it chooses; tests/core/test_task_worker.py and the lifecycle
machine run the same tasks in a real worker process.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.template import Context, Template
from PIL import Image

from events.models import Event
from keyed_storage import background, tasks, upload
from keyed_storage.images.variants import Variant, variant_name
from keyed_storage.widgets import render_preview

from ..image_helpers import encode, halves
from ..tasks_helpers import IMMEDIATE

pytestmark = pytest.mark.django_db(transaction=True)


def enqueued(queue, name: str) -> list[tuple]:
    return [tuple(result.args) for result in queue.results if result.task.name == name]


def run(name: str, args: tuple) -> str:
    return getattr(tasks, name).call(*args)


def logo(width: int = 1200, height: int = 900) -> SimpleUploadedFile:
    return SimpleUploadedFile("logo.png", encode(halves(width, height), "PNG"))


def stored(name: str) -> bool:
    return Event._meta.get_field("logo").storage.exists(name)


def decoded(name: str) -> Image.Image:
    with Event._meta.get_field("logo").storage.open(name) as file:
        image = Image.open(io.BytesIO(file.read()))
        image.load()
        return image


def test_a_save_stores_the_original_and_the_smallest_variant_and_enqueues_the_rest(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo())
    name = event.logo.name
    assert stored(name)
    assert stored(variant_name(name, "thumb", Event.logo.field.variants["thumb"]))
    for later in ("card", "card_2x"):
        assert not stored(variant_name(name, later, Event.logo.field.variants[later]))
    row = Event.objects.get(pk=event.pk)  # what the row holds, as a page loads it
    assert row.logo_pending["made"] == ["thumb-160x160-q80.webp"]
    assert row.logo_pending["tries"] == 0 and row.logo_pending["error"] == ""
    assert row.logo.unready_variants() == {"card", "card_2x"}
    # Enqueued once, after the row had its id, with JSON arguments only.
    args = enqueued(queue, "make_variants")
    assert args == [("events.Event", str(event.pk), "logo", name)]
    json.dumps(args)


def test_until_the_worker_runs_pages_show_a_stored_stand_in_at_the_variants_size(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo(1200, 900))
    row = Event.objects.get(pk=event.pk)
    card = row.logo.variant("card")
    assert not card.ready and (card.width, card.height) == (320, 240)
    assert card.name == row.logo.name  # the 160-pixel thumb does not cover it: the original does
    thumb = row.logo.variant("thumb")
    assert thumb.ready and thumb.name.endswith("~thumb-160x160-q80.webp")
    html = Template('{% load keyed_storage %}{% image row.logo "card" %}').render(Context({"row": row}))
    assert f'src="{row.logo.url}"' in html and 'width="320" height="240"' in html
    assert "card-320x320" not in html  # no link to what is not stored yet
    assert decoded(card.name).size == (1200, 900)


def test_the_task_stores_the_rest_and_the_row_says_they_are_ready(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo(1200, 900))
    [args] = enqueued(queue, "make_variants")
    assert run("make_variants", args) == (f"made 2 variants of {event.logo.name}: card, card_2x")
    row = Event.objects.get(pk=event.pk)
    assert row.logo_pending is None and row.logo.unready_variants() == frozenset()
    for name, size in {"card": (320, 240), "card_2x": (640, 480)}.items():
        variant = row.logo.variant(name)
        assert variant.ready and decoded(variant.name).size == size == (variant.width, variant.height)
    # Idempotent: a second run (a retry, a duplicate delivery) finds nothing to do.
    assert run("make_variants", args) == f"nothing to do: the variants of {event.logo.name} are made"


def test_a_task_for_a_replaced_or_deleted_row_does_nothing_and_says_so(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo())
    [first] = enqueued(queue, "make_variants")
    old = event.logo.name
    event.logo = logo(800, 600)
    event.save()
    new = event.logo.name
    assert (
        run("make_variants", first)
        == f"nothing to do: events.Event {event.pk}.logo holds {new!r} now, not {old!r}"
    )
    # The old file's deletion went to the queue too, and runs there.
    assert enqueued(queue, "delete_file") == [("events.Event", "logo", old)]
    assert stored(old)
    assert run("delete_file", ("events.Event", "logo", old)) == f"deleted {old}"
    assert not stored(old) and not stored(variant_name(old, "thumb", Event.logo.field.variants["thumb"]))
    assert run("delete_file", ("events.Event", "logo", old)) == f"deleted {old}"  # twice: no error
    second = enqueued(queue, "make_variants")[1]
    Event.objects.filter(pk=event.pk).delete()
    assert run("make_variants", second) == f"nothing to do: events.Event {event.pk} was deleted"


def test_a_deletion_task_keeps_a_file_another_row_names(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo())
    copy = Event.objects.create(name="Copy", logo=event.logo.name)
    event.delete()
    [args] = enqueued(queue, "delete_file")
    assert (
        run("delete_file", args)
        == f"kept {copy.logo.name}: a events.Event row or the field's default names it"
    )
    assert stored(copy.logo.name)


def test_nothing_is_enqueued_before_the_transaction_commits_nor_after_a_rollback(mode, queue):
    with transaction.atomic():
        Event.objects.create(name="Conf", logo=logo())
        assert enqueued(queue, "make_variants") == []
    assert len(enqueued(queue, "make_variants")) == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        Event.objects.create(name="Gone", logo=logo())
        raise RuntimeError("rolled back")
    assert len(enqueued(queue, "make_variants")) == 1


def test_a_failing_task_records_its_error_and_is_tried_again_later(mode, queue):
    event = Event.objects.create(name="Conf", logo=logo())
    [args] = enqueued(queue, "make_variants")
    Event._meta.get_field("logo").storage.delete(event.logo.name)  # the original is gone
    with pytest.raises(FileNotFoundError):
        run("make_variants", args)
    record = Event.objects.get(pk=event.pk).logo_pending
    assert record["tries"] == 1 and "FileNotFoundError" in record["error"]
    retry = [result for result in queue.results if result.task.name == "make_variants"][-1]
    assert tuple(retry.args) == (*args, 2) and retry.task.run_after is not None
    queue.clear()
    with pytest.raises(FileNotFoundError):
        run("make_variants", (*args, background.MAX_TRIES))
    assert enqueued(queue, "make_variants") == []  # the last try: no more
    assert Event.objects.get(pk=event.pk).logo_pending["tries"] == background.MAX_TRIES


def test_upload_leaves_the_sweep_of_the_keys_earlier_objects_to_the_worker(mode, queue):
    first = upload(io.BytesIO(b"one"), "users/9/avatar")
    second = upload(io.BytesIO(b"two"), "users/9/avatar")
    sweeps = enqueued(queue, "sweep_key")
    assert [key for key, _ in sweeps] == ["users/9/avatar", "users/9/avatar"]
    storage = Event._meta.get_field("logo").storage
    first_name = sweeps[0][1]
    assert storage.exists(first_name)  # still there: the worker has not run
    assert run("sweep_key", sweeps[1]) == "deleted 1 earlier objects of users/9/avatar"
    assert not storage.exists(first_name) and storage.exists(sweeps[1][1])
    assert first != second


def test_with_the_immediate_backend_everything_happens_in_the_request(mode, settings):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE}}
    assert not background.in_background()
    event = Event.objects.create(name="Conf", logo=logo())
    row = Event.objects.get(pk=event.pk)
    assert row.logo_pending is None
    for name, spec in Event.logo.field.variants.items():
        assert stored(variant_name(row.logo.name, name, spec))


def test_a_backend_that_refuses_the_work_gets_it_done_in_the_request(mode, queue, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("the queue is down")

    monkeypatch.setattr(type(queue), "enqueue", refuse)
    event = Event.objects.create(name="Conf", logo=logo())
    row = Event.objects.get(pk=event.pk)
    assert row.logo_pending is None and row.logo.variant("card").ready
    assert "could not enqueue make_variants" in caplog.text and "doing it now" in caplog.text


def test_admin_previews_offer_only_stored_variants_while_the_worker_has_not_run(mode, queue, admin_client):
    event = Event.objects.create(name="Conf", logo=logo(1200, 900))
    row = Event.objects.get(pk=event.pk)
    pending = [row.logo.variant(name) for name in ("card", "card_2x")]
    assert not any(variant.ready for variant in pending)
    specs = Event.logo.field.variants
    waiting = [variant_name(row.logo.name, name, specs[name]) for name in ("card", "card_2x")]
    html = render_preview(row.logo, size=(320, 200))
    assert all(name not in html for name in waiting), html  # not in src, nor in srcset
    page = admin_client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "card (being made)" in page and "card_2x (being made)" in page
    assert all(name not in page for name in waiting)
    [args] = enqueued(queue, "make_variants")
    run("make_variants", args)
    page = admin_client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "being made" not in page and all(name in page for name in waiting)


def test_a_pending_field_that_is_not_a_nullable_json_field_is_check_e013():
    from django.db import models
    from django.test.utils import isolate_apps

    from keyed_storage.fields import KeyedImageField

    with isolate_apps("events"):

        class Poster(models.Model):
            image = KeyedImageField(variants={"thumb": Variant(10, 10)}, pending_field="image_pending")
            image_pending = models.JSONField(default=dict)

            class Meta:
                app_label = "events"

        class Flyer(models.Model):
            image = KeyedImageField(variants={"thumb": Variant(10, 10)}, pending_field="nowhere")

            class Meta:
                app_label = "events"

        for model in (Poster, Flyer):
            [error] = [e for e in model._meta.get_field("image").check() if e.id == "keyed_storage.E013"]
            assert "pending_field=" in error.msg and "nullable JSONField" in error.msg


def test_without_a_tasks_framework_work_stays_in_the_request(mode, monkeypatch):
    """Django 5.2 without the django-tasks backport: nothing to enqueue to."""
    monkeypatch.setattr(background, "framework", lambda: None)
    assert not background.in_background()
    assert background.describe().startswith("no tasks framework")
    event = Event.objects.create(name="Conf", logo=logo())
    row = Event.objects.get(pk=event.pk)
    assert row.logo_pending is None and not row.logo.unready_variants()
    for name, spec in Event.logo.field.variants.items():
        assert stored(variant_name(row.logo.name, name, spec))


def test_a_task_for_a_model_or_field_gone_since_does_nothing_and_says_so(mode, queue):
    assert run("make_variants", ("events.Gone", "1", "logo", "x.png")) == (
        "nothing to do: events.Gone.logo no longer exists (App 'events' doesn't have a 'Gone' model.)"
    )
    said = run("delete_file", ("events.Event", "flyer", "events/1/flyer/x.png"))
    assert said.startswith("kept events/1/flyer/x.png: nothing to do: events.Event.flyer no longer exists")
    assert run("make_variants", ("events.Event", "1", "name", "x.png")) == (
        "nothing to do: events.Event.name is no longer a file field"
    )


def test_a_task_for_a_field_that_no_longer_records_pending_variants_makes_them_all(mode, queue, monkeypatch):
    """Pages of a field without pending_field link every variant: the task must make them all."""
    event = Event.objects.create(name="Conf", logo=logo(1200, 900))
    [args] = enqueued(queue, "make_variants")
    monkeypatch.setattr(Event.logo.field, "pending_field", None)  # a deployment dropped it meanwhile
    assert run("make_variants", args) == f"made 3 variants of {event.logo.name}: card, card_2x, thumb"
    row = Event.objects.get(pk=event.pk)
    for name in ("thumb", "card", "card_2x"):
        variant = row.logo.variant(name)
        assert variant.ready and decoded(variant.name).size == (variant.width, variant.height)
