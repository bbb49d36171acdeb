"""Background work run by a real worker process: django-tasks-db's `db_worker` (the `worker`
fixture, tests/tasks_helpers.py), against the test's own database (SQLite, or PostgreSQL in
the matrix's PostgreSQL entries) and storage (local and S3).

tests/images/test_background_variants.py runs the same tasks in this process, one at a time
in the order it chooses; here they go through the queue, another process and, for the
concurrency test, two of them at once. What is checked is what a site sees: the row's record,
the demo's event page, the links it hands out (fetched, decoded with Pillow) and the objects
left in the storage, plus every task's result as the database backend recorded it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from events.models import Event
from keyed_storage import tasks, upload
from keyed_storage.images.variants import variant_name

from ..helpers import fetch
from ..image_helpers import encode, halves
from ..site_helpers import img_tags, pixel_size, srcset_entries

try:
    from django.tasks import TaskResultStatus
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus

pytestmark = pytest.mark.django_db(transaction=True)

LOGO = Event._meta.get_field("logo")
BACKGROUND = Event._meta.get_field("background")


def logo(width: int = 1200, height: int = 900, left: str = "red") -> SimpleUploadedFile:
    return SimpleUploadedFile("logo.png", encode(halves(width, height, left=left), "PNG"))


def background(width: int = 2400, height: int = 1600) -> SimpleUploadedFile:
    return SimpleUploadedFile("background.jpg", encode(halves(width, height), "JPEG"))


@pytest.fixture
def stored(mode, request) -> Callable[[], set[str]]:
    """stored(): the name of every object in the test's storage (its bucket, or its MEDIA_ROOT)."""
    if mode == "s3":
        bucket = request.getfixturevalue("s3")
        return lambda: set(bucket.keys())
    root = Path(settings.MEDIA_ROOT)
    return lambda: {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def all_names(file) -> set[str]:
    """The original of a field's file and the names of all its declared variants."""
    return {file.name} | {variant_name(file.name, name, spec) for name, spec in file.field.variants.items()}


def results(task: str) -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=f"keyed_storage.tasks.{task}").order_by("enqueued_at"))


def assert_every_task_succeeded(output: str = "") -> None:
    everything = list(DBTaskResult.objects.all())
    assert everything, "nothing was enqueued"
    unfinished = {
        (result.task_path, result.status, result.traceback[-600:])
        for result in everything
        if result.status != TaskResultStatus.SUCCESSFUL
    }
    assert not unfinished, f"{unfinished}\n{output}"


def assert_variants_served(row: Event, field: str) -> None:
    """Every variant of the row's file is ready, and its link serves a picture of its size."""
    file = getattr(row, field)
    for name, variant in file.variants().items():
        assert variant.ready, name
        assert variant.name == variant_name(file.name, name, file.field.variants[name])
        assert pixel_size(fetch(variant.url)) == (variant.width, variant.height), name


def event_page(client, event: Event) -> list[dict]:
    response = client.get(f"/events/{event.pk}/")
    assert response.status_code == 200
    return img_tags(response.content.decode())


def assert_pictures_load(tags: list[dict], *, widths_as_claimed: bool = True) -> None:
    """Every <img>: its src and each srcset entry answer 200 with a picture (decoded by Pillow),
    the srcset entries as wide as they claim (unless not `widths_as_claimed`)."""
    for tag in tags:
        assert pixel_size(fetch(tag["src"]))  # decodes, or raises
        for url, width in srcset_entries(tag["srcset"]) if tag.get("srcset") else []:
            decoded = pixel_size(fetch(url))
            if widths_as_claimed:
                assert decoded[0] == width, f"{url} is {decoded[0]} pixels wide, srcset says {width}w"


def test_a_saved_logo_shows_stand_ins_until_the_worker_stores_its_variants(mode, worker, client):
    event = Event.objects.create(name="Worker Con", logo=logo(1200, 900), background=background())
    row = Event.objects.get(pk=event.pk)
    # The save made the smallest variant of each; the row says the rest are to come.
    assert row.logo_pending["made"] == ["thumb-160x160-q80.webp"] and row.logo_pending["error"] == ""
    assert row.logo.unready_variants() == {"card", "card_2x"}
    assert row.background.unready_variants() == {"banner", "banner_2x"}

    tags = event_page(client, row)
    banner, card = tags  # the page's two pictures: the background's banner, the logo's card
    # Stand-ins: the stored original (the 160-pixel thumb covers neither), laid out at the
    # variant's own size, the crop's stand-in covering its box; no link to what is not stored.
    assert card["src"] == row.logo.url and (card["width"], card["height"]) == ("320", "240")
    assert banner["src"] == row.background.url and (banner["width"], banner["height"]) == ("960", "240")
    assert "object-fit: cover" in banner["style"]
    offered = " ".join(f"{tag['src']} {tag.get('srcset') or ''}" for tag in tags)
    assert "~card-" not in offered and "~banner" not in offered
    # (The srcset widths of a stand-in: test_a_stand_ins_srcset_says_how_wide_its_pictures_are.)
    assert_pictures_load(tags, widths_as_claimed=False)
    assert pixel_size(fetch(card["src"])) == (1200, 900)

    run = worker.drain()

    assert_every_task_succeeded(run.output)
    row = Event.objects.get(pk=event.pk)
    assert row.logo_pending is None and row.background_pending is None, run.output
    assert_variants_served(row, "logo")
    assert_variants_served(row, "background")
    banner, card = event_page(client, row)
    assert card["src"] == row.logo.variant("card").url and "~card-320x320" in card["src"]
    assert banner["src"] == row.background.variant("banner").url and "~banner-960x240" in banner["src"]
    assert "style" not in banner
    assert_pictures_load([banner, card])
    assert pixel_size(fetch(card["src"])) == (320, 240)
    assert sorted(result.return_value for result in results("make_variants")) == [
        f"made 2 variants of {row.background.name}: banner, banner_2x",
        f"made 2 variants of {row.logo.name}: card, card_2x",
    ]


