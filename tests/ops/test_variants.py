"""`keyed_storage variants`: the variants of files stored before they were declared (or before a
spec changed) built for every row, only what is missing with --missing, resumable, failures
counted, one listing per file."""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections import Counter
from contextlib import contextmanager

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from keyed_storage import KeyedStorage, backends, config
from keyed_storage.images.variants import Variant
from keyed_storage.ops import variants as ops

from ..helpers import fetch
from ..image_helpers import VARIANTS, encode, halves, image_model, jpeg_with_orientation
from ..ops_helpers import run

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = ("--model", "events.Picture")


@contextmanager
def registered(model):
    """The test model in the project's app registry, where the command looks for models."""
    models = apps.all_models[model._meta.app_label]
    models[model._meta.model_name] = model
    apps.clear_cache()
    try:
        yield model
    finally:
        del models[model._meta.model_name]
        apps.clear_cache()


@pytest.fixture
def Picture():
    """A model whose KeyedImageField declares no variants yet (as before an upgrade)."""
    with image_model({}) as model, registered(model):
        yield model


def declare(model, variants=VARIANTS) -> None:
    """What a deploy that adds variants to the field does (the rows stay as they were)."""
    model._meta.get_field("image").variants = dict(variants)


def store(model, count: int, make=lambda i: encode(halves(400 + i, 300), "PNG")) -> list:
    return [model.objects.create(image=SimpleUploadedFile(f"photo{i}.png", make(i))) for i in range(count)]


def stored(row) -> dict[str, bool]:
    """Which declared variants of `row` exist, asked one by one (not by the command's listing)."""
    row.refresh_from_db()
    storage = KeyedStorage()
    return {key: storage.exists(variant.name) for key, variant in row.image.variants().items()}


def summary(text: str) -> str:
    return text.strip().splitlines()[-1].removeprefix("CommandError: ")


def shown(url: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(fetch(url))).size


# Building what is missing ---------------------------------------------------------------------


def test_builds_the_variants_of_files_stored_before_they_were_declared(mode, Picture):
    rows = store(Picture, 3)
    declare(Picture)
    assert not any(any(stored(row).values()) for row in rows)

    out, err, code = run("variants", *MODEL, "--missing")
    assert code == 0, err
    assert out.startswith("3 rows with a file; the variants not stored yet are built:\n")
    assert "  events.Picture.image: 3 rows, variants thumb, card, hero\n" in out
    assert summary(out).startswith("Built 9 variants (")
    assert summary(out).endswith("for 3 rows, skipped 0 already there, set 0 sizes, 0 failed.")
    for row in rows:
        assert all(stored(row).values())
        for variant in row.image.variants().values():
            assert shown(variant.url) == (variant.width, variant.height)


def test_a_second_run_builds_nothing(mode, Picture):
    store(Picture, 2)
    declare(Picture)
    run("variants", *MODEL, "--missing")
    out, _, code = run("variants", *MODEL, "--missing")
    assert code == 0
    assert (
        summary(out)
        == "Built 0 variants (0\xa0bytes) for 2 rows, skipped 6 already there, set 0 sizes, 0 failed."
    )


def test_without_missing_every_variant_is_rebuilt(mode, Picture):
    [row] = store(Picture, 1)
    declare(Picture)
    run("variants", *MODEL)
    thumb = row.image.variant("thumb")
    KeyedStorage().save(thumb.name, ContentFile(b"damaged"), overwrite=True)

    out, _, _ = run("variants", *MODEL, "--missing")
    assert "skipped 3 already there" in out  # --missing trusts what is stored
    out, _, code = run("variants", *MODEL)
    assert code == 0
    assert summary(out).startswith("Built 3 variants (") and "skipped 0 already there" in out
    assert shown(thumb.url) == (160, 160)


