"""Direct uploads in forms: the ticket view, the widget's token, and the form field that finishes.

Through the demo's admin (FilePreviewMixin: every field that can takes direct uploads), with
Django's test client for the site and plain HTTP for the upload itself, as a browser sends
it: to moto's server in S3 mode, to keyed_storage's endpoint on the live server locally.
"""

from __future__ import annotations

import hashlib
import html
import re
import time

import pytest
import requests
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse

from events.models import Event, Session, Speaker
from keyed_storage import KeyedStorage
from keyed_storage.admin import FilePreviewMixin
from keyed_storage.direct.forms import TOKEN_MAX_AGE, DirectFileField, field_token
from keyed_storage.direct.tickets import published_name

from ..helpers import fetch, wav_bytes

pytestmark = pytest.mark.django_db
TICKET_URL = "/keyed-storage/ticket/"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
RECORDING = wav_bytes(40_000)


@pytest.fixture
def session(mode):
    event = Event.objects.create(name="Direct Con")
    return Session.objects.create(event=event, title="Keynote")


def change_url(session: Session) -> str:
    return f"/admin/events/session/{session.pk}/change/"


def hidden_value(page: str, name: str) -> str | None:
    found = re.search(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def token_on_page(client: Client, url: str, field: str = "audio") -> str | None:
    response = client.get(url)
    assert response.status_code == 200
    return hidden_value(response.content.decode(), f"{field}-token")


def ask_ticket(client: Client, token: str, data: bytes, filename: str, content_type: str, **extra):
    fields = {"token": token, "filename": filename, "size": str(len(data)), "content_type": content_type}
    return client.post(TICKET_URL, {**fields, **extra})


def send(ticket: dict, data: bytes, filename: str) -> requests.Response:
    """What direct.js does with a ticket: its fields, then the file, in a field named "file"."""
    return requests.post(ticket["url"], data=ticket["fields"], files={"file": (filename, data)}, timeout=30)


def save_form(client: Client, session: Session, **data):
    return client.post(
        change_url(session), {"event": session.event_id, "title": session.title, "_save": "Save", **data}
    )


def upload_directly(client: Client, session: Session, data: bytes, filename: str, content_type: str) -> dict:
    token = token_on_page(client, change_url(session))
    assert token
    answer = ask_ticket(client, token, data, filename, content_type)
    assert answer.status_code == 200, answer.content
    ticket = answer.json()
    assert send(ticket, data, filename).status_code in (200, 201, 204)
    return ticket | {"token": token}


# The widget's token ---------------------------------------------------------------------------


def test_the_change_form_carries_a_token_and_the_script_and_the_add_form_uploads_through_django(
    editor_client, session
):
    page = editor_client.get(change_url(session)).content.decode()
    assert 'class="keyed-storage-direct"' in page
    assert f'data-ticket-url="{TICKET_URL}"' in page
    assert "keyed_storage/direct.js" in page
    assert hidden_value(page, "audio-token") and hidden_value(page, "slides-token")
    assert hidden_value(page, "audio-reference") == ""
    assert '<input type="file" name="audio"' in page  # the fallback without JavaScript

    # A new row has no id for its key yet: the plain input, uploaded through Django.
    added = editor_client.get("/admin/events/session/add/").content.decode()
    assert "keyed-storage-direct" not in added
    assert hidden_value(added, "audio-token") is None
    assert '<input type="file" name="audio"' in added


def test_the_ticket_view_is_routed_by_keyed_storage_urls():
    assert reverse("keyed_storage:direct-ticket") == TICKET_URL


# The ticket view ----------------------------------------------------------------------------


def test_a_token_gives_a_ticket_for_its_key_only(editor_client, session):
    token = token_on_page(editor_client, change_url(session))
    answer = ask_ticket(editor_client, token, RECORDING, "My Talk.wav", "audio/wav")
    assert answer.status_code == 200
    assert answer["Cache-Control"].startswith("max-age=0")
    ticket = answer.json()
    assert set(ticket) == {"url", "fields", "reference"}
    key = f"events/{session.event_id}/sessions/{session.pk}/audio/"
    assert ticket["fields"]["key"].startswith(key)
    assert ticket["fields"]["key"].endswith("/My_Talk.wav")


def test_an_anonymous_user_gets_no_ticket(client, editor, session):
    token = field_token(Session._meta.get_field("audio"), "events/1/sessions/1/audio", str(editor.pk))
    answer = ask_ticket(client, token, RECORDING, "talk.wav", "audio/wav")
    assert answer.status_code == 403
    assert answer.json() == {"error": "Sign in to upload files."}


def test_the_ticket_view_wants_the_csrf_token(editor, session):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    token = token_on_page(client, change_url(session))
    assert ask_ticket(client, token, RECORDING, "talk.wav", "audio/wav").status_code == 403
    csrf = client.cookies["csrftoken"].value
    answer = client.post(
        TICKET_URL,
        {"token": token, "filename": "talk.wav", "size": "10", "content_type": "audio/wav"},
        headers={"X-CSRFToken": csrf},
    )
    assert answer.status_code == 200


def test_a_token_that_is_not_this_users_is_refused(editor_client, editor, session):
    audio = Session._meta.get_field("audio")
    own_key = f"events/{session.event_id}/sessions/{session.pk}/audio"
    other = User.objects.create_superuser("other", "other@example.org", "pw")
    refused = [
        field_token(audio, own_key, str(other.pk)),  # issued to another user
        field_token(audio, "users/1/avatar", str(editor.pk))[:-2] + "xx",  # altered
        "events.session.audio",  # made up
        "",
    ]
    for token in refused:
        answer = ask_ticket(editor_client, token, RECORDING, "talk.wav", "audio/wav")
        assert answer.status_code == 403, token
        assert answer.json() == {"error": "This upload token is not valid for you."}


def test_the_fields_validators_limit_the_ticket(editor_client, session):
    token = token_on_page(editor_client, change_url(session))
    # Session.audio: ContentTypeValidator("audio/*"), FileSizeValidator(500 MiB).
    too_large = ask_ticket(
        editor_client, token, RECORDING, "talk.wav", "audio/wav", size=500 * 1024 * 1024 + 1
    )
    assert too_large.status_code == 400
    assert "larger than 500.0" in too_large.json()["error"]
    wrong_type = ask_ticket(editor_client, token, HTML, "page.html", "text/html")
    assert wrong_type.status_code == 400
    assert "text/html" in wrong_type.json()["error"]
    not_a_size = ask_ticket(editor_client, token, RECORDING, "talk.wav", "audio/wav", size="many")
    assert not_a_size.status_code == 400
    assert editor_client.get(TICKET_URL).status_code == 405


def test_a_long_filename_is_cut_so_the_name_fits_the_column(editor_client, session):
    token = token_on_page(editor_client, change_url(session))
    ticket = ask_ticket(editor_client, token, RECORDING, "a" * 300 + ".wav", "audio/wav").json()
    assert len(ticket["fields"]["key"]) == Session._meta.get_field("audio").max_length
    assert ticket["fields"]["key"].endswith("a.wav")


# The form ---------------------------------------------------------------------------------


def test_the_reference_saves_the_stored_name_and_replaces_the_old_file(
    editor_client, session, django_capture_on_commit_callbacks
):
    session.audio = SimpleUploadedFile("old.wav", wav_bytes())
    session.save()
    old = session.audio.name
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")

    with django_capture_on_commit_callbacks(execute=True):  # the old file goes once this commits
        response = save_form(editor_client, session, **{"audio-reference": ticket["reference"]})
    assert response.status_code == 302, response.content.decode()[-2000:]
    session.refresh_from_db()
    assert session.audio.name == published_name(ticket["fields"]["key"])
    stored = fetch(session.audio.url)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(RECORDING).hexdigest()
    assert not KeyedStorage().exists(old)  # replaced as any new file replaces the old one


def test_a_bad_reference_is_a_form_error_and_nothing_changes(editor_client, session):
    response = save_form(editor_client, session, **{"audio-reference": "not-a-reference"})
    assert response.status_code == 200
    assert "This upload reference is not valid here." in response.content.decode()
    session.refresh_from_db()
    assert not session.audio


def test_a_reference_for_another_field_or_row_is_refused(editor_client, session):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    as_slides = save_form(editor_client, session, **{"slides-reference": ticket["reference"]})
    assert "This upload reference is not valid here." in as_slides.content.decode()
    another = Session.objects.create(event=session.event, title="Closing")
    elsewhere = save_form(editor_client, another, **{"audio-reference": ticket["reference"]})
    assert "This upload was made for another place and cannot be used here." in elsewhere.content.decode()
    for row in (session, another):
        row.refresh_from_db()
        assert not row.audio and not row.slides


def test_a_reference_of_another_user_is_refused(editor_client, session):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    other = Client()
    other.force_login(User.objects.create_superuser("other", "other@example.org", "pw"))
    response = save_form(other, session, **{"audio-reference": ticket["reference"]})
    assert "This upload reference is not valid here." in response.content.decode()
    session.refresh_from_db()
    assert not session.audio


def test_a_file_whose_bytes_the_field_refuses_is_a_form_error_and_removed(editor_client, session):
    # The claim says audio; the bytes are a web page.
    ticket = upload_directly(editor_client, session, HTML, "talk.mp3", "audio/mpeg")
    assert KeyedStorage().exists(ticket["fields"]["key"])
    response = save_form(editor_client, session, **{"audio-reference": ticket["reference"]})
    assert response.status_code == 200
    assert "text/html" in response.content.decode()
    assert not KeyedStorage().exists(ticket["fields"]["key"])
    assert not KeyedStorage().exists(published_name(ticket["fields"]["key"]))
    session.refresh_from_db()
    assert not session.audio


def test_a_form_shown_again_keeps_the_reference(editor_client, session):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    sent = {"audio-reference": ticket["reference"], "audio-token": ticket["token"]}  # as a browser sends
    again = save_form(editor_client, session, title="", **sent)
    page = again.content.decode()
    assert again.status_code == 200 and "This field is required." in page
    assert hidden_value(page, "audio-reference") == ticket["reference"]
    assert hidden_value(page, "audio-token") == ticket["token"]
    fixed = save_form(editor_client, session, **sent)
    assert fixed.status_code == 302
    session.refresh_from_db()
    assert session.audio.name == published_name(ticket["fields"]["key"])


def test_a_form_shown_again_after_a_refused_upload_drops_its_reference_and_saves_again(
    editor_client, session
):
    # The claim says audio; the bytes are a web page: refused when the form is saved.
    ticket = upload_directly(editor_client, session, HTML, "talk.wav", "audio/wav")
    sent = {"audio-reference": ticket["reference"], "audio-token": ticket["token"]}
    refused = save_form(editor_client, session, title="Edited", **sent)
    page = refused.content.decode()
    assert refused.status_code == 200 and "text/html" in page
    assert hidden_value(page, "audio-reference") == "", "the refused reference is sent again"
    assert hidden_value(page, "audio-token") == ticket["token"]  # another file can be uploaded
    assert "A file has been uploaded" not in page
    assert "The uploaded file was not kept: pick a file again." in page
    # Sent as shown (the browser sends the hidden inputs as they are): it saves.
    again = save_form(
        editor_client, session, title="Edited", **{"audio-reference": "", "audio-token": ticket["token"]}
    )
    assert again.status_code == 302, again.content.decode()[-2000:]
    session.refresh_from_db()
    assert session.title == "Edited" and not session.audio


def test_without_javascript_the_file_goes_through_django(editor_client, session):
    response = save_form(editor_client, session, audio=SimpleUploadedFile("talk.wav", RECORDING))
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.audio.name.startswith(f"events/{session.event_id}/sessions/{session.pk}/audio/")
    assert fetch(session.audio.url) == RECORDING
    refused = save_form(editor_client, session, slides=SimpleUploadedFile("slides.pdf", HTML))
    assert "text/html" in refused.content.decode()


# A ModelForm of one's own ------------------------------------------------------------------


class RecordingForm(forms.ModelForm):
    class Meta:
        model = Session
        fields = ["audio"]
        field_classes = {"audio": DirectFileField}


def test_a_model_form_of_ones_own_takes_a_reference_once_bound_to_the_user(editor_client, editor, session):
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    data = {"audio-reference": ticket["reference"], "audio-token": ticket["token"]}

    unbound = RecordingForm(data, {}, instance=session)  # no user: no direct uploads offered
    assert "keyed-storage-direct" not in str(RecordingForm(instance=session)["audio"])
    assert unbound.is_valid() and not unbound.cleaned_data["audio"]

    form = RecordingForm(data, {}, instance=session)
    form.fields["audio"].bind(editor)
    assert 'name="audio-token"' in str(form["audio"])
    assert form.is_valid(), form.errors
    form.save()
    session.refresh_from_db()
    assert session.audio.name == published_name(ticket["fields"]["key"])


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_save_removes_the_direct_upload_and_keeps_the_old_file(editor_client, editor, session):
    session.audio = SimpleUploadedFile("old.wav", wav_bytes())
    session.save()
    old = session.audio.name
    ticket = upload_directly(editor_client, session, RECORDING, "talk.wav", "audio/wav")
    form = RecordingForm({"audio-reference": ticket["reference"]}, {}, instance=session)
    form.fields["audio"].bind(editor)
    assert form.is_valid(), form.errors
    with pytest.raises(RuntimeError), transaction.atomic():
        form.save()
        raise RuntimeError("the request failed after the save")
    assert not KeyedStorage().exists(published_name(ticket["fields"]["key"])), (
        "the rolled-back save's upload was left"
    )
    assert not KeyedStorage().exists(ticket["fields"]["key"])
    assert KeyedStorage().exists(old)
    assert Session.objects.get(pk=session.pk).audio.name == old


def test_a_field_token_expires_after_twelve_hours(editor_client, editor, session):
    token = token_on_page(editor_client, change_url(session))
    with pytest.MonkeyPatch.context() as patch:
        later = time.time() + TOKEN_MAX_AGE + 1
        patch.setattr(time, "time", lambda: later)
        answer = ask_ticket(editor_client, token, RECORDING, "talk.wav", "audio/wav")
    assert answer.status_code == 403
    assert answer.json() == {"error": "This upload token is not valid for you."}


# The admin's check ------------------------------------------------------------------------


def test_direct_upload_fields_must_name_fields_that_can_take_them():
    class SpeakerAdmin(FilePreviewMixin, admin.ModelAdmin):
        direct_upload_fields = ["photo", "name", "nickname"]

    class SessionAdmin(FilePreviewMixin, admin.ModelAdmin):
        direct_upload_fields = ["audio", "slides"]

    errors = SpeakerAdmin(Speaker, admin.site).check()
    # An image field takes them (tests/direct/test_images.py); the others cannot.
    assert [error.id for error in errors] == ["keyed_storage.E012"] * 2
    messages = [error.msg for error in errors]
    assert "'name', which cannot take direct uploads: it is not a file field" in messages[0]
    assert "'nickname', which cannot take direct uploads: Speaker has no such field" in messages[1]
    assert SessionAdmin(Session, admin.site).check() == []


def test_every_field_that_can_takes_direct_uploads_by_default(editor_client, session, rf, editor):
    event = session.event
    page = editor_client.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert hidden_value(page, "logo-token") and hidden_value(page, "background-token")
    # The inline's saved session too: its prefix names the row.
    assert hidden_value(page, "sessions-0-audio-token")

    class Quiet(FilePreviewMixin, admin.ModelAdmin):
        direct_upload_fields = ()

    class OnlyAudio(FilePreviewMixin, admin.ModelAdmin):
        direct_upload_fields = ["audio"]

    request = rf.get("/")
    request.user = editor
    for admin_class, expected in ((Quiet, set()), (OnlyAudio, {"audio"})):
        form_class = admin_class(Session, admin.site).get_form(request, session)
        fields = form_class.base_fields.items()
        direct = {name for name, field in fields if isinstance(field, DirectFileField)}
        assert direct == expected, admin_class


def test_direct_upload_fields_is_all_or_names():
    class Mistyped(FilePreviewMixin, admin.ModelAdmin):
        direct_upload_fields = "audio"

    errors = Mistyped(Session, admin.site).check()
    assert [error.id for error in errors] == ["keyed_storage.E012"]
    assert "it is '__all__' or a list of field names" in errors[0].msg