def test_a_stand_ins_srcset_says_how_wide_its_pictures_are(mode, worker, client):
    # A browser takes a srcset entry's width as the picture's: a 2400-pixel original offered
    # as "960w" is laid out 2.5 times too large wherever the CSS leaves its size to the picture.
    event = Event.objects.create(name="Worker Con", logo=logo(1200, 900), background=background())
    assert_pictures_load(event_page(client, Event.objects.get(pk=event.pk)))


@pytest.mark.parametrize("replaced", ["before the worker ran", "after the worker ran"])
def test_a_replaced_logo_leaves_only_the_new_file_and_its_variants(mode, worker, stored, replaced):
    event = Event.objects.create(name="Worker Con", logo=logo(1200, 900))
    old = event.logo.name
    if replaced == "after the worker ran":
        worker.drain()
        assert all_names(Event.objects.get(pk=event.pk).logo) <= stored()
    event.logo = logo(800, 600, left="green")
    event.save()

    run = worker.drain()

    assert_every_task_succeeded(run.output)
    row = Event.objects.get(pk=event.pk)
    assert row.logo.name != old and row.logo_pending is None, run.output
    # The old original and every variant of it gone; the new ones all there, and nothing else.
    assert stored() == all_names(row.logo), run.output
    assert_variants_served(row, "logo")
    assert pixel_size(fetch(row.logo.url)) == (800, 600)
    if replaced == "before the worker ran":
        first = results("make_variants")[0]
        assert first.return_value == (
            f"nothing to do: events.Event {event.pk}.logo holds {row.logo.name!r} now, not {old!r}"
        )


@pytest.mark.parametrize("deleted", ["before the worker ran", "after the worker ran"])
def test_a_deleted_events_files_are_gone_once_the_worker_ran(mode, worker, stored, deleted):
    event = Event.objects.create(name="Worker Con", logo=logo(), background=background())
    if deleted == "after the worker ran":
        worker.drain()
        row = Event.objects.get(pk=event.pk)
        assert all_names(row.logo) | all_names(row.background) == stored()
    else:
        assert stored()  # the originals and their thumbs, made in the request
    event.delete()

    run = worker.drain()

    assert_every_task_succeeded(run.output)
    assert stored() == set(), run.output
    assert sorted(result.return_value for result in results("delete_file")) == sorted(
        [f"deleted {event.logo.name}", f"deleted {event.background.name}"]
    )


def test_uploads_to_one_key_leave_only_the_newest_once_the_worker_ran(mode, worker, stored):
    first = upload(io.BytesIO(b"the first upload"), "users/9/avatar")
    second = upload(io.BytesIO(b"the second upload"), "users/9/avatar")
    assert first != second
    assert len(stored()) == 2  # the sweep is the worker's

    run = worker.drain()

    assert_every_task_succeeded(run.output)
    [survivor] = stored()
    assert default_storage.url(survivor) == second
    assert fetch(second) == b"the second upload"
    assert sorted(result.return_value for result in results("sweep_key")) == [
        "deleted 0 earlier objects of users/9/avatar",
        "deleted 1 earlier objects of users/9/avatar",
    ]


def test_two_workers_at_once_make_every_variant_once_and_correctly(mode, worker, stored):
    events = [
        Event.objects.create(name=f"Con {number}", logo=logo(1000 + 40 * number, 700)) for number in range(6)
    ]
    # A duplicate delivery of half the work, so the two workers also run one task at once.
    for event in events[::2]:
        tasks.make_variants.enqueue("events.Event", str(event.pk), "logo", event.logo.name)

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: worker.drain(), range(2)))

    output = "\n".join(run.output for run in runs)
    assert_every_task_succeeded(output)
    ran_by = {tuple(result.worker_ids) for result in results("make_variants")}
    assert all(len(ids) == 1 for ids in ran_by), ran_by  # each task claimed by one worker
    names: set[str] = set()
    for event in events:
        row = Event.objects.get(pk=event.pk)
        assert row.logo_pending is None, (row.logo_pending, output)
        assert_variants_served(row, "logo")
        names |= all_names(row.logo)
    assert stored() == names
    # Each task ran once, by one worker. An event enqueued once had its variants made by that
    # run; of an event's two deliveries each made them or found them made (both may have made
    # them, if they ran at the same moment: the same bytes under the same names).
    said: dict[str, list[str]] = {}
    for result in results("make_variants"):
        said.setdefault(result.args_kwargs["args"][3], []).append(result.return_value)
    for number, event in enumerate(events):
        made = f"made 2 variants of {event.logo.name}: card, card_2x"
        found_made = f"nothing to do: the variants of {event.logo.name} are made"
        if number % 2:
            assert said[event.logo.name] == [made]
        else:
            assert made in said[event.logo.name] and set(said[event.logo.name]) <= {made, found_made}


def test_a_task_whose_row_was_deleted_succeeds_and_says_it_did_nothing(mode, worker):
    event = Event.objects.create(name="Worker Con", logo=logo())
    Event.objects.filter(pk=event.pk).delete()

    run = worker.drain()

    [result] = results("make_variants")
    assert result.status == TaskResultStatus.SUCCESSFUL, run.output
    assert result.return_value == f"nothing to do: events.Event {event.pk} was deleted"
    assert_every_task_succeeded(run.output)
