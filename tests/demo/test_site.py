"""The demo site: public pages whose every link loads, pictures as variants sized from the row, avatars
both ways, sample data that is real."""

from __future__ import annotations

import html
import io
import re
import wave
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image

from events.models import Event, Profile, Session, Speaker, Sponsor
from keyed_storage.keys import TOKEN_HEX_CHARS

from ..helpers import TEST_KEY, TEST_SECRET, fetch, png_bytes
from ..image_helpers import encode, halves
from ..site_helpers import attribute_values, img_tags, pixel_size, srcset_entries, storage_untouched

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}"


def stored_bytes(field_file) -> bytes:
    with default_storage.open(field_file.name) as file:
        return file.read()


@pytest.fixture
def event(mode):
    """An event with pictures of the sizes people upload, so the variants are real reductions."""
    event = Event.objects.create(
        name="Site Con",
        logo=SimpleUploadedFile("logo.png", png_bytes(1200, 600, "navy")),
        background=SimpleUploadedFile("background.jpg", encode(halves(2400, 1600), "JPEG")),
    )
    Session.objects.create(
        event=event,
        title="Keynote",
        audio=SimpleUploadedFile("talk.wav", b"RIFF fake audio"),
        slides=SimpleUploadedFile("slides.pdf", b"%PDF-1.4 fake"),
    )
    Speaker.objects.create(
        event=event, name="Ada", photo=SimpleUploadedFile("ada.jpg", encode(halves(1200, 1500), "JPEG"))
    )
    Sponsor.objects.create(event=event, name="Acme", logo=SimpleUploadedFile("acme.png", png_bytes(900, 300)))
    return event


def originals(*field_files) -> set[str]:
    return {field_file.url for field_file in field_files}


def assert_pictures_load_as_declared(html: str) -> list[dict]:
    """Every <img> in `html`: absolute links that answer 200 with the stored variant's bytes,
    srcset widths that are the real widths, and width and height that are the picture's own."""
    tags = img_tags(html)
    for tag in tags:
        src = tag["src"]
        assert src.startswith(("http://", "https://")), src
        data = fetch(src)
        assert data == stored(src)
        assert (int(tag["width"]), int(tag["height"])) == pixel_size(data)
        for url, width in srcset_entries(tag["srcset"]):
            assert url.startswith(("http://", "https://")), url
            assert pixel_size(fetch(url))[0] == width
    return tags


def stored(url: str) -> bytes:
    """The bytes stored under the name a link of ours points at."""
    name = unquote(url.split("/media/", 1)[1] if "/media/" in url else url.split("/", 4)[4])
    with default_storage.open(name) as file:
        return file.read()


def test_the_event_page_shows_variants_from_absolute_links_that_load(client, event):
    page = client.get(f"/events/{event.pk}/").content.decode()
    session, speaker, sponsor = event.sessions.get(), event.speakers.get(), event.sponsors.get()
    tags = assert_pictures_load_as_declared(page)
    assert [tag["src"] for tag in tags] == [
        event.background.variant("banner").url,
        event.logo.variant("card").url,
        speaker.photo.variant("thumb").url,
        sponsor.logo.variant("thumb").url,
    ]
    assert [(tag["width"], tag["height"]) for tag in tags] == [
        ("960", "240"),
        ("320", "160"),
        ("96", "120"),
        ("144", "48"),
    ]
    # The banner fills the column (sizes says how wide it is); a dense screen gets banner_2x.
    assert tags[0]["sizes"] == "(min-width: 60rem) 57rem, calc(100vw - 3rem)"
    assert [width for _, width in srcset_entries(tags[0]["srcset"])] == [960, 1920]
    # No picture on the page is an original.
    offered = {url for tag in tags for url, _ in srcset_entries(tag["srcset"])} | {t["src"] for t in tags}
    assert not offered & originals(event.background, event.logo, speaker.photo, sponsor.logo)
    assert attribute_values(page, "audio", "src") == [session.audio.url]
    assert session.slides.url in attribute_values(page, "a", "href")
    for field_file in (session.audio, session.slides):
        assert field_file.url.startswith(("http://", "https://"))
        assert fetch(field_file.url) == stored_bytes(field_file)


