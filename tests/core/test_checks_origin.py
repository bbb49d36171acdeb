"""System checks for local links that take their origin from the request being handled."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from events.models import Event
from keyed_storage.exceptions import NoOrigin
from keyed_storage.serving.middleware import RequestOriginMiddleware

from ..helpers import png_bytes

MIDDLEWARE = "keyed_storage.serving.middleware.RequestOriginMiddleware"


class SiteOriginMiddleware(RequestOriginMiddleware):
    """A site's own subclass, which the check must accept as the middleware."""


def check_ids() -> list[str]:
    return [message.id for message in run_checks(tags=["keyed_storage"])]


@pytest.fixture
def without_middleware(settings):
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != MIDDLEWARE]


def test_local_links_from_requests_need_the_middleware(without_middleware):
    errors = [m for m in run_checks(tags=["keyed_storage"]) if m.is_serious()]
    assert [e.id for e in errors] == ["keyed_storage.E010"]
    assert errors[0].obj == "MIDDLEWARE"
    assert MIDDLEWARE in errors[0].msg and "NoOrigin" in errors[0].msg
    assert f"Add {MIDDLEWARE!r}" in errors[0].hint and "KEYED_STORAGE_BASE_URL" in errors[0].hint
    with pytest.raises(SystemCheckError, match=r"keyed_storage\.E010"):
        call_command("check")


@pytest.mark.django_db
def test_without_the_middleware_a_page_with_local_links_raises_no_origin(without_middleware):
    # What E010 warns of: the link has no origin, and says so rather than invent one.
    event = Event.objects.create(name="No Origin Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    with pytest.raises(NoOrigin, match="RequestOriginMiddleware"):
        Client().get(f"/events/{event.pk}/")


def test_a_subclass_of_the_middleware_counts(settings, without_middleware):
    settings.MIDDLEWARE = [f"{__name__}.SiteOriginMiddleware", *settings.MIDDLEWARE]
    assert "keyed_storage.E010" not in check_ids()


@pytest.mark.parametrize(
    "variables",
    [{"KEYED_STORAGE_BASE_URL": "https://example.org"}, {"BUCKET_NAME": "media-bucket"}],
    ids=["base-url", "s3"],
)
def test_the_middleware_is_not_needed_when_links_do_not_use_requests(without_middleware, env, variables):
    env(**variables)
    assert check_ids() == []


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("hosts", [["*"], ["example.org", "*"]])
def test_any_host_allowed_without_a_base_url_warns(settings, debug, hosts):
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = hosts
    warnings = [m for m in run_checks(tags=["keyed_storage"]) if m.id == "keyed_storage.W002"]
    assert len(warnings) == 1
    assert not warnings[0].is_serious()
    assert warnings[0].obj == "ALLOWED_HOSTS"
    assert "ALLOWED_HOSTS" in warnings[0].msg and "KEYED_STORAGE_BASE_URL" in warnings[0].msg
    assert "KEYED_STORAGE_BASE_URL=https://example.org" in warnings[0].hint
    err = io.StringIO()
    call_command("check", stderr=err)  # what `manage.py check` prints
    assert "keyed_storage.W002" in err.getvalue()


@pytest.mark.parametrize("hosts", [[".example.org", "example.org"], ["localhost", "127.0.0.1"]])
def test_named_hosts_and_subdomain_patterns_do_not_warn(settings, hosts):
    settings.ALLOWED_HOSTS = hosts
    assert "keyed_storage.W002" not in check_ids()


def test_any_host_with_a_base_url_does_not_warn(settings, env):
    settings.ALLOWED_HOSTS = ["*"]
    env(KEYED_STORAGE_BASE_URL="https://example.org")
    assert check_ids() == []


@pytest.mark.django_db
def test_what_w002_warns_of_a_forged_host_reaches_the_links_and_a_base_url_stops_it(settings, env):
    settings.ALLOWED_HOSTS = ["*"]
    event = Event.objects.create(name="Forged Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = Client().get(f"/events/{event.pk}/", headers={"host": "evil.example"}).content.decode()
    assert 'src="http://evil.example/media/events/' in page
    env(KEYED_STORAGE_BASE_URL="https://example.org")
    page = Client().get(f"/events/{event.pk}/", headers={"host": "evil.example"}).content.decode()
    assert "evil.example/media" not in page
    assert 'src="https://example.org/media/events/' in page
