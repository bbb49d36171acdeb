"""In a real browser, with a task queue and no worker yet: pictures uploaded in the admin show on
the public page at once, through stored stand-ins laid out at their variant's size, never as a
broken image; once a worker (django-tasks-db's db_worker, a process of its own) has made the
variants, the page shows them.

Runs once with files on the local disk and once in S3 (a moto server), like the other browser tests.
"""

from __future__ import annotations

import time

import pytest

from events.management.commands.demo_data import background_jpeg, logo_png
from events.models import Event

from ..helpers import fetch
from ..site_helpers import pixel_size
from .steps import save_admin_form, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

LOGO = logo_png("Queue Con", "#0c4b33")
BACKGROUND = background_jpeg("#0c4b33")
WORKER_LIMIT = 120  # seconds; a hang detector for the polling worker, not a timing expectation

# Every <img> of the page once loaded or failed (the page is scrolled through first, as the
# pictures are lazy): what the page declared, what the browser decoded, and the box it drew.
PICTURES = """async () => {
    window.scrollTo(0, document.body.scrollHeight);
    return Promise.all([...document.images].map(async img => {
        let broken = "";
        try { await img.decode(); } catch (error) { broken = String(error); }
        const box = img.getBoundingClientRect();
        return {
            src: img.getAttribute("src"), className: img.className, broken,
            width: Number(img.getAttribute("width")), height: Number(img.getAttribute("height")),
            complete: img.complete, currentSrc: img.currentSrc,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            boxWidth: box.width, boxHeight: box.height,
        };
    }));
}"""


def upload(page, selector: str, name: str, mime: str, data: bytes) -> None:
    page.set_input_files(selector, {"name": name, "mimeType": mime, "buffer": data})


def pictures(page, url: str) -> dict[str, dict]:
    """The event page's pictures by class (background, logo), each loaded, none broken."""
    page.goto(url)
    found = {picture["className"]: picture for picture in page.evaluate(PICTURES)}
    assert set(found) == {"background", "logo"}, found
    for picture in found.values():
        assert picture["broken"] == "" and picture["complete"], picture
        assert picture["naturalWidth"] > 0 and picture["naturalHeight"] > 0, picture
    return found


def drawn_as_declared(picture: dict) -> bool:
    """Whether the box drawn has the shape the <img>'s width and height declare (the page's CSS
    scales it to its column), give or take a pixel of rounding."""
    drawn, declared = picture["boxWidth"] * picture["height"], picture["boxHeight"] * picture["width"]
    return abs(drawn - declared) <= picture["width"] + picture["height"]


def test_pictures_show_before_the_worker_runs_and_their_variants_after(page, live_server, mode, worker):
    base = live_server.url
    sign_in(page, base)
    page.goto(f"{base}/admin/events/event/add/")
    page.fill("#id_name", "Queue Con")
    upload(page, "#id_logo", "logo.png", "image/png", LOGO)
    upload(page, "#id_background", "background.jpg", "image/jpeg", BACKGROUND)
    save_admin_form(page)
    event = Event.objects.get(name="Queue Con")
    assert event.logo.unready_variants() == {"card", "card_2x"}
    assert event.background.unready_variants() == {"banner", "banner_2x"}
    card, banner = event.logo.variant("card"), event.background.variant("banner")

    before = pictures(page, f"{base}/events/{event.pk}/")
    for picture, variant in ((before["logo"], card), (before["background"], banner)):
        assert (picture["width"], picture["height"]) == (variant.width, variant.height)
        assert picture["currentSrc"] == variant.url  # the stand-in: stored, so it loaded
        assert "~card-" not in picture["currentSrc"] and "~banner-" not in picture["currentSrc"]
    assert drawn_as_declared(before["logo"]), before["logo"]  # a fitted variant: the original's shape

    worker.start()
    deadline = time.monotonic() + WORKER_LIMIT
    while (event.logo_pending or event.background_pending) and time.monotonic() < deadline:
        time.sleep(0.2)
        event.refresh_from_db()
    assert event.logo_pending is None and event.background_pending is None, worker.output()

    after = pictures(page, f"{base}/events/{event.pk}/")
    run = worker.stop()
    assert run.returncode == 0, run.output
    for picture, name, suffix in (
        (after["logo"], "card", "~card-320x320"),
        (after["background"], "banner", "~banner-960x240"),
    ):
        variant = getattr(event, picture["className"]).variant(name)
        assert variant.ready
        assert picture["src"] == variant.url and suffix in picture["src"], picture
        assert (picture["width"], picture["height"]) == (variant.width, variant.height)
        assert picture["currentSrc"] == variant.url, picture  # one device pixel per CSS pixel
        assert pixel_size(fetch(picture["currentSrc"])) == (variant.width, variant.height)
        assert drawn_as_declared(picture), picture
    # A cropped variant's stand-in (the 3:2 original of a 4:1 banner) is drawn in the banner's shape.
    assert drawn_as_declared(before["background"]), before["background"]
