"""keyed_storage.admin: thumbnails and players in the admin's forms and lists, links that load."""

from __future__ import annotations

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.test import RequestFactory

from events.models import Event, Profile, Session, Speaker, Sponsor
from keyed_storage import KeyedStorage
from keyed_storage.admin import FilePreviewMixin, preview
from keyed_storage.images.markup import Picture, choose, fit
from keyed_storage.images.variants import Variant
from keyed_storage.widgets import FilePreviewWidget, preview_kind, render_preview

from ..helpers import fetch, png_bytes
from ..image_helpers import encode, halves
from ..images.test_tags import plain_image_model
from ..site_helpers import (
    attribute_values,
    file_links,
    img_tags,
    pixel_size,
    srcset_entries,
    storage_untouched,
)

pytestmark = pytest.mark.django_db(transaction=True)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt not really audio"
LOGO = png_bytes(1200, 600)  # the demo's Event.logo: thumb 160 x 160, card 320 x 320, card_2x 640 x 640


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.org", "pw"))
    return client


@pytest.fixture
def event(mode):
    event = Event.objects.create(name="Preview Con", logo=SimpleUploadedFile("logo.png", LOGO))
    Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("talk.wav", WAV))
    return event


def stored(name: str) -> bytes:
    with KeyedStorage().open(name) as file:
        return file.read()


def assert_shows(tag, field_file, variant: str, box: tuple[int, int]) -> None:
    """The <img> shows `variant` of `field_file`: its link loads the stored variant, its width and
    height are the variant's size fitted in the box, and its srcset says the variant's real width."""
    chosen = field_file.variant(variant)
    assert tag["src"] == chosen.url
    data = fetch(tag["src"])
    assert data == stored(chosen.name)
    size = pixel_size(data)
    assert (int(tag["width"]), int(tag["height"])) == fit(size, box)
    assert (chosen.url, size[0]) in srcset_entries(tag["srcset"])
    assert tag["sizes"] == f"{tag['width']}px"


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
    # The 1200 x 600 logo shows in the 320 x 200 box at 320 x 160: the card variant exactly.
    [thumbnail] = img_tags(page)
    assert_shows(thumbnail, event.logo, "card", FilePreviewWidget.preview_size)
    assert thumbnail["width"] == "320"
    # The thumbnail links to the original, and every variant is listed with its size and link.
    assert event.logo.url in attribute_values(page, "a", "href")
    for name, variant in event.logo.variants().items():
        assert f'<a href="{variant.url}">{name}</a> {variant.width} \u00d7 {variant.height}' in page
        assert fetch(variant.url) == stored(variant.name)
    # The session inline previews its audio with a player that reads only metadata up front.
    session = event.sessions.get()
    players = file_links(page, "audio")
    assert players == [session.audio.url]
    assert fetch(players[0]) == WAV
    assert 'preload="metadata"' in page
    # The admin's own input is still there, to replace or clear the file.
    assert 'type="file" name="logo"' in page
    assert 'name="logo-clear"' in page


def test_the_lists_show_the_smallest_variant_that_fits_and_players(admin_client, event):
    events = admin_client.get("/admin/events/event/").content.decode()
    [thumbnail] = img_tags(events)
    assert_shows(thumbnail, event.logo, "thumb", (96, 64))
    assert (thumbnail["width"], thumbnail["height"]) == ("96", "48")
    sessions = admin_client.get("/admin/events/session/").content.decode()
    assert file_links(sessions, "audio") == [event.sessions.get().audio.url]
    assert 'preload="none"' in sessions  # a long list downloads nothing until played


