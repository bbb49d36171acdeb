"""Rows loaded from the database: a replaced or deleted picture goes with its variants, whatever
the field (dimension fields or not, deferred or not), saving fills the row's size, and loading
a row never touches the storage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from django import forms
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext, isolate_apps

from events.models import Event, Speaker
from keyed_storage import KeyedStorage, key_template
from keyed_storage.fields import KeyedImageField
from keyed_storage.images.variants import Variant
from keyed_storage.lifecycle import replacement

from ..helpers import fetch
from ..image_helpers import encode, halves
from ..site_helpers import storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)

VARIANTS = {"thumb": Variant(16, 16, crop=True), "card": Variant(32, None)}
LOADED = "keyed_storage.replacement.loaded"
DIMENSIONS = {"width_field": "width", "height_field": "height"}

# The picture fields a row can have, each on KeyedStorage.
FIELDS = {
    "file": lambda: models.FileField(upload_to=key_template("rows/{id}/file"), storage=KeyedStorage()),
    "django-image-with-size": lambda: models.ImageField(
        upload_to=key_template("rows/{id}/image"), storage=KeyedStorage(), **DIMENSIONS
    ),
    "variants-with-size": lambda: KeyedImageField(
        upload_to=key_template("rows/{id}/image"), variants=VARIANTS, **DIMENSIONS
    ),
    "variants-without-size": lambda: KeyedImageField(
        upload_to=key_template("rows/{id}/image"), variants=VARIANTS
    ),
    "size-without-variants": lambda: KeyedImageField(upload_to=key_template("rows/{id}/image"), **DIMENSIONS),
}


@contextmanager
def row_model(kind: str, django_first: bool = True) -> Iterator[type[models.Model]]:
    """A model whose `picture` is the field `kind`, its table created for the block.

    Django's own post_init for the dimension fields runs before keyed_storage's, as on an
    app's models (declared before keyed_storage connects its receivers), unless django_first
    is false.
    """
    with isolate_apps("events"):

        class Row(models.Model):
            title = models.CharField(max_length=20, default="")
            picture = FIELDS[kind]()
            width = models.PositiveIntegerField(null=True, editable=False)
            height = models.PositiveIntegerField(null=True, editable=False)

            class Meta:
                app_label = "events"

        if django_first:
            post_init.disconnect(dispatch_uid=LOADED)
            post_init.connect(replacement._loaded, dispatch_uid=LOADED)  # now last
        with connection.schema_editor() as editor:
            editor.create_model(Row)
        try:
            yield Row
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(Row)


def picture_bytes(color: str = "red", size: tuple[int, int] = (60, 40)) -> bytes:
    return encode(halves(*size, left=color), "PNG")


def gone(url: str) -> bool:
    return requests.get(url, timeout=10).status_code in (403, 404)


def links(file: models.fields.files.FieldFile) -> list[str]:
    """The original's link and its variants' (when the field declares any)."""
    variants = getattr(file.field, "variants", None)
    return [file.url, *(variant.url for variant in file.variants().values())] if variants else [file.url]


def replace_by_assignment(row: models.Model, data: bytes) -> None:
    row.picture = SimpleUploadedFile("new.png", data)
    row.save()


def replace_by_field_file(row: models.Model, data: bytes) -> None:
    row.picture.save("new.png", ContentFile(data))


def replace_by_model_form(row: models.Model, data: bytes) -> None:
    class Form(forms.ModelForm):
        class Meta:
            model = type(row)
            fields = ["picture"]

    form = Form(data={}, files={"picture": SimpleUploadedFile("new.png", data)}, instance=row)
    assert form.is_valid(), form.errors
    form.save()


REPLACEMENTS = {
    "assignment": replace_by_assignment,
    "field_file.save": replace_by_field_file,
    "model_form": replace_by_model_form,
}


@pytest.mark.parametrize("kind", FIELDS)
@pytest.mark.parametrize("how", REPLACEMENTS)
@pytest.mark.parametrize("django_first", [True, False], ids=["django-post-init-first", "ours-first"])
def test_replacing_the_picture_of_a_loaded_row_deletes_the_old_one_and_its_variants(
    mode, kind, how, django_first
):
    with row_model(kind, django_first) as Row:
        created = Row.objects.create(picture=SimpleUploadedFile("old.png", picture_bytes("red")))
        old = links(created.picture)
        row = Row.objects.get(pk=created.pk)
        REPLACEMENTS[how](row, picture_bytes("blue"))
        assert [url for url in old if not gone(url)] == [], "the old picture is still served"
        current = Row.objects.get(pk=created.pk).picture
        assert fetch(current.url) == current.storage.open(current.name).read()
        assert all(fetch(url) for url in links(current))


@pytest.mark.parametrize("how", REPLACEMENTS)
def test_on_the_demo_models_a_replaced_photo_is_not_served_any_more(mode, how):
    # Their fields were declared before keyed_storage connected its receivers: Django's own
    # post_init (the dimension fields) runs first there.
    event = Event.objects.create(name="Con")
    created = Speaker.objects.create(
        event=event, name="A", photo=SimpleUploadedFile("a.png", picture_bytes())
    )
    old = [created.photo.url, *(variant.url for variant in created.photo.variants().values())]
    speaker = Speaker.objects.get(pk=created.pk)
    if how == "model_form":

        class Form(forms.ModelForm):
            class Meta:
                model = Speaker
                fields = ["photo"]

        form = Form(
            data={}, files={"photo": SimpleUploadedFile("b.png", picture_bytes("blue"))}, instance=speaker
        )
        assert form.is_valid(), form.errors
        form.save()
    elif how == "assignment":
        speaker.photo = SimpleUploadedFile("b.png", picture_bytes("blue"))
        speaker.save()
    else:
        speaker.photo.save("b.png", ContentFile(picture_bytes("blue")))
    assert [url for url in old if not gone(url)] == []
    assert fetch(Speaker.objects.get(pk=created.pk).photo.url)


@pytest.mark.parametrize("kind", FIELDS)
def test_deleting_a_row_loaded_without_its_picture_deletes_the_picture(mode, kind):
    with row_model(kind) as Row:
        created = Row.objects.create(picture=SimpleUploadedFile("old.png", picture_bytes()))
        old = links(created.picture)
        row = Row.objects.defer("picture").get(pk=created.pk)
        with pytest.MonkeyPatch.context() as patch:
            # Deleting needs no stored file opened, sized or looked for.
            for method in ("_open", "exists", "size"):
                patch.setattr(KeyedStorage, method, lambda *args, **kwargs: pytest.fail("read storage"))
            with CaptureQueriesContext(connection) as queries:
                row.delete()
        # The picture's name is read once, before the row goes (after it, no row is left).
        reads = [
            query["sql"] for query in queries if query["sql"].startswith('SELECT "events_row"."picture"')
        ]
        assert len(reads) == 1, queries.captured_queries
        assert [url for url in old if not gone(url)] == []


def test_deleting_rows_of_a_queryset_without_their_pictures_deletes_the_pictures(mode):
    with row_model("variants-with-size") as Row:
        rows = [Row.objects.create(picture=SimpleUploadedFile("a.png", picture_bytes())) for _ in range(2)]
        old = [url for row in rows for url in links(row.picture)]
        Row.objects.defer("picture").delete()
        assert [url for url in old if not gone(url)] == []


@pytest.mark.parametrize("kind", FIELDS)
def test_a_deferred_picture_saved_or_replaced_is_handled_as_a_loaded_one(mode, kind):
    with row_model(kind) as Row:
        created = Row.objects.create(picture=SimpleUploadedFile("old.png", picture_bytes("red")))
        old = links(created.picture)
        # Saved without its picture loaded: the picture stays, and nothing is read for it.
        row = Row.objects.defer("picture").get(pk=created.pk)
        row.title = "renamed"
        row.save()
        assert all(fetch(url) for url in old)
        # Replaced on a row loaded with .only(): the old picture goes.
        row = Row.objects.only("id").get(pk=created.pk)
        row.picture = SimpleUploadedFile("new.png", picture_bytes("blue"))
        row.save()
        assert [url for url in old if not gone(url)] == []
        assert fetch(Row.objects.get(pk=created.pk).picture.url)


@pytest.mark.parametrize("kind", ["variants-with-size", "size-without-variants"])
def test_field_file_save_fills_the_size_of_a_loaded_row(mode, kind):
    with row_model(kind) as Row:
        created = Row.objects.create(picture=SimpleUploadedFile("old.png", picture_bytes(size=(60, 40))))
        row = Row.objects.get(pk=created.pk)
        row.picture.save("a.png", ContentFile(picture_bytes(size=(30, 50))))
        assert (row.width, row.height) == (30, 50)
        assert Row.objects.values_list("width", "height").get() == (30, 50)


def test_an_unnamed_content_file_saved_on_a_row_without_a_picture_gets_its_size(mode):
    with row_model("variants-with-size") as Row:
        row = Row.objects.create()
        row.picture.save("a.png", ContentFile(picture_bytes(size=(30, 50))))
        assert Row.objects.values_list("width", "height").get() == (30, 50)


@pytest.mark.parametrize("kind", ["variants-with-size", "size-without-variants"])
def test_loading_rows_whose_size_is_empty_touches_no_storage(local, kind):
    with row_model(kind) as Row:
        for _ in range(3):
            Row.objects.create(picture=SimpleUploadedFile("a.png", picture_bytes()))
        Row.objects.update(width=None, height=None)  # rows stored before the fields were filled
        with storage_untouched():
            rows = list(Row.objects.all())
            assert [row.picture.url for row in rows]


def test_loading_rows_in_s3_mode_needs_no_s3(s3, env):
    event = Event.objects.create(name="Con", logo=SimpleUploadedFile("a.png", picture_bytes()))
    Event.objects.update(logo_width=None, logo_height=None)
    # Nothing listens there: any request to S3 fails.
    env(AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")
    loaded = Event.objects.get(pk=event.pk)
    assert loaded.logo.name == event.logo.name
    assert loaded.logo.url.endswith(event.logo.name)


def test_the_admin_change_form_replaces_a_photo_and_the_old_one_goes(mode, client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    event = Event.objects.create(name="Con")
    created = Speaker.objects.create(
        event=event, name="A", photo=SimpleUploadedFile("a.png", picture_bytes())
    )
    old = [created.photo.url, *(variant.url for variant in created.photo.variants().values())]
    response = client.post(
        f"/admin/events/speaker/{created.pk}/change/",
        {
            "event": event.pk,
            "name": "A",
            "photo": SimpleUploadedFile("b.png", picture_bytes("blue", (30, 50)), "image/png"),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    speaker = Speaker.objects.get(pk=created.pk)
    assert speaker.photo.name != created.photo.name
    assert (speaker.photo_width, speaker.photo_height) == (30, 50)
    assert [url for url in old if not gone(url)] == []
