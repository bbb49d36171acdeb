"""The demo site: public pages whose every link loads, avatars both ways, sample data that is real."""

from __future__ import annotations

import io
import re
import wave

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from events.models import Event, Profile, Session, Speaker, Sponsor
from keyed_storage.keys import TOKEN_HEX_CHARS

from .helpers import fetch, png_bytes
from .site_helpers import attribute_values, storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}"


def stored_bytes(field_file) -> bytes:
    with default_storage.open(field_file.name) as file:
        return file.read()


@pytest.fixture
def event(mode):
    event = Event.objects.create(
        name="Site Con",
        logo=SimpleUploadedFile("logo.png", png_bytes(60, 30, "navy")),
        background=SimpleUploadedFile("background.png", png_bytes(300, 60, "gold")),
    )
    Session.objects.create(
        event=event,
        title="Keynote",
        audio=SimpleUploadedFile("talk.wav", b"RIFF fake audio"),
        slides=SimpleUploadedFile("slides.pdf", b"%PDF-1.4 fake"),
    )
    Speaker.objects.create(event=event, name="Ada", photo=SimpleUploadedFile("ada.png", png_bytes(90, 120)))
    Sponsor.objects.create(event=event, name="Acme", logo=SimpleUploadedFile("acme.png", png_bytes(80, 20)))
    return event


def test_the_event_page_links_every_file_absolutely_and_each_loads(client, event):
    page = client.get(f"/events/{event.pk}/").content.decode()
    session, speaker, sponsor = event.sessions.get(), event.speakers.get(), event.sponsors.get()
    images = attribute_values(page, "img", "src")
    assert images == [event.background.url, event.logo.url, speaker.photo.url, sponsor.logo.url]
    assert attribute_values(page, "audio", "src") == [session.audio.url]
    assert session.slides.url in attribute_values(page, "a", "href")
    for field_file in (
        event.background,
        event.logo,
        speaker.photo,
        sponsor.logo,
        session.audio,
        session.slides,
    ):
        assert field_file.url.startswith(("http://", "https://"))
        assert fetch(field_file.url) == stored_bytes(field_file)


def test_speaker_photos_are_sized_from_the_row_without_reading_storage(client, event):
    speaker = event.speakers.get()
    assert (speaker.photo_width, speaker.photo_height) == (90, 120)
    with storage_untouched():
        page = client.get(f"/events/{event.pk}/").content.decode()
        client.get("/")
    assert re.search(rf'<img src="{re.escape(speaker.photo.url)}" width="90" height="120"', page)


def test_the_event_list_shows_each_logo(client, event):
    Event.objects.create(name="Logo-less Con")
    page = client.get("/").content.decode()
    assert attribute_values(page, "img", "src") == [event.logo.url]
    assert f'href="/events/{event.pk}/"' in page
    assert "Logo-less Con" in page


def test_a_missing_event_is_404(client, mode):
    assert client.get("/events/999/").status_code == 404


@pytest.fixture
def member(client, mode):
    user = User.objects.create_user("grace", password="pw")
    client.force_login(user)
    return user


def test_the_avatar_page_needs_a_signed_in_user(client, mode):
    response = client.get("/avatar/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.get("/accounts/login/").status_code == 200


def test_signing_in_on_the_site(client, mode):
    User.objects.create_user("grace", password="pw")
    response = client.post("/accounts/login/", {"username": "grace", "password": "pw", "next": "/avatar/"})
    assert response.status_code == 302
    assert response["Location"] == "/avatar/"
    assert client.get("/avatar/").status_code == 200


def test_avatar_through_the_model_field(client, member):
    picture = png_bytes(50, 50, "purple")
    response = client.post("/avatar/", {"avatar": SimpleUploadedFile("me.png", picture, "image/png")})
    assert response.status_code == 302
    profile = Profile.objects.get(user=member)
    assert re.fullmatch(rf"users/{member.pk}/avatar/{TOKEN}/me\.png", profile.avatar.name)
    assert fetch(profile.avatar.url) == picture
    page = client.get("/avatar/").content.decode()
    assert profile.avatar.url in attribute_values(page, "img", "src")


def test_avatar_through_the_model_field_refuses_a_non_image(client, member):
    response = client.post("/avatar/", {"avatar": SimpleUploadedFile("me.png", b"not an image")})
    assert response.status_code == 200
    assert "Upload a valid image" in response.content.decode()
    assert not Profile.objects.get(user=member).avatar


def test_avatar_through_upload_in_the_view(client, member):
    picture = png_bytes(20, 20, "orange")
    response = client.post(
        "/avatar/upload/",
        {"profile_pic": SimpleUploadedFile("pic.png", picture, "image/png")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    url = response.json()["url"]
    assert re.search(rf"/users/{member.pk}/profile_pic/{TOKEN}/pic\.png$", url)
    assert fetch(url) == picture
    page = client.post("/avatar/upload/", {"profile_pic": SimpleUploadedFile("pic2.png", picture)})
    shown = attribute_values(page.content.decode(), "img", "src")
    assert len(shown) == 1
    assert fetch(shown[0]) == picture
    assert client.post("/avatar/upload/", {}).status_code == 400


def test_demo_data_makes_real_images_and_audio(mode):
    call_command("demo_data", stdout=io.StringIO())
    call_command("demo_data", stdout=io.StringIO())  # a second run adds nothing
    assert User.objects.get(username="admin").check_password("admin")
    assert Event.objects.count() == 2
    images = [event.logo for event in Event.objects.all()] + [
        event.background for event in Event.objects.all()
    ]
    images += [speaker.photo for speaker in Speaker.objects.all()]
    images += [sponsor.logo for sponsor in Sponsor.objects.all()]
    assert len(images) == 2 + 2 + 3 + 3
    for image in images:
        Image.open(io.BytesIO(fetch(image.url))).verify()
    for speaker in Speaker.objects.all():
        assert (speaker.photo_width, speaker.photo_height) == (240, 300)
    for session in Session.objects.all():
        with wave.open(io.BytesIO(fetch(session.audio.url))) as recording:
            assert recording.getnframes() / recording.getframerate() == 6.0
        assert fetch(session.slides.url).startswith(b"%PDF-")
