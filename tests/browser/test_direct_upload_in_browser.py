"""In Chromium: a recording picked in the admin goes straight to storage with a progress bar.

The demo's SessionAdmin uploads audio directly: to the S3 server (moto, whose bucket is given
the CORS rule a real bucket needs) and, locally, to keyed_storage's endpoint on the live
server. The stored bytes are compared with the file's by SHA-256 and, locally, the memory
of the process the endpoint runs in is watched while the file arrives.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import wave
from contextlib import contextmanager

import pytest

from events.models import Event, Session
from keyed_storage import KeyedStorage

from ..helpers import wav_bytes
from .steps import open_recording_editor, save_admin_form, sign_in, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# The issue asks for 200 MiB; KEYED_STORAGE_TEST_DIRECT_MIB sets the size for a run.
MIB = int(os.environ.get("KEYED_STORAGE_TEST_DIRECT_MIB", "200"))
CHUNK = 1024 * 1024

# Every value the <progress> takes, noted from the page (direct.js sets it on each event).
WATCH_PROGRESS = """box => {
    window.progressSeen = [];
    const bar = box.querySelector("progress");
    new MutationObserver(() => window.progressSeen.push([bar.value, bar.max]))
        .observe(bar, {attributes: true, attributeFilter: ["value", "max"]});
}"""


def recording(path, mib: int) -> str:
    """A WAV of `mib` MiB whose samples are random bytes, and its SHA-256: the field accepts
    audio only, told from the header, and random bytes defeat any compression on the way."""
    digest = hashlib.sha256()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48_000)
        for _ in range(mib):
            out.writeframes(os.urandom(CHUNK))
    with open(path, "rb") as written:
        while chunk := written.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def resident_memory():
    """Samples this process's resident memory (the live server, and so the local endpoint,
    runs in it) every 10 ms while the block runs; yields a dict that then holds the
    baseline and the peak, in bytes."""
    page_size = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page_size

    seen = {"baseline": rss(), "peak": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            seen["peak"] = max(seen["peak"], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


def stored_digest(name: str) -> str:
    digest = hashlib.sha256()
    with KeyedStorage().open(name) as stored:
        while chunk := stored.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(autouse=True)
def one_post(env):
    """These tests are about the single POST: files of any size here are sent whole (the
    parts of larger ones are test_resumable_upload_in_browser's)."""
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(5 * 1024 * 1024 * 1024))


@pytest.fixture
def allow_the_site(mode, live_server, request):
    """The CORS rule a bucket needs before browsers on the site's pages may POST to it (and
    PUT the parts of large files, see test_resumable_upload_in_browser)."""
    if mode == "s3":
        s3 = request.getfixturevalue("s3")
        allow_direct_uploads(s3, live_server.url)


def allow_direct_uploads(s3, origin: str) -> None:
    rule = {"AllowedOrigins": [origin], "AllowedMethods": ["POST", "PUT"], "AllowedHeaders": ["*"]}
    s3.client.put_bucket_cors(Bucket=s3.bucket, CORSConfiguration={"CORSRules": [rule]})


