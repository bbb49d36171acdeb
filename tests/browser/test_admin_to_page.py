"""In a real browser: upload in the admin, see the picture and play the recording on the public page.

Runs once with files on the local disk (served by keyed_storage's view) and once in S3 (a moto
server), the switch made by the environment alone.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from events.management.commands.demo_data import tone_wav
from events.models import Event, Session

from ..helpers import png_bytes
from .steps import save_admin_form, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

LOGO = png_bytes(120, 60, "crimson")
RECORDING = tone_wav(seconds=6.0)


def test_admin_upload_to_public_page(page, live_server, mode, s3_endpoint):
    base = live_server.url
    origin = base if mode == "local" else s3_endpoint
    sign_in(page, base)

    # Create an Event with a logo in the admin's add form.
    page.goto(f"{base}/admin/events/event/add/")
    page.fill("#id_name", "Browser Con")
    page.set_input_files("#id_logo", {"name": "logo.png", "mimeType": "image/png", "buffer": LOGO})
    save_admin_form(page)
    event = Event.objects.get(name="Browser Con")
    assert event.logo.name.startswith(f"events/{event.pk}/logo/")

    # The public page shows its card variant (a small logo is never enlarged: 120 x 60), from
    # an absolute link, and the browser decoded the picture.
    page.goto(f"{base}/events/{event.pk}/")
    logo = page.locator("img.logo")
    src = logo.get_attribute("src")
    assert src == event.logo.variant("card").url
    assert src.startswith(f"{origin}/")
    logo.evaluate("img => img.decode()")
    assert logo.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]") == [True, 120, 60]
    assert logo.evaluate("img => img.currentSrc") == src

    # Upload a recording to a new Session of that event.
    page.goto(f"{base}/admin/events/session/add/")
    page.select_option("#id_event", str(event.pk))
    page.fill("#id_title", "Keynote")
    page.set_input_files("#id_audio", {"name": "talk.wav", "mimeType": "audio/wav", "buffer": RECORDING})
    save_admin_form(page)
    session = Session.objects.get(title="Keynote")
    assert session.audio.name.startswith(f"events/{event.pk}/sessions/{session.pk}/audio/")

    # Play it on the public page, then seek; the browser fetches it with Range requests.
    audio_url = session.audio.url
    assert audio_url.startswith(f"{origin}/")
    responses = []
    page.on("response", lambda response: responses.append(response) if response.url == audio_url else None)
    page.goto(f"{base}/events/{event.pk}/")
    audio = page.locator("audio")
    assert audio.get_attribute("src") == audio_url
    audio.evaluate("audio => audio.play()")
    page.wait_for_function("() => document.querySelector('audio').currentTime > 0")
    assert audio.evaluate("audio => audio.duration") == pytest.approx(6.0, abs=0.05)
    # A server without ranges leaves nothing seekable beyond what was downloaded.
    assert audio.evaluate("audio => audio.seekable.end(audio.seekable.length - 1)") == pytest.approx(
        6.0, abs=0.05
    )
    audio.evaluate(
        """audio => new Promise(resolve => {
            audio.addEventListener("seeked", resolve, {once: true});
            audio.currentTime = 4.5;
        })"""
    )
    page.wait_for_function("() => document.querySelector('audio').currentTime >= 4.5")
    assert audio.evaluate("audio => audio.error") is None
    audio.evaluate("audio => audio.pause()")

    answered = [
        (response.status, response.request.all_headers().get("range"), response.headers.get("content-range"))
        for response in responses
    ]
    ranged = [entry for entry in answered if entry[0] == 206]
    assert ranged, f"no 206 answer among {answered}"
    for _, range_header, content_range in ranged:
        assert range_header and range_header.startswith("bytes="), answered
        assert content_range and content_range.endswith(f"/{len(RECORDING)}"), answered


def test_admin_previews_load_in_the_browser(page, live_server, mode):
    event = Event.objects.create(name="Preview Con", logo=SimpleUploadedFile("logo.png", LOGO))
    Session.objects.create(event=event, title="Talk", audio=SimpleUploadedFile("talk.wav", RECORDING))
    sign_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/events/event/{event.pk}/change/")
    variants = {variant.url for variant in event.logo.variants().values()}
    thumbnail = page.locator(".keyed-storage-current img")
    assert thumbnail.get_attribute("src") in variants
    thumbnail.evaluate("img => img.decode()")
    assert thumbnail.evaluate("img => [img.currentSrc, img.naturalWidth]") == [
        thumbnail.get_attribute("src"),
        120,
    ]
    # The inline session's player reads the recording's metadata: its duration shows.
    page.wait_for_function("() => document.querySelector('.keyed-storage-current audio').readyState >= 1")
    duration = page.locator(".keyed-storage-current audio").evaluate("audio => audio.duration")
    assert duration == pytest.approx(6.0, abs=0.05)

    # In the list's 96 x 64 box the 120 x 60 variant shows at 96 x 48, its declared size.
    page.goto(f"{live_server.url}/admin/events/event/")
    listed = page.locator("#result_list img")
    listed.evaluate("img => img.decode()")
    assert listed.get_attribute("width") == "96"
    assert listed.evaluate("img => [img.naturalWidth, img.width, img.height]") == [96, 96, 48]
    assert listed.evaluate("img => img.currentSrc") in variants