def test_every_image_list_of_the_demo_shows_variants(admin_client, event):
    speaker = Speaker.objects.create(
        event=event, name="Ada", photo=SimpleUploadedFile("ada.jpg", encode(halves(1200, 1500), "JPEG"))
    )
    sponsor = Sponsor.objects.create(
        event=event, name="Acme", logo=SimpleUploadedFile("acme.png", png_bytes(900, 300))
    )
    event.background = SimpleUploadedFile("bg.jpg", encode(halves(2400, 1600), "JPEG"))
    event.save()
    profile = Profile.objects.create(
        user=User.objects.get(username="admin"),
        avatar=SimpleUploadedFile("me.png", png_bytes(600, 400)),
    )
    lists = {
        "event": [(event.logo, "thumb", (96, 64)), (event.background, "thumb", (96, 64))],
        "speaker": [(speaker.photo, "thumb", (64, 64))],
        "sponsor": [(sponsor.logo, "thumb", (96, 64))],
        # Avatars have square crops only: the list shows the crop rather than the original.
        "profile": [(profile.avatar, "thumb", (48, 48))],
    }
    for model, expected in lists.items():
        with storage_untouched():
            page = admin_client.get(f"/admin/events/{model}/").content.decode()
        tags = img_tags(page)
        assert len(tags) == len(expected), model
        for tag, (field_file, variant, box) in zip(tags, expected, strict=True):
            assert_shows(tag, field_file, variant, box)


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
    speaker = Speaker.objects.create(
        event=event, name="Ada", photo=SimpleUploadedFile("ada.png", png_bytes(90, 120))
    )
    with storage_untouched():
        assert admin_client.get("/admin/events/event/").status_code == 200
        assert admin_client.get(f"/admin/events/event/{event.pk}/change/").status_code == 200
        assert admin_client.get("/admin/events/session/").status_code == 200
        assert admin_client.get("/admin/events/speaker/").status_code == 200
        assert admin_client.get(f"/admin/events/speaker/{speaker.pk}/change/").status_code == 200


# Which picture a preview shows ----------------------------------------------------------------


def fitted(width: int, height: int, name: str = "") -> Picture:
    return Picture(f"https://cdn.example/{name or f'{width}x{height}'}", (width, height), name or "v")


def cropped(width: int, height: int, *, whole: bool = False) -> Picture:
    spec = Variant(width, height, crop=True)
    return Picture(f"https://cdn.example/crop-{width}x{height}", (width, height), "c", spec, whole)


def test_the_smallest_whole_variant_that_covers_the_box_is_chosen():
    small, medium, large = fitted(80, 40), fitted(160, 80), fitted(640, 320)
    assert choose([large, small, medium], (96, 64)) is medium  # 160 >= 96: shown scaled down
    assert choose([large, small, medium], (160, 200)) is medium  # as large as the box, exactly
    assert choose([large, small, medium], (1000, 1000)) is large  # nothing covers: the largest
    assert choose([], (96, 64)) is None  # no variants: the original


def test_crops_count_only_when_they_show_the_whole_picture_or_are_all_there_is():
    whole_small, square = fitted(160, 80), cropped(128, 128)
    assert choose([square, whole_small], (96, 64)) is whole_small
    # A crop of the original's shape shows the whole picture: it counts like a fitted one.
    same_shape = cropped(100, 50, whole=True)
    assert choose([whole_small, same_shape, square], (96, 64)) is same_shape
    # A field of square avatars previews its squares rather than fetch the originals.
    big_square = cropped(256, 256)
    assert choose([big_square, square], (48, 48)) is square


def test_with_the_originals_size_unknown_fitted_variants_go_by_their_bounds():
    def bounded(width, height):
        return Picture(f"https://cdn.example/{width}x{height}", None, "v", Variant(width, height))

    thumb, tall, card = bounded(160, 160), bounded(None, 48), bounded(640, 640)
    assert choose([card, thumb, tall], (96, 64)) is thumb  # 48 high may not cover 64
    assert choose([card, thumb], (320, 200)) is card
    assert choose([thumb, tall], (2000, 2000)) is thumb  # the largest by its bounds


def test_a_field_without_variants_previews_its_original_sized_from_the_row(mode):
    with plain_image_model() as Plain:
        Plain.objects.create(image=SimpleUploadedFile("p.png", png_bytes(300, 100)))
        row = Plain.objects.get()
        with storage_untouched():
            [tag] = img_tags(render_preview(row.image, size=(96, 64)))
        assert tag["src"] == row.image.url
        assert (tag["width"], tag["height"]) == ("96", "32")
        assert "srcset" not in tag
        assert fetch(tag["src"]) == png_bytes(300, 100)


def test_an_image_of_unknown_size_is_kept_within_the_box_by_css(mode):
    session = Session.objects.create(
        event=Event.objects.create(name="E"),
        title="Pictured",
        slides=SimpleUploadedFile("cover.png", png_bytes(300, 100)),
    )
    [tag] = img_tags(render_preview(session.slides, size=(96, 64)))
    assert tag["src"] == session.slides.url
    assert "width" not in tag and "srcset" not in tag
    assert "max-width:96px;max-height:64px;width:auto;height:auto" in tag["style"]


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