def test_after_a_spec_change_only_the_new_names_are_built(mode, Picture):
    rows = store(Picture, 2)
    declare(Picture)
    run("variants", *MODEL, "--missing")
    old_card = [row.image.variant("card") for row in rows]
    declare(Picture, {**VARIANTS, "card": Variant(800, 450, crop=True)})

    out, _, code = run("variants", *MODEL, "--missing")
    assert code == 0
    assert summary(out).startswith("Built 2 variants (") and "skipped 4 already there" in out
    for row in rows:
        assert all(stored(row).values())
        assert shown(row.image.variant("card").url) == (800, 450)
    # The old spec's files stay until their original goes, and go with it.
    storage = KeyedStorage()
    assert all(storage.exists(card.name) for card in old_card)
    for row in rows:
        row.delete()
    assert not any(storage.exists(card.name) for card in old_card)


def test_a_field_named_alone_is_enough(mode, Picture):
    store(Picture, 1)
    declare(Picture)
    out, _, code = run("variants", "--field", "image", "--missing")
    assert code == 0 and "Built 3 variants" in out


def test_every_field_with_variants_when_none_is_named(mode, Picture):
    store(Picture, 1)
    declare(Picture)
    out, _, code = run("variants")
    assert code == 0
    assert "every declared variant is rebuilt:" in out
    assert "  events.Picture.image: 1 rows, variants" in out and "Built 3 variants" in out


# Sizes ---------------------------------------------------------------------------------------


def test_empty_sizes_are_filled_with_the_size_as_shown(mode, Picture, monkeypatch):
    # Stored 300x200 with EXIF orientation 6: shown 200x300.
    row = Picture.objects.create(image=SimpleUploadedFile("p.jpg", jpeg_with_orientation(300, 200, 6)))
    declare(Picture)
    run("variants", *MODEL, "--missing")
    Picture.objects.filter(pk=row.pk).update(width=None, height=None)

    # Every variant is there: only the size is wanted, read from the header, nothing decoded.
    monkeypatch.setattr(ops, "render", lambda *args, **kwargs: pytest.fail("decoded for a size"))
    out, _, code = run("variants", *MODEL, "--missing")
    assert code == 0
    assert (
        summary(out)
        == "Built 0 variants (0\xa0bytes) for 1 rows, skipped 3 already there, set 1 sizes, 0 failed."
    )
    row.refresh_from_db()
    assert (row.width, row.height) == (200, 300)
    assert (row.image.variant("hero").width, row.image.variant("hero").height) == (200, 300)


def test_a_size_stored_before_the_orientation_was_applied_is_corrected(mode, Picture):
    row = Picture.objects.create(image=SimpleUploadedFile("p.jpg", jpeg_with_orientation(300, 200, 6)))
    Picture.objects.filter(pk=row.pk).update(width=300, height=200)  # what Django's ImageField stores
    declare(Picture)
    out, _, code = run("variants", *MODEL)
    assert code == 0 and "set 1 sizes" in out
    row.refresh_from_db()
    assert (row.width, row.height) == (200, 300)
    assert shown(row.image.variant("hero").url) == (200, 300)


# Resuming, failures -------------------------------------------------------------------------


def test_an_interrupted_run_resumes_with_missing(mode, Picture, monkeypatch):
    rows = store(Picture, 5)
    declare(Picture)
    render, calls = ops.render, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C, or a deploy killing the job, in the 4th row
        return render(*args, **kwargs)

    monkeypatch.setattr(ops, "render", interrupted)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        call_command("keyed_storage", "variants", *MODEL, stdout=out, stderr=err)
    assert "Stopped after 3 of 5 rows. Built 9 variants (" in err.getvalue()
    assert "Run again with --missing to do what is left." in err.getvalue()
    assert [all(stored(row).values()) for row in rows] == [True, True, True, False, False]
    assert not any(stored(rows[3]).values())  # a variant is stored whole or not at all

    monkeypatch.setattr(ops, "render", render)
    out, _, code = run("variants", *MODEL, "--missing")
    assert code == 0
    assert summary(out).startswith("Built 6 variants (") and "skipped 9 already there" in out
    assert all(all(stored(row).values()) for row in rows)