def test_pages_size_and_choose_pictures_without_reading_storage(client, event):
    speaker = event.speakers.get()
    assert (speaker.photo_width, speaker.photo_height) == (1200, 1500)
    with storage_untouched():
        page = client.get(f"/events/{event.pk}/").content.decode()
        listing = client.get("/").content.decode()
    assert all(tag["width"] and tag["height"] for tag in img_tags(page) + img_tags(listing))


def test_the_event_list_shows_each_logos_card(client, event):
    Event.objects.create(name="Logo-less Con")
    page = client.get("/").content.decode()
    [card] = assert_pictures_load_as_declared(page)
    assert card["src"] == event.logo.variant("card").url
    assert [width for _, width in srcset_entries(card["srcset"])] == [160, 320, 640]
    assert card["alt"] == "Logo of Site Con"
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
    picture = png_bytes(500, 400, "purple")
    response = client.post("/avatar/", {"avatar": SimpleUploadedFile("me.png", picture, "image/png")})
    assert response.status_code == 302
    profile = Profile.objects.get(user=member)
    assert re.fullmatch(rf"users/{member.pk}/avatar/{TOKEN}/me\.png", profile.avatar.name)
    assert fetch(profile.avatar.url) == picture
    page = client.get("/avatar/").content.decode()
    [shown] = assert_pictures_load_as_declared(page)
    assert shown["src"] == profile.avatar.variant("thumb").url  # a 128 x 128 square, not the original
    assert (shown["width"], shown["height"]) == ("128", "128")


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
        # Every variant is there, at the size the row says; big originals, small variants.
        for variant in image.variants().values():
            assert pixel_size(fetch(variant.url)) == (variant.width, variant.height)
    for event in Event.objects.all():
        assert (event.background_width, event.background_height) == (2400, 1600)
        assert (event.logo_width, event.logo_height) == (1200, 600)
    for speaker in Speaker.objects.all():
        assert (speaker.photo_width, speaker.photo_height) == (1200, 1500)
    for sponsor in Sponsor.objects.all():
        assert (sponsor.logo_width, sponsor.logo_height) == (900, 300)
    for session in Session.objects.all():
        with wave.open(io.BytesIO(fetch(session.audio.url))) as recording:
            assert recording.getnframes() / recording.getframerate() == 6.0
        assert fetch(session.slides.url).startswith(b"%PDF-")


def about_this_demo(client) -> tuple[str, str]:
    """The home page's "About this demo" section: its HTML, and its text as a reader sees it."""
    page = client.get("/").content.decode()
    start = page.index('<section class="about" id="about-this-demo">')
    section = page[start : page.index("</section>", start)]
    return section, " ".join(html.unescape(re.sub(r"<[^>]+>", "", section)).split())


def test_the_home_page_says_where_files_go_how_to_sign_in_and_what_to_try(client, mode, request, settings):
    section, text = about_this_demo(client)
    if mode == "s3":
        s3 = request.getfixturevalue("s3")
        assert f"Files are stored in S3: bucket {s3.bucket} at {s3.endpoint}." in text
        assert "local disk" not in text
        # The environment's key pair stays out of the page.
        assert TEST_KEY not in section and TEST_SECRET not in section
        assert "in a second shell with the environment that make demo-s3 printed:" in text
    else:
        assert f"Files are stored on the local disk, in {settings.MEDIA_ROOT}, and served at /media/" in text
        assert "bucket" not in text
    # The credentials are named once demo_data has made them, and then they work.
    assert "No admin user yet: python manage.py demo_data creates admin / admin" in text
    call_command("demo_data", stdout=io.StringIO())
    section, text = about_this_demo(client)
    assert "The admin: /admin/, user admin, password admin (made by manage.py demo_data" in text
    assert client.login(username="admin", password="admin")
    # What to try: the admin's upload pages, the avatar page and the operations commands.
    links = attribute_values(section, "a", "href")
    assert links == [
        "/admin/",
        "/admin/events/event/add/",
        "/admin/events/event/",
        "/admin/events/session/",
        "/avatar/",
    ]
    for link in links:
        assert client.get(link).status_code == 200, link
    assert "manage.py keyed_storage doctor" in text
    assert "manage.py keyed_storage orphans --older-than 0" in text
