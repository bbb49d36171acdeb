"""A file another row still names, or a field's default, is never deleted.

Rows share files when they are copied (pk = None; save(), the admin's "Save as new") and
when they hold a field's default. Deletions happen after real commits, so these tests run
in transactions that commit.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext, isolate_apps

from events.models import Event
from keyed_storage import KeyedStorage, key_template

from ..helpers import fetch, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULT = "defaults/person.png"


def served(url: str) -> bool:
    return requests.get(url, timeout=10).status_code == 200


def new_event(color: str = "teal") -> Event:
    return Event.objects.create(name="Con", logo=SimpleUploadedFile("logo.png", png_bytes(color=color)))


@pytest.fixture(params=["default", "db_default"])
def person_model(request):
    """A model whose photo has a default file (default= or db_default=), with its table."""
    with isolate_apps("events"):

        class Person(models.Model):
            photo = models.ImageField(
                storage=KeyedStorage(),
                upload_to=key_template("people/{id}/photo"),
                max_length=255,
                **{request.param: DEFAULT},
            )

            class Meta:
                app_label = "events"

        with connection.schema_editor() as editor:
            editor.create_model(Person)
        try:
            yield Person
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(Person)


@pytest.fixture
def default_file(mode):
    KeyedStorage().save(DEFAULT, ContentFile(png_bytes(color="gray")), overwrite=True)
    return KeyedStorage().url(DEFAULT)


def test_the_default_survives_rows_that_held_it_being_deleted(person_model, default_file):
    first, second = person_model.objects.create(), person_model.objects.create()
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.photo.name == second.photo.name == DEFAULT
    first.delete()
    second.delete()
    assert fetch(default_file) == png_bytes(color="gray")


def test_the_default_survives_a_row_getting_its_own_file(person_model, default_file):
    person = person_model.objects.create()
    person.refresh_from_db()
    person.photo = SimpleUploadedFile("me.png", png_bytes(color="red"))
    person.save()
    assert fetch(default_file) == png_bytes(color="gray")
    assert fetch(person.photo.url) == png_bytes(color="red")


def test_a_copy_getting_its_own_file_leaves_the_original_its_file(mode):
    original = new_event("red")
    copy = Event.objects.get(pk=original.pk)
    copy.pk = None
    copy.save()
    assert copy.logo.name == original.logo.name
    copy.logo = SimpleUploadedFile("new.png", png_bytes(color="blue"))
    copy.save()
    assert fetch(Event.objects.get(pk=original.pk).logo.url) == png_bytes(color="red")
    assert fetch(copy.logo.url) == png_bytes(color="blue")


def test_deleting_a_copy_keeps_the_file_until_the_last_row_goes(mode):
    original = new_event("red")
    url = original.logo.url
    copy = Event.objects.get(pk=original.pk)
    copy.pk = None
    copy.save()
    copy.delete()
    assert fetch(url) == png_bytes(color="red")
    Event.objects.get(pk=original.pk).delete()
    assert not served(url), "the last row's file was left behind"


def test_a_rolled_back_copy_does_not_take_the_shared_file_with_it(mode):
    original = new_event("red")
    with pytest.raises(RuntimeError), transaction.atomic():
        copy = Event.objects.get(pk=original.pk)
        copy.pk = None
        copy.save()
        raise RuntimeError("the request failed after the copy was saved")
    assert fetch(original.logo.url) == png_bytes(color="red")


def test_the_admins_save_as_new_never_touches_the_originals_files(client, mode):
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    original = new_event("red")
    change = f"/admin/events/event/{original.pk}/change/"
    form = {"name": "Con 2", "description": "", "_saveasnew": "Save as new"}
    inline = {
        "sessions-TOTAL_FORMS": "0",
        "sessions-INITIAL_FORMS": "0",
        "sessions-MIN_NUM_FORMS": "0",
        "sessions-MAX_NUM_FORMS": "1000",
    }
    response = client.post(change, form | inline)
    assert response.status_code == 302, response.content.decode()[:3000]
    copy = Event.objects.exclude(pk=original.pk).get()
    # Django's admin builds the copy from the POST alone: an unchanged file input sends no
    # file, so the copy starts without a logo (pk = None; save() is the path that shares).
    assert copy.logo.name == ""
    assert fetch(Event.objects.get(pk=original.pk).logo.url) == png_bytes(color="red")

    # The copy gets a logo of its own: the original keeps its own.
    new_logo = {"logo": SimpleUploadedFile("blue.png", png_bytes(color="blue")), "name": "Con 2"}
    response = client.post(f"/admin/events/event/{copy.pk}/change/", {"description": ""} | new_logo | inline)
    assert response.status_code == 302
    assert fetch(Event.objects.get(pk=original.pk).logo.url) == png_bytes(color="red")

    # Deleting the copy in the admin takes only its own file.
    copy_url = Event.objects.get(pk=copy.pk).logo.url
    response = client.post(f"/admin/events/event/{copy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not served(copy_url)
    assert fetch(Event.objects.get(pk=original.pk).logo.url) == png_bytes(color="red")


def test_a_deletion_costs_one_query_and_a_plain_save_none(mode):
    event = new_event("red")
    with CaptureQueriesContext(connection) as plain:
        event.name = "Renamed"
        event.save()
    assert len(plain) == 1  # the UPDATE; nothing is looked up when no file changes
    with CaptureQueriesContext(connection) as replacing:
        event.logo = SimpleUploadedFile("b.png", png_bytes(color="blue"))
        event.save()
    lookups = [q["sql"] for q in replacing if re.search(r"\bSELECT\b.*\blogo\b", q["sql"])]
    assert len(lookups) == 1, lookups
