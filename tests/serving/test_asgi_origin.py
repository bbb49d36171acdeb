"""Local links carry the origin of their own request, under ASGI (uvicorn) and WSGI alike."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import AsyncClient

from events.models import Event

from ..helpers import REPO, fetch, png_bytes
from ..site_helpers import attribute_values

TESTPROJECT = Path(REPO) / "testproject"
CONCURRENT_REQUESTS = 24
EVENT_PAGE = re.compile(r"/events/\d+/")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Site:
    port: int
    media_root: Path

    def origins(self) -> tuple[str, str]:
        # Two host names for the same loopback server, both in the demo's ALLOWED_HOSTS.
        return f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"

    def pages(self) -> list[str]:
        """The event list and every event's page, as the list links them."""
        listing = requests.get(f"http://127.0.0.1:{self.port}/", timeout=10).text
        events = sorted(
            {href for href in attribute_values(listing, "a", "href") if EVENT_PAGE.fullmatch(href)}
        )
        assert len(events) == 2, listing
        return ["/", *events]


@pytest.fixture(scope="module")
def uvicorn_site(tmp_path_factory):
    """The demo site served by a real uvicorn process: its own SQLite file and MEDIA_ROOT."""
    root = tmp_path_factory.mktemp("asgi-site")
    env = {**os.environ, "DEMO_DB": str(root / "db.sqlite3"), "DEMO_MEDIA_ROOT": str(root / "media")}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py and asgi.py set the demo's own
    for command in (["migrate", "--verbosity", "0"], ["demo_data"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=TESTPROJECT, env=env, check=True, capture_output=True
        )
    port = free_port()
    log = open(root / "uvicorn.log", "wb")  # closed below, once the process has ended
    command = ["uvicorn", "testproject.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", *command, "--log-level", "warning"],
        cwd=TESTPROJECT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_serving(server, port, root / "uvicorn.log")
        yield Site(port, root / "media")
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _wait_until_serving(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"uvicorn did not answer on port {port} within 30 s:\n{log.read_text()}")


def file_links(html: str) -> list[str]:
    """Every link to a stored file in a demo page: images, audio players, slide links."""
    sources = attribute_values(html, "img", "src") + attribute_values(html, "audio", "src")
    return sources + [href for href in attribute_values(html, "a", "href") if "/media/" in href]


def get_pages_at_once(site: Site) -> list[tuple[str, str, requests.Response]]:
    """CONCURRENT_REQUESTS page requests, alternating host names, all released together."""
    origins, pages = site.origins(), site.pages()
    jobs = [(origins[i % 2], pages[i // 2 % len(pages)]) for i in range(CONCURRENT_REQUESTS)]
    start = threading.Barrier(len(jobs))

    def get(job):
        origin, path = job
        start.wait(timeout=30)
        return origin, path, requests.get(origin + path, timeout=30)

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(get, jobs))


def assert_each_page_links_its_own_origin(site: Site) -> None:
    links: set[str] = set()
    for origin, path, response in get_pages_at_once(site):
        assert response.status_code == 200, f"GET {origin}{path} -> {response.status_code}"
        page_links = file_links(response.text)
        assert page_links, f"no file links on {origin}{path}"
        for link in page_links:
            assert link.startswith(f"{origin}/media/"), f"{origin}{path} links {link}"
        links.update(page_links)
    assert {urlsplit(link).netloc for link in links} == {urlsplit(o).netloc for o in site.origins()}

    def same_bytes(link: str) -> None:
        name = unquote(urlsplit(link).path.removeprefix("/media/"))
        assert fetch(link) == (site.media_root / name).read_bytes(), link

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(same_bytes, sorted(links)))


def test_asgi_links_carry_each_requests_own_origin(uvicorn_site):
    assert_each_page_links_its_own_origin(uvicorn_site)


def test_asgi_a_forged_host_never_reaches_a_link(uvicorn_site):
    page = requests.get(
        f"http://127.0.0.1:{uvicorn_site.port}/", headers={"Host": "evil.example"}, timeout=10
    )
    assert page.status_code == 400
    assert "evil.example/media" not in page.text


@pytest.mark.django_db(transaction=True)
def test_wsgi_links_carry_each_requests_own_origin(live_server, settings):
    call_command("demo_data", stdout=io.StringIO())
    port = urlsplit(live_server.url).port
    assert_each_page_links_its_own_origin(Site(port, Path(settings.MEDIA_ROOT)))


@pytest.mark.django_db(transaction=True)
def test_links_under_the_async_test_client_take_the_request_origin():
    event = Event.objects.create(name="Async Con", logo=SimpleUploadedFile("logo.png", png_bytes()))
    page = async_to_sync(AsyncClient().get)(f"/events/{event.pk}/")
    assert page.status_code == 200
    assert f'src="http://testserver/media/events/{event.pk}/logo/' in page.content.decode()


def exported_links(body: bytes) -> list[str]:
    return [line.split(",", 1)[1] for line in body.decode().splitlines()]


@pytest.mark.django_db(transaction=True)
def test_links_in_a_streamed_body_take_the_request_origin(settings, client):
    settings.ROOT_URLCONF = "tests.origin_urls"
    for name in ("One", "Two"):
        Event.objects.create(name=name, logo=SimpleUploadedFile("logo.png", png_bytes()))
    response = client.get("/export/", headers={"host": "localhost"})
    # The rows are made now, after the view has returned, as a server sends them.
    links = exported_links(b"".join(response.streaming_content))
    assert len(links) == 2 and all(link.startswith("http://localhost/media/events/") for link in links)


@pytest.mark.django_db(transaction=True)
def test_links_in_an_async_streamed_body_take_the_request_origin(settings):
    settings.ROOT_URLCONF = "tests.origin_urls"
    for name in ("One", "Two"):
        Event.objects.create(name=name, logo=SimpleUploadedFile("logo.png", png_bytes()))

    async def export() -> bytes:
        response = await AsyncClient().get("/async-export/")
        return b"".join([chunk async for chunk in response.streaming_content])

    links = exported_links(async_to_sync(export)())
    assert len(links) == 2 and all(link.startswith("http://testserver/media/events/") for link in links)
