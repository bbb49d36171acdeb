"""keyed_storage.admin: thumbnails and players in the admin's forms and lists, links that load."""

from __future__ import annotations

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.test import RequestFactory

from events.models import Event, Session
from keyed_storage.admin import FilePreviewMixin, preview
from keyed_storage.widgets import FilePreviewWidget, preview_kind, render_preview

from .helpers import fetch, png_bytes
from .site_helpers import attribute_values, file_links, storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt not really audio"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    return client


@pytest.fixture
def event(mode):
    event = Event.objects.create(name="Preview Con", logo=SimpleUploadedFile("logo.png", png_bytes(40, 30)))
    Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("talk.wav", WAV))
    return event


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("events/1/logo/t/logo.PNG", "image"),
        ("a/b.jpeg", "image"),
        ("a/b.svg", "image"),
        ("a/talk.mp3", "audio"),
        ("a/talk.wav", "audio"),
        ("a/talk.m4a", "audio"),
        ("a/talk.webm", "video"),
        ("a/slides.pdf", "file"),
        ("a/no-extension", "file"),
    ],
)
def test_the_kind_of_preview_comes_from_the_name(name, kind):
    assert preview_kind(name) == kind


def test_the_change_form_shows_a_thumbnail_and_a_player_that_load(admin_client, event):
    page = admin_client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    thumbnails = file_links(page, "img")
    assert thumbnails == [event.logo.url]
    assert fetch(thumbnails[0]) == png_bytes(40, 30)
    # The session inline previews its audio with a player that reads only metadata up front.
    session = event.sessions.get()
    players = file_links(page, "audio")
    assert players == [session.audio.url]
    assert fetch(players[0]) == WAV
    assert 'preload="metadata"' in page
    # The admin's own input is still there, to replace or clear the file.
    assert 'type="file" name="logo"' in page
    assert 'name="logo-clear"' in page


def test_the_lists_show_thumbnails_and_players(admin_client, event):
    events = admin_client.get("/admin/events/event/").content.decode()
    assert file_links(events, "img") == [event.logo.url]
    sessions = admin_client.get("/admin/events/session/").content.decode()
    assert file_links(sessions, "audio") == [event.sessions.get().audio.url]
    assert 'preload="none"' in sessions  # a long list downloads nothing until played


def test_a_file_that_is_neither_image_nor_audio_is_a_link(admin_client, event):
    session = event.sessions.get()
    session.slides = SimpleUploadedFile("slides.pdf", b"%PDF-1.4 slides")
    session.save()
    page = admin_client.get("/admin/events/session/").content.decode()
    assert session.slides.url in attribute_values(page, "a", "href")
    assert fetch(session.slides.url) == b"%PDF-1.4 slides"


def test_an_empty_field_has_no_preview(admin_client, mode):
    Event.objects.create(name="No Logo Con")
    assert file_links(admin_client.get("/admin/events/event/").content.decode(), "img") == []
    page = admin_client.get("/admin/events/event/add/").content.decode()
    assert file_links(page, "img") == []
    assert 'type="file" name="logo"' in page


def test_previews_read_nothing_from_storage(admin_client, event):
    with storage_untouched():
        assert admin_client.get("/admin/events/event/").status_code == 200
        assert admin_client.get(f"/admin/events/event/{event.pk}/change/").status_code == 200
        assert admin_client.get("/admin/events/session/").status_code == 200


def test_the_mixin_works_on_any_model_admin(mode):
    class PlainEventAdmin(FilePreviewMixin, admin.ModelAdmin):
        fields = ["name", "logo", "background"]

    request = RequestFactory().get("/")
    request.user = User.objects.create_superuser("root", "root@example.org", "pw")
    form = PlainEventAdmin(Event, admin.site).get_form(request)()
    assert isinstance(form.fields["logo"].widget, FilePreviewWidget)
    assert isinstance(form.fields["background"].widget, FilePreviewWidget)
    assert not isinstance(form.fields["name"].widget, FilePreviewWidget)


def test_a_widget_of_your_own_is_kept(mode):
    class OwnWidgetAdmin(FilePreviewMixin, admin.ModelAdmin):
        fields = ["name", "logo"]
        formfield_overrides = {models.ImageField: {"widget": forms.FileInput}}

    request = RequestFactory().get("/")
    request.user = User.objects.create_superuser("root", "root@example.org", "pw")
    widget = OwnWidgetAdmin(Event, admin.site).get_form(request)().fields["logo"].widget
    assert type(widget) is forms.FileInput


def test_preview_columns_are_named_and_sortable():
    column = preview("logo")
    assert column.__name__ == "logo_preview"
    assert column.short_description == "logo"
    assert column.admin_order_field == "logo"
    assert preview("audio", description="Recording").short_description == "Recording"


def test_markup_is_escaped():
    class Hostile:
        name = 'a/"><script>x</script>.png'
        url = 'https://example.org/a/"><script>x</script>.png'

    html = render_preview(Hostile())
    assert "<script>" not in html
    assert "&quot;&gt;&lt;script&gt;" in html
    assert render_preview(None) == ""
