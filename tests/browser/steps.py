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