def test_failed_files_are_counted_and_the_run_goes_on(mode, Picture):
    good, missing, broken, huge = store(Picture, 4)
    declare(Picture)
    storage = KeyedStorage()
    storage.delete(missing.image.name)
    storage.save(broken.image.name, ContentFile(b"\x89PNG\r\n\x1a\n truncated"), overwrite=True)
    Picture._meta.get_field("image").max_pixels = 403 * 300 - 1  # the 4th picture is 403 x 300

    _, err, code = run("variants", *MODEL, "--missing")
    assert code == 1
    label = "events.Picture.image"
    assert f"failed: {label} pk={missing.pk} {missing.image.name}: the original is missing" in err
    assert f"failed: {label} pk={broken.pk} {broken.image.name}: This file is not an image" in err
    assert f"failed: {label} pk={huge.pk} {huge.image.name}: This image has 120,900 pixels" in err
    assert summary(err).startswith("Built 3 variants (")
    assert "for 4 rows, skipped 0 already there, set 0 sizes, 3 failed." in err
    assert "run again with --missing" in err
    assert all(stored(good).values())


@pytest.mark.parametrize("missing", [(), ("--missing",)])
def test_a_name_that_is_not_a_valid_key_fails_alone(local, Picture, missing):
    first, second = store(Picture, 2)
    declare(Picture)
    Picture.objects.filter(pk=first.pk).update(image="pictures/../../etc/passwd")
    _, err, code = run("variants", *MODEL, *missing)
    assert code == 1
    assert f"failed: events.Picture.image pk={first.pk} pictures/../../etc/passwd: not a valid key: " in err
    assert "Built 3 variants" in err and "1 failed." in err
    assert all(stored(second).values())


def test_a_file_pillow_stumbles_on_fails_alone(local, Picture, monkeypatch):
    first, second = store(Picture, 2)
    declare(Picture)
    render = ops.render

    def stumbling(source, *args, **kwargs):
        if str(source.name).endswith(first.image.name):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return render(source, *args, **kwargs)

    monkeypatch.setattr(ops, "render", stumbling)
    _, err, code = run("variants", *MODEL)
    assert code == 1
    assert f"pk={first.pk} {first.image.name}: no variants could be made (error: unpack requires" in err
    assert "Built 3 variants" in err and "1 failed." in err
    assert all(stored(second).values())


def test_storage_errors_stop_the_run_and_point_at_doctor(s3, Picture, env):
    store(Picture, 2)
    declare(Picture)
    env(BUCKET_NAME="no-such-bucket-here")
    _, err, code = run("variants", *MODEL, "--missing")
    assert code == 1
    assert "Stopped after 0 of 2 rows." in err
    assert summary(err).endswith("Run `manage.py keyed_storage doctor` to find out why.")
    assert "NoSuchBucket" in err


def test_variants_of_a_file_replaced_meanwhile_are_not_left_behind(local, Picture, monkeypatch):
    [row] = store(Picture, 1)
    declare(Picture)
    old = row.image.variants()
    render = ops.render

    def replaced_during(*args, **kwargs):
        output = render(*args, **kwargs)
        # The row gets another file while the old one's variants are being made.
        Picture.objects.filter(pk=row.pk).update(image="pictures/1/image/other/new.png")
        return output

    monkeypatch.setattr(ops, "render", replaced_during)
    out, err, code = run("variants", *MODEL)
    assert code == 0
    assert f"replaced meanwhile, left alone: events.Picture.image pk={row.pk}" in err
    assert "Built 0 variants" in out and "1 replaced meanwhile" in out
    assert not any(KeyedStorage().exists(variant.name) for variant in old.values())


# Dry run, progress, arguments -------------------------------------------------------------


def test_dry_run_says_what_it_would_build_and_builds_nothing(mode, Picture):
    rows = store(Picture, 2)
    Picture.objects.filter(pk=rows[0].pk).update(width=None, height=None)
    declare(Picture)
    out, err, code = run("variants", *MODEL, "--missing", "--dry-run")
    assert code == 0
    assert out.startswith("Dry run: 2 rows with a file; the variants not stored yet are built:")
    assert summary(out) == (
        "Would build 6 variants for 2 rows, skipped 0 already there, would set 1 sizes, 0 failed."
    )
    for row in rows:
        for variant in row.image.variants().values():
            assert f"would build: {variant.name}\n" in err
        assert not any(stored(row).values())
    # (values_list: loading the row as a model would read the size from the file, as ImageField does)
    assert Picture.objects.filter(pk=rows[0].pk).values_list("width", flat=True).get() is None


