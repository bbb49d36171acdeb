"""Steps the browser tests share: signing into the admin, saving one of its forms."""

from __future__ import annotations

from django.contrib.auth.models import User


def sign_in(page, base: str) -> None:
    User.objects.create_superuser("editor", "editor@example.org", "correct horse")
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def save_admin_form(page) -> None:
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")


def open_recording_editor(page, base: str):
    """Sign in, open a new session's change form: (the session, its recording's upload box)."""
    from events.models import Event, Session

    sign_in(page, base)
    session = Session.objects.create(event=Event.objects.create(name="Direct Con"), title="Keynote")
    page.goto(f"{base}/admin/events/session/{session.pk}/change/")
    return session, page.locator(".keyed-storage-direct").filter(has=page.locator("#id_audio"))


def wait_until(page, condition, attempts: int = 200) -> None:
    """Let the page's events arrive (Playwright delivers them while it waits) until `condition`."""
    for _ in range(attempts):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("the condition never held")
