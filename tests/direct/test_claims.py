"""A retried or double-sent form never deletes a live file; a storage failure is a form error.

A form sent twice (a double click, a browser's retry) finishes one reference twice: both
finishes return the same name, and only the first counts it as its own. A clean-up (a
rolled-back save, a failed variant write) removes only a file this request created and that
no committed row of the field names since; SystemExit (a worker's timeout) included.
"""

from __future__ import annotations

import threading

import pytest
import requests
from django.db import transaction

from events.models import Event, Session, Speaker
from keyed_storage import KeyedStorage, backends, config
from keyed_storage.direct.tickets import finish_upload, published_name, start_upload
from keyed_storage.exceptions import StorageError
from keyed_storage.keys import FinishedName

from ..helpers import fetch, wav_bytes
from ..image_helpers import encode, halves
from .test_forms import RECORDING, RecordingForm, save_form, upload_directly
from .test_images import PhotoForm, stored_names, upload_photo

PHOTO = encode(halves(300, 200), "JPEG")


@pytest.fixture
def session(mode):
    return Session.objects.create(event=Event.objects.create(name="Claims Con"), title="Keynote")


@pytest.fixture
def speaker(mode):
    return Speaker.objects.create(event=Event.objects.create(name="Claims Con"), name="Ada")


def backend_class():
    return type(backends.for_config(config.current()))


@pytest.mark.django_db(transaction=True)
def test_a_form_sent_twice_keeps_the_file_when_the_first_save_rolls_back_after_the_second_committed(
    editor_client, editor, session
):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    data = {"audio-reference": ticket["reference"]}
    first = RecordingForm(data, {}, instance=Session.objects.get(pk=session.pk))
    first.fields["audio"].bind(editor)
    assert first.is_valid(), first.errors  # finished first: this request's own upload
    second = RecordingForm(data, {}, instance=Session.objects.get(pk=session.pk))
    second.fields["audio"].bind(editor)
    assert second.is_valid(), second.errors  # the same name, finished before
    second.save()  # committed
    with pytest.raises(RuntimeError), transaction.atomic():
        first.save()
        raise RuntimeError("the first request failed after its save")
    session.refresh_from_db()
    assert session.audio.name == published_name(ticket["fields"]["key"])
    assert fetch(session.audio.url) == RECORDING, "the rollback removed the file a committed row names"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_save_still_removes_its_own_unclaimed_upload(editor_client, editor, session):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    form = RecordingForm({"audio-reference": ticket["reference"]}, {}, instance=session)
    form.fields["audio"].bind(editor)
    assert form.is_valid(), form.errors
    with pytest.raises(SystemExit), transaction.atomic():  # a worker's timeout, say
        form.save()
        raise SystemExit(1)
    assert not KeyedStorage().exists(published_name(ticket["fields"]["key"]))


@pytest.mark.django_db(transaction=True)
def test_a_photo_form_sent_again_whose_variant_write_fails_keeps_the_committed_original(
    editor_client, editor, speaker, monkeypatch
):
    ticket = upload_photo(editor_client, editor, speaker, PHOTO, "ada.jpg", "image/jpeg")
    data = {"photo-reference": ticket["reference"]}
    first = PhotoForm(data, {}, instance=Speaker.objects.get(pk=speaker.pk))
    first.fields["photo"].bind(editor)
    assert first.is_valid(), first.errors
    first.save()
    committed = stored_names()
    assert len(committed) == 3  # the original and its two variants

    storage_class = type(KeyedStorage())
    original_save = storage_class.save

    def failing(self, name, content, *args, **kwargs):
        raise StorageError(f"Could not store {name!r}: the disk is full")

    monkeypatch.setattr(storage_class, "save", failing)
    again = PhotoForm(data, {}, instance=Speaker.objects.get(pk=speaker.pk))
    again.fields["photo"].bind(editor)
    assert not again.is_valid()
    assert "could not be stored" in str(again.errors["photo"])
    monkeypatch.setattr(storage_class, "save", original_save)
    assert stored_names() == committed, "the second send's clean-up removed the committed files"
    speaker.refresh_from_db()
    assert speaker.photo.name in committed


def test_a_storage_failure_while_finishing_is_a_form_error_and_the_upload_is_removed(
    editor_client, session, monkeypatch
):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    upload = ticket["fields"]["key"]
    assert KeyedStorage().exists(upload)

    def unreachable(self, *args, **kwargs):
        raise StorageError("Could not publish: the storage did not answer")

    monkeypatch.setattr(backend_class(), "publish", unreachable)
    response = save_form(
        editor_client, session, title="Edited title", **{"audio-reference": ticket["reference"]}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "could not be stored" in page and "upload it again" in page
    assert 'value="Edited title"' in page  # the user's edits are shown again
    assert not KeyedStorage().exists(upload)
    assert not KeyedStorage().exists(published_name(upload))
    session.refresh_from_db()
    assert not session.audio and session.title == "Keynote"


@pytest.mark.parametrize(
    ("data", "filename", "claim"), [(PHOTO, "ada.jpg", "image/jpeg"), (wav_bytes(4000), "a.wav", "audio/wav")]
)
def test_four_finishes_at_once_each_return_the_published_name(mode, monkeypatch, data, filename, claim):
    ticket = start_upload("events/7/sessions/3/audio", filename=filename, size=len(data), content_type=claim)
    sent = requests.post(ticket.url, data=ticket.fields, files={"file": (filename, data)}, timeout=30)
    assert sent.status_code in (200, 201, 204)
    # All four have seen the name free and the upload there; then one publishes, and the
    # other three go on only once it has: their upload is gone under them.
    looked = threading.Barrier(4, timeout=30)
    one_finished = threading.Event()
    leader = threading.Lock()
    read_start = backend_class().read_start

    def after_all_looked(self, name, length, version):
        looked.wait()
        if not leader.acquire(blocking=False):
            one_finished.wait(timeout=30)
        return read_start(self, name, length, version)

    monkeypatch.setattr(backend_class(), "read_start", after_all_looked)
    results: list[object] = []

    def finish() -> None:
        try:
            results.append(finish_upload(ticket.reference))
        except BaseException as error:  # what each thread ends with is the point
            results.append(error)
        finally:
            one_finished.set()

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [ticket.name] * 4, results
    assert sum(isinstance(result, FinishedName) for result in results) == 1  # the first only
    if claim != "image/jpeg":  # a photo is published cleaned of its metadata: other bytes
        assert fetch(KeyedStorage().url(ticket.name)) == data
    assert not KeyedStorage().exists(ticket.fields["key"])