def test_progress_bar_and_the_list_of_what_was_built(local, Picture):
    [row] = store(Picture, 1)
    declare(Picture)
    _, err, code = run("variants", *MODEL, "--progress", "-v", "2")
    assert code == 0
    assert "rows: 100%" in err and "1/1" in err
    assert f"built: {row.image.variant('thumb').name}" in err


# Each message names what exists; the demo's own fields may be listed too.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "events.Nope"), "No model 'events.Nope': name it as app_label.ModelName. "),
        (("--model", "Picture"), "No model 'Picture'"),
        (("--model", "events.Session"), "events.Session has no KeyedImageField. "),
        (
            ("--model", "events.Picture", "--field", "width"),
            "events.Picture has no KeyedImageField 'width'. KeyedImageFields: events.Picture.image.",
        ),
        (("--field", "nope"), "No model has a KeyedImageField 'nope'. KeyedImageFields: "),
    ],
)
def test_model_and_field_are_checked_naming_what_exists(Picture, args, message):
    declare(Picture)
    _, err, code = run("variants", *args)
    assert code == 1 and message in err
    assert "events.Picture.image" in err.partition(message)[2] or message.endswith("image.")


def test_a_field_without_variants_has_nothing_to_build(Picture):
    _, err, code = run("variants", *MODEL)
    assert code == 1 and "events.Picture.image declares no variants: there is nothing to build." in err


# Requests and memory ------------------------------------------------------------------------


@pytest.fixture
def requests_made(s3):
    """Every request keyed_storage sends to S3, by operation name: its shared client's, and
    those of the django-storages resource that opens files for reading."""
    seen = Counter()

    def count(request, **kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1

    backend = backends.for_config(config.current())
    for client in (backend.client, backend.connection.meta.client):
        client.meta.events.register("before-send.s3", count)
    return seen


def test_missing_lists_each_file_once_and_never_asks_per_variant(requests_made, Picture):
    rows = store(Picture, 3)
    declare(Picture)
    requests_made.clear()
    _, err, code = run("variants", *MODEL, "--missing")
    assert code == 0, err
    built = dict(requests_made)
    # One listing per file, one PUT per variant built, no request asking whether a variant
    # exists; each original is read once (django-storages' S3File: a HEAD when opened, and
    # s3transfer's own HEAD before its GET).
    assert built.pop("ListObjectsV2") == len(rows)
    assert built.pop("PutObject") == 3 * len(rows)
    assert built.pop("GetObject") == len(rows)
    assert built.pop("HeadObject") == 2 * len(rows)
    assert built == {}

    requests_made.clear()
    run("variants", *MODEL, "--missing")
    assert dict(requests_made) == {"ListObjectsV2": len(rows)}


def test_memory_stays_flat_over_many_rows(local, Picture):
    [row] = store(Picture, 1)
    declare(Picture)
    run("variants", *MODEL)

    def peak(rows: int) -> int:
        Picture.objects.exclude(pk=row.pk).delete()
        # Rows sharing the one stored file: each still gets its listing and its check.
        Picture.objects.bulk_create(
            [Picture(image=row.image.name, width=row.width, height=row.height) for _ in range(rows - 1)]
        )
        tracemalloc.start()
        try:
            out, _, code = run("variants", *MODEL, "--missing")
            assert code == 0 and f"for {rows} rows, skipped {3 * rows} already there" in out
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # Holding every row would cost a few hundred bytes each; chunks of CHUNK_SIZE rows cost
    # the same whatever the table's size.
    small, large = peak(ops.CHUNK_SIZE), peak(10 * ops.CHUNK_SIZE)
    assert large - small < 9 * ops.CHUNK_SIZE * 64, (small, large)
