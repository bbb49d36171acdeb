"""FileFields with key builders: new rows get their id in the key, the admin and templates just work."""

from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import modelform_factory

from events.models import Event, Profile, Session
from keyed_storage import KeyedStorage
from keyed_storage.keys import TOKEN_HEX_CHARS, KeyNeedsValue

from ..helpers import fetch, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}"


def test_a_new_instance_gets_its_id_into_the_key(mode):
    logo = png_bytes()
    event = Event(name="DjangoCon", logo=SimpleUploadedFile("logo.png", logo, "image/png"))
    assert event.pk is None
    event.save()
    assert re.fullmatch(rf"events/{event.pk}/logo/{TOKEN}/logo\.png", event.logo.name)
    assert "None" not in event.logo.name
    assert Event.objects.get(pk=event.pk).logo.name == event.logo.name
    assert fetch(event.logo.url) == logo


def test_default_storage_is_keyed_storage_through_storages_setting(mode):
    assert isinstance(default_storage, KeyedStorage)
    event = Event.objects.create(name="PyCon")
    audio = b"RIFF....WAVEfmt fake audio bytes"
    session = Session.objects.create(
        event=event, title="Keynote", audio=SimpleUploadedFile("talk.wav", audio)
    )
    assert re.fullmatch(
        rf"events/{event.pk}/sessions/{session.pk}/audio/{TOKEN}/talk\.wav", session.audio.name
    )
    assert fetch(session.audio.url) == audio


def test_a_field_other_than_the_primary_key_must_be_set_first(mode):
    session = Session(title="Orphan", audio=SimpleUploadedFile("talk.wav", b"x"))
    # The event is required anyway; the key error comes first and says what to do.
    with pytest.raises(KeyNeedsValue, match=r"Session\.event_id, which is None"):
        Session.audio.field.upload_to(session, "talk.wav")


def test_a_key_template_with_another_column_works_for_new_rows(mode):
    user = User.objects.create(username="ada")
    profile = Profile.objects.create(user=user, avatar=SimpleUploadedFile("me.png", png_bytes()))
    assert profile.avatar.name.startswith(f"users/{user.pk}/avatar/")


def test_a_model_form_creates_a_row_with_its_file(mode):
    form_class = modelform_factory(Event, fields=["name", "logo"])
    form = form_class(
        data={"name": "EuroPython"}, files={"logo": SimpleUploadedFile("logo.png", png_bytes(), "image/png")}
    )
    assert form.is_valid(), form.errors
    event = form.save()
    assert event.logo.name.startswith(f"events/{event.pk}/logo/")
    assert fetch(event.logo.url) == png_bytes()


def test_admin_add_form_upload(mode, client):
    admin = User.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(admin)
    response = client.post(
        "/admin/events/event/add/",
        {
            "name": "Admin Con",
            "logo": SimpleUploadedFile("admin-logo.png", png_bytes(32, 32, "red"), "image/png"),
            "sessions-TOTAL_FORMS": "0",
            "sessions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = Event.objects.get(name="Admin Con")
    assert event.logo.name.startswith(f"events/{event.pk}/logo/")
    assert fetch(event.logo.url) == png_bytes(32, 32, "red")


def test_templates_render_absolute_links_that_load(mode, live_server):
    event = Event.objects.create(name="Template Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = requests.get(f"{live_server.url}/events/{event.pk}/", timeout=10)
    assert page.status_code == 200
    # The page shows the logo's card variant (see tests/demo/test_site.py for every picture).
    src = re.search(r'<img src="([^"]+)"[^>]* class="logo"', page.text).group(1)
    card = event.logo.variant("card")
    assert src == card.url
    with default_storage.open(card.name) as stored:
        assert fetch(src) == stored.read()
