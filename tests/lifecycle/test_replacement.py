"""Replacing or deleting a model's file never loses the live one: old files go after commit."""

from __future__ import annotations

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from events.models import Event

from ..helpers import fetch, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def gone(url: str) -> bool:
    return requests.get(url, timeout=10).status_code in (403, 404)


def new_event(color="teal") -> Event:
    return Event.objects.create(name="Con", logo=SimpleUploadedFile("logo.png", png_bytes(color=color)))


def test_a_replaced_file_is_deleted_after_commit(mode):
    event = new_event("red")
    old_url = event.logo.url
    with transaction.atomic():
        event.logo = SimpleUploadedFile("new.png", png_bytes(color="blue"))
        event.save()
        assert fetch(old_url) == png_bytes(color="red"), "deleted before the commit"
    assert gone(old_url)
    assert fetch(Event.objects.get(pk=event.pk).logo.url) == png_bytes(color="blue")


def test_a_rolled_back_replacement_keeps_the_old_file_and_removes_the_new(mode):
    event = new_event("red")
    old_url = event.logo.url
    with pytest.raises(RuntimeError), transaction.atomic():
        event.logo = SimpleUploadedFile("new.png", png_bytes(color="blue"))
        event.save()
        new_url = event.logo.url
        assert fetch(new_url) == png_bytes(color="blue")
        raise RuntimeError("the request failed after the save")
    assert fetch(old_url) == png_bytes(color="red")
    assert gone(new_url), "the rolled-back save's file was left behind"
    assert Event.objects.get(pk=event.pk).logo.url == old_url


def test_a_rolled_back_savepoint_removes_only_its_own_file(mode):
    event = new_event("red")
    with transaction.atomic():
        try:
            with transaction.atomic():
                event.logo = SimpleUploadedFile("b.png", png_bytes(color="blue"))
                event.save()
                inner_url = event.logo.url
                raise RuntimeError
        except RuntimeError:
            pass
        event.refresh_from_db()
        event.logo = SimpleUploadedFile("g.png", png_bytes(color="green"))
        event.save()
        final_url = event.logo.url
    assert gone(inner_url)
    assert fetch(final_url) == png_bytes(color="green")


def test_deleting_an_instance_deletes_its_file_after_commit(mode):
    event = new_event()
    url = event.logo.url
    with transaction.atomic():
        event.delete()
        assert fetch(url) == png_bytes()
    assert gone(url)


def test_a_rolled_back_delete_keeps_the_file(mode):
    event = new_event()
    url = event.logo.url
    with pytest.raises(RuntimeError), transaction.atomic():
        event.delete()
        raise RuntimeError
    assert fetch(url) == png_bytes()


def test_outside_a_transaction_the_old_file_goes_at_once(mode):
    event = new_event("red")
    old_url = event.logo.url
    event.logo = SimpleUploadedFile("new.png", png_bytes(color="blue"))
    event.save()
    assert gone(old_url)


def test_saving_other_fields_leaves_the_file_alone(mode):
    event = new_event()
    url = event.logo.url
    event = Event.objects.get(pk=event.pk)
    event.name = "Renamed"
    event.save()
    event.save(update_fields=["name"])
    assert fetch(url) == png_bytes()