def test_a_recording_goes_straight_to_storage_with_progress(
    page, live_server, mode, allow_the_site, tmp_path
):
    base = live_server.url
    path = tmp_path / "keynote.wav"
    expected = recording(path, MIB)
    sign_in(page, base)
    session = Session.objects.create(event=Event.objects.create(name="Direct Con"), title="Keynote")
    ticket_target = base if mode == "local" else os.environ["AWS_ENDPOINT_URL_S3"]

    page.goto(f"{base}/admin/events/session/{session.pk}/change/")
    box = page.locator(".keyed-storage-direct").filter(has=page.locator("#id_audio"))
    box.evaluate(WATCH_PROGRESS)
    posted = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    with resident_memory() as memory:
        page.set_input_files("#id_audio", str(path))
        box.locator("progress:not([hidden])").wait_for()
        assert box.locator("button.keyed-storage-cancel").is_visible()
        page.wait_for_function(
            "box => box.dataset.state === 'done' || box.dataset.state === 'failed'",
            arg=box.element_handle(),
            timeout=120_000,
        )
    assert box.get_attribute("data-state") == "done", box.locator(".keyed-storage-status").inner_text()
    if mode == "local":
        # The endpoint streams the body to disk in 64 KiB chunks: the process that received
        # 200 MiB grew by a small fraction of that. (In S3 mode moto's server, which runs in
        # this process, holds the object: there is nothing of Django's to measure.)
        grown = memory["peak"] - memory["baseline"]
        assert grown < min(32, MIB // 4) * CHUNK, f"grew by {grown / CHUNK:.1f} MiB for {MIB} MiB"

    # The file went to the ticket's URL, not to Django, in progress steps up to its full size.
    assert any(url.startswith(ticket_target) and "/keyed-storage/ticket/" not in url for url in posted)
    seen = page.evaluate("window.progressSeen")
    loaded = [value for value, _ in seen]
    assert int(box.get_attribute("data-progress-events")) >= 2
    assert len(set(loaded)) >= 2 and loaded == sorted(loaded)
    assert seen[-1][0] == seen[-1][1] >= MIB * CHUNK
    assert page.input_value("#id_audio") == ""  # the form sends the reference alone
    assert box.locator("input[data-keyed-storage-reference]").input_value()

    save_admin_form(page)
    session.refresh_from_db()
    assert session.audio.name.startswith(f"events/{session.event_id}/sessions/{session.pk}/audio/")
    assert session.audio.name.endswith("/keynote.wav")
    assert session.audio.size == path.stat().st_size
    assert stored_digest(session.audio.name) == expected


def test_cancel_stops_the_upload_and_the_form_keeps_the_old_file(page, live_server, local, tmp_path):
    base = live_server.url
    path = tmp_path / "long.wav"
    recording(path, min(MIB, 64))
    sign_in(page, base)
    session = Session.objects.create(event=Event.objects.create(name="Direct Con"), title="Keynote")

    page.goto(f"{base}/admin/events/session/{session.pk}/change/")
    box = page.locator(".keyed-storage-direct").filter(has=page.locator("#id_audio"))
    # Held: the upload never ends, whether it goes in one POST or in parts.
    page.route("**/keyed-storage/direct/**", lambda route: None)
    page.route("**/keyed-storage/part/**", lambda route: None)
    page.set_input_files("#id_audio", str(path))
    box.locator("button.keyed-storage-cancel").click()
    assert box.get_attribute("data-state") == "failed"
    assert box.locator(".keyed-storage-status").inner_text() == "Upload cancelled."
    assert box.locator("progress").is_hidden()
    assert box.locator("input[data-keyed-storage-reference]").input_value() == ""

    save_admin_form(page)
    session.refresh_from_db()
    assert not session.audio


DROP = """([box, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const dropped = new DataTransfer();
    dropped.items.add(new File([bytes], "dropped.wav", {type: "audio/wav"}));
    box.dispatchEvent(new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
}"""


def test_a_dropped_file_uploads_and_a_refused_one_says_why(page, live_server, local):
    base = live_server.url
    session, box = open_recording_editor(page, base)
    status = box.locator(".keyed-storage-status")

    # A web page offered as audio: the ticket view refuses it by its claimed type, before
    # a byte is sent, and the widget says so.
    page.set_input_files("#id_audio", {"name": "talk.html", "mimeType": "text/html", "buffer": b"<html>"})
    page.wait_for_function("box => box.dataset.state === 'failed'", arg=box.element_handle())
    assert "text/html" in status.inner_text()
    assert box.locator("input[data-keyed-storage-reference]").input_value() == ""

    # Django's own 403 page, not JSON: a form whose CSRF token went wrong.
    csrf = page.locator("#session_form input[name=csrfmiddlewaretoken]")
    token = csrf.input_value()
    csrf.evaluate("input => { input.value = 'x'.repeat(64); }")
    page.set_input_files("#id_audio", {"name": "talk.wav", "mimeType": "audio/wav", "buffer": wav_bytes()})
    page.wait_for_function(
        "box => box.dataset.state === 'failed' && box.textContent.includes('403')", arg=box.element_handle()
    )
    assert status.inner_text() == "The upload was refused (403)."
    csrf.evaluate("(input, token) => { input.value = token; }", token)

    data = wav_bytes(20_000)
    page.evaluate(DROP, [box.element_handle(), base64.b64encode(data).decode()])
    page.wait_for_function("box => box.dataset.state === 'done'", arg=box.element_handle())
    assert status.inner_text() == "dropped.wav is uploaded: save to keep it."
    save_admin_form(page)
    session.refresh_from_db()
    assert session.audio.name.endswith("/dropped.wav")
    assert stored_digest(session.audio.name) == hashlib.sha256(data).hexdigest()


def pick_on_a_session_form(page, live_server, path):
    """Sign in, open a new session's change form, pick `path` for its recording and wait for
    the box to settle: (the session, the box)."""
    session, box = open_recording_editor(page, live_server.url)
    page.set_input_files("#id_audio", str(path))
    page.wait_for_function(
        "box => ['plain', 'done', 'failed'].includes(box.dataset.state)", arg=box.element_handle()
    )
    return session, box


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(
            False,
            id="one-post",
            marks=pytest.mark.moto_only(
                "SeaweedFS answers the preflight of a POST to the bucket's root for any origin (its "
                "CORS rules apply to object paths), so the body is sent; see the test after this one"
            ),
        ),
        pytest.param(True, id="in-parts"),
    ],
)
def test_a_bucket_that_refuses_the_page_falls_back_to_the_plain_upload(
    page, live_server, s3, env, tmp_path, parts
):
    """Direct uploads are on by default in the admin; a bucket whose CORS rule is for another
    site refuses the browser's preflight before a byte of the file is sent. The box then keeps
    the file in its input, and the form sends it through Django as it would without the script."""
    if parts:  # a file above the threshold: the refused PUT of its first part, then an abort
        env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(5 * CHUNK), KEYED_STORAGE_DIRECT_PART_SIZE=str(5 * CHUNK))
    allow_direct_uploads(s3, "https://another-site.example.org")
    path = tmp_path / "talk.wav"
    expected = recording(path, 6)
    aborted = []  # the abort is sent as the box falls back, not awaited by it
    page.on(
        "response", lambda r: aborted.append(r.status) if "/keyed-storage/parts/abort/" in r.url else None
    )
    session, box = pick_on_a_session_form(page, live_server, path)
    assert box.get_attribute("data-state") == "plain", box.locator(".keyed-storage-status").inner_text()
    assert box.locator(".keyed-storage-status").inner_text() == "talk.wav will be uploaded when you save."
    assert page.evaluate("() => document.querySelector('#id_audio').files[0].name") == "talk.wav"
    assert box.locator("input[data-keyed-storage-reference]").input_value() == ""
    assert s3.keys() == []  # nothing of it reached the bucket
    if parts:  # and the multipart upload begun for it was dropped
        wait_until(page, lambda: aborted == [200])
        assert s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", []) == []

    save_admin_form(page)
    session.refresh_from_db()
    assert session.audio.name.endswith("/talk.wav")
    assert stored_digest(session.audio.name) == expected


