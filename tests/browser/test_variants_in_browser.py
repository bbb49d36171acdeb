"""In a real browser: pictures uploaded at full size in the admin show on the public pages as their
variants, each decoded at the size its <img> declares, a dense screen takes the larger variants,
and no original is ever downloaded.

Runs once with files on the local disk and once in S3 (a moto server), like the other browser tests.
"""

from __future__ import annotations

import pytest

from events.management.commands.demo_data import background_jpeg, logo_png, portrait_jpeg, sponsor_png
from events.models import Event

from ..helpers import fetch
from ..site_helpers import pixel_size, srcset_entries
from .steps import save_admin_form, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

# What people upload: a 2400 x 1600 photo, a 1200 x 1500 portrait, logos exported large.
LOGO = logo_png("Variant Con", "#0c4b33")
BACKGROUND = background_jpeg("#0c4b33")
PHOTO = portrait_jpeg("Ada Lovelace", "#0c4b33")
SPONSOR = sponsor_png("Acme Cloud")

# Every <img> of the page once loaded (the page is scrolled through first, as the pictures are
# lazy), with what the page declared and what the browser made of it.
PICTURES = """async () => {
    window.scrollTo(0, document.body.scrollHeight);
    return Promise.all([...document.images].map(async img => {
        await img.decode();
        return {
            src: img.getAttribute("src"), srcset: img.getAttribute("srcset"),
            sizes: img.getAttribute("sizes"), className: img.className,
            width: Number(img.getAttribute("width")), height: Number(img.getAttribute("height")),
            complete: img.complete, currentSrc: img.currentSrc,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
        };
    }));
}"""


def upload(page, selector: str, name: str, mime: str, data: bytes) -> None:
    page.set_input_files(selector, {"name": name, "mimeType": mime, "buffer": data})


def add_event_in_the_admin(page, base: str) -> Event:
    page.goto(f"{base}/admin/events/event/add/")
    page.fill("#id_name", "Variant Con")
    upload(page, "#id_logo", "logo.png", "image/png", LOGO)
    upload(page, "#id_background", "background.jpg", "image/jpeg", BACKGROUND)
    save_admin_form(page)
    event = Event.objects.get(name="Variant Con")
    page.goto(f"{base}/admin/events/speaker/add/")
    page.select_option("#id_event", str(event.pk))
    page.fill("#id_name", "Ada Lovelace")
    upload(page, "#id_photo", "ada.jpg", "image/jpeg", PHOTO)
    save_admin_form(page)
    page.goto(f"{base}/admin/events/sponsor/add/")
    page.select_option("#id_event", str(event.pk))
    page.fill("#id_name", "Acme Cloud")
    upload(page, "#id_logo", "acme.png", "image/png", SPONSOR)
    save_admin_form(page)
    return event


def open_and_load(page, url: str) -> tuple[list[dict], list[str]]:
    """The page's pictures once loaded, and every URL the browser requested for it."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    return page.evaluate(PICTURES), requested


def shown_at_declared_size(picture: dict) -> None:
    """The browser took a variant from srcset, and it is exactly as large as the <img> says."""
    assert picture["complete"], picture
    offered = dict(srcset_entries(picture["srcset"]))
    assert picture["currentSrc"] in offered, picture
    # The file taken has the pixels its srcset entry claims...
    assert pixel_size(fetch(picture["currentSrc"]))[0] == offered[picture["currentSrc"]]
    # ...and, sizes being its width, the browser takes it as exactly that wide (naturalWidth is
    # corrected by the density that srcset and sizes give) and as high as declared, give or
    # take the pixel the browser truncates where the declared height was rounded.
    if picture["sizes"] == f"{picture['width']}px":
        assert picture["naturalWidth"] == picture["width"], picture
        assert abs(picture["naturalHeight"] - picture["height"]) <= 1, picture


def test_big_uploads_show_as_variants_at_their_declared_size(browser, page, live_server, mode):
    base = live_server.url
    sign_in(page, base)
    event = add_event_in_the_admin(page, base)
    speaker, sponsor = event.speakers.get(), event.sponsors.get()
    originals = {event.logo.url, event.background.url, speaker.photo.url, sponsor.logo.url}
    assert (event.background_width, event.background_height) == (2400, 1600)

    pictures, requested = open_and_load(page, f"{base}/events/{event.pk}/")
    by_class = {picture["className"]: picture for picture in pictures}
    banner, logo = by_class["background"], by_class["logo"]
    thumbnails = [picture for picture in pictures if not picture["className"]]
    assert len(thumbnails) == 2  # the speaker's photo and the sponsor's logo
    for picture in pictures:
        shown_at_declared_size(picture)
        # On this screen (one device pixel per CSS pixel) the browser takes the variant named.
        assert picture["currentSrc"] == picture["src"]
        assert picture["currentSrc"] in requested
    assert banner["src"] == event.background.variant("banner").url
    assert [logo["naturalWidth"], logo["naturalHeight"]] == [320, 160]
    assert [[p["naturalWidth"], p["naturalHeight"]] for p in thumbnails] == [[96, 120], [144, 48]]
    assert not originals & set(requested), "an original was downloaded"
    # A fraction of the bytes: the originals weigh more than ten times what the page loaded.
    loaded = sum(len(fetch(picture["currentSrc"])) for picture in pictures)
    assert loaded * 10 < len(LOGO) + len(BACKGROUND) + len(PHOTO) + len(SPONSOR)

    # The event list's card.
    [card], requested = open_and_load(page, f"{base}/")
    shown_at_declared_size(card)
    assert card["currentSrc"] == event.logo.variant("card").url
    assert not originals & set(requested)

    # A screen with two device pixels per CSS pixel takes the larger variants from srcset,
    # shown at the same CSS size; still no original.
    dense = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=2)
    try:
        pictures, requested = open_and_load(dense.new_page(), f"{base}/events/{event.pk}/")
    finally:
        dense.close()
    taken = {picture["className"] or picture["src"]: picture["currentSrc"] for picture in pictures}
    assert taken == {
        "background": event.background.variant("banner_2x").url,
        "logo": event.logo.variant("card_2x").url,
        speaker.photo.variant("thumb").url: speaker.photo.variant("thumb_2x").url,
        sponsor.logo.variant("thumb").url: sponsor.logo.variant("thumb_2x").url,
    }
    for picture in pictures:
        shown_at_declared_size(picture)
    assert not originals & set(requested)


def test_admin_lists_load_thumbnails_at_their_declared_size(page, live_server, mode):
    base = live_server.url
    sign_in(page, base)
    event = add_event_in_the_admin(page, base)
    originals = {event.logo.url, event.background.url}
    pictures, requested = open_and_load(page, f"{base}/admin/events/event/")
    pictures = [picture for picture in pictures if not picture["src"].startswith("/static/")]
    assert [picture["currentSrc"] for picture in pictures] == [
        event.logo.variant("thumb").url,
        event.background.variant("thumb").url,
    ]
    for picture in pictures:
        shown_at_declared_size(picture)
    assert [[p["width"], p["height"]] for p in pictures] == [[96, 48], [96, 64]]
    assert not originals & set(requested)