@pytest.mark.seaweedfs_only("SeaweedFS lets the preflight of a POST through and not its answer")
def test_a_post_whose_answer_the_page_may_not_read_is_checked_by_the_server(page, live_server, s3, tmp_path):
    """All of the file went, but the browser may not read the bucket's answer (SeaweedFS passes
    the preflight of any origin at the bucket's root, then sends no CORS header with its 204).
    The widget hands the reference over anyway: finish_upload() checks the object is there,
    whole, when the form is saved."""
    allow_direct_uploads(s3, "https://another-site.example.org")
    path = tmp_path / "talk.wav"
    expected = recording(path, 2)
    session, box = pick_on_a_session_form(page, live_server, path)
    assert box.get_attribute("data-state") == "done", box.locator(".keyed-storage-status").inner_text()
    save_admin_form(page)
    session.refresh_from_db()
    assert session.audio.name.endswith("/talk.wav")
    assert stored_digest(session.audio.name) == expected


def test_cancel_while_the_upload_is_prepared_sends_nothing(page, live_server, local, tmp_path):
    """The cancel button shows as soon as a file is picked, while the ticket is still being
    asked for: a click then stops it before a byte is sent (the ticket's answer is held here)."""
    path = tmp_path / "talk.wav"
    recording(path, 1)
    _, box = open_recording_editor(page, live_server.url)
    held = []
    page.route("**/keyed-storage/ticket/**", lambda route: held.append(route))
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/keyed-storage/direct/" in r.url else None)
    page.set_input_files("#id_audio", str(path))
    page.wait_for_function("() => true")
    box.locator("button.keyed-storage-cancel").click()
    assert box.get_attribute("data-state") == "failed"
    assert box.locator(".keyed-storage-status").inner_text() == "Upload cancelled."
    for route in held:  # the ticket arrives after all: nothing is sent with it
        route.continue_()
    page.wait_for_timeout(500)
    assert box.get_attribute("data-state") == "failed"
    assert sent == []
    assert box.locator("input[data-keyed-storage-reference]").input_value() == ""


def test_a_form_shown_again_after_a_refused_upload_says_so_and_saves_with_a_new_file(
    page, live_server, local
):
    """A web page sent as a recording is refused when the form is saved (the bytes are checked
    then, not the claim): the form comes back without the refused reference and says the file
    was not kept, and a file picked then is saved with it."""
    base = live_server.url
    session, box = open_recording_editor(page, base)
    status = box.locator(".keyed-storage-status")
    page.set_input_files(
        "#id_audio", {"name": "talk.wav", "mimeType": "audio/wav", "buffer": b"<!DOCTYPE html>"}
    )
    page.wait_for_function("box => box.dataset.state === 'done'", arg=box.element_handle())

    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    box = page.locator(".keyed-storage-direct").filter(has=page.locator("#id_audio"))
    assert "text/html" in page.locator(".field-audio .errorlist").inner_text()
    assert box.locator("input[data-keyed-storage-reference]").input_value() == ""
    assert (
        box.locator(".keyed-storage-status").inner_text()
        == "The uploaded file was not kept: pick a file again."
    )

    data = wav_bytes(20_000)
    page.set_input_files("#id_audio", {"name": "good.wav", "mimeType": "audio/wav", "buffer": data})
    page.wait_for_function("box => box.dataset.state === 'done'", arg=box.element_handle())
    assert status.inner_text() == "good.wav is uploaded: save to keep it."
    save_admin_form(page)
    session.refresh_from_db()
    assert session.audio.name.endswith("/good.wav")
    assert stored_digest(session.audio.name) == hashlib.sha256(data).hexdigest()
