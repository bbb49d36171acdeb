"""Local files are served under ASGI (uvicorn) as under WSGI: the same HTTP, and streamed.

Both servers run as processes of their own over one MEDIA_ROOT, so their answers can be
compared byte for byte, and each one's resident memory is its own to measure.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client

from keyed_storage import upload

from ..helpers import REPO
from ..site_helpers import attribute_values

TESTPROJECT = Path(REPO) / "testproject"
DIRECT_JS = Path(REPO) / "keyed_storage/static/keyed_storage/direct.js"
BODY = bytes(range(256)) * 1000  # 256,000 bytes: several read chunks, every byte value
LARGE = 256 * 1024 * 1024  # a long recording
MIB = 1024 * 1024
# Headers that belong to the server or the connection rather than to the file.
SERVER_HEADERS = {"date", "server", "connection", "keep-alive"}


@dataclass
class Server:
    kind: str
    process: subprocess.Popen
    base: str

    def status(self, field: str) -> int:
        """A /proc/<pid>/status figure of the server process, in bytes."""
        with open(f"/proc/{self.process.pid}/status") as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise LookupError(f"no {field} in /proc/{self.process.pid}/status")

    def open_files(self) -> list[str]:
        """What the server process's file descriptors point at."""
        fds = Path(f"/proc/{self.process.pid}/fd")
        targets = []
        for fd in fds.iterdir():
            try:
                targets.append(os.readlink(fd))
            except FileNotFoundError:
                pass  # closed while listed
        return targets

    def reset_peak(self) -> None:
        with open(f"/proc/{self.process.pid}/clear_refs", "w") as reset:
            reset.write("5")  # VmHWM starts again from the current resident set


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def media_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("asgi-serving") / "media"
    (root / "talks").mkdir(parents=True)
    (root / "talks/talk.bin").write_bytes(BODY)
    return root


@pytest.fixture(scope="module")
def servers(media_root):
    """The demo project under uvicorn (ASGI) and under Django's runserver (WSGI)."""
    commands = {
        "asgi": "-m uvicorn testproject.asgi:application --host 127.0.0.1 --port {port} --log-level warning",
        "wsgi": "manage.py runserver --noreload --skip-checks 127.0.0.1:{port}",
    }
    env = {
        **os.environ,
        "DEMO_DB": str(media_root.parent / "db.sqlite3"),
        "DEMO_MEDIA_ROOT": str(media_root),
        "DJANGO_DEBUG": "1",
        # This checkout's keyed_storage, whichever one the virtualenv's editable install names.
        "PYTHONPATH": os.pathsep.join([str(TESTPROJECT.parent), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py and asgi.py set the demo's own
    env.pop("KEYED_STORAGE_BASE_URL", None)
    started: dict[str, Server] = {}
    logs = []
    try:
        for kind, command in commands.items():
            port = free_port()
            log = open(media_root.parent / f"{kind}.log", "wb")  # closed below, once the server has ended
            logs.append(log)
            process = subprocess.Popen(
                [sys.executable, *command.format(port=port).split()],
                cwd=TESTPROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            started[kind] = Server(kind, process, f"http://127.0.0.1:{port}")
        for server in started.values():
            _wait_until_serving(server, media_root.parent / f"{server.kind}.log")
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
            server.process.wait(timeout=10)
        for log in logs:
            log.close()


def _wait_until_serving(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"the {server.kind} server exited with {server.process.returncode}:\n{log.read_text()}"
            )
        try:
            requests.get(f"{server.base}/media/talks/talk.bin", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"the {server.kind} server did not answer within 60 s:\n{log.read_text()}")


def get(server: Server, method: str = "GET", path: str = "/media/talks/talk.bin", **headers: str):
    return requests.request(method, server.base + path, headers=headers, timeout=30)


KINDS = ["asgi", "wsgi"]


# The same HTTP under both servers -------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_file(servers, kind):
    response = get(servers[kind])
    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100000-", 100000, len(BODY) - 1),
        ("bytes=-1000", len(BODY) - 1000, len(BODY) - 1),
    ],
)
def test_a_range_is_206(servers, kind, spec, first, last):
    response = get(servers[kind], Range=spec)
    assert response.status_code == 206
    assert response.content == BODY[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert response.headers["Content-Length"] == str(last - first + 1)


@pytest.mark.parametrize("kind", KINDS)
def test_several_ranges_get_the_whole_file_and_a_range_past_the_end_416(servers, kind):
    # Several ranges at once are ignored today (RFC 9110 §14.2 allows it): the whole file.
    several = get(servers[kind], Range="bytes=0-9,20-29")
    assert several.status_code == 200 and several.content == BODY
    past = get(servers[kind], Range=f"bytes={len(BODY)}-")
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize("kind", KINDS)
def test_if_none_match_is_304_and_if_match_412(servers, kind):
    etag = get(servers[kind]).headers["ETag"]
    not_modified = get(servers[kind], **{"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    assert get(servers[kind], **{"If-Match": '"another"'}).status_code == 412
    stale = get(servers[kind], Range="bytes=0-9", **{"If-Range": '"another"'})
    assert stale.status_code == 200 and stale.content == BODY


@pytest.mark.parametrize("kind", KINDS)
def test_head_sends_the_headers_of_get_and_no_body(servers, kind):
    head = get(servers[kind], "HEAD")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(BODY))


def test_asgi_and_wsgi_answer_alike(servers):
    etag = get(servers["wsgi"]).headers["ETag"]
    requests_made = [
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"Range": "bytes=10-20"}),
        ("GET", {"Range": "bytes=-5"}),
        ("GET", {"Range": "bytes=0-9,20-29"}),
        ("GET", {"Range": f"bytes={len(BODY)}-"}),
        ("GET", {"If-None-Match": etag}),
        ("HEAD", {"If-None-Match": etag}),
        ("GET", {"If-Match": '"another"'}),
        ("GET", {"Range": "bytes=0-9", "If-Range": etag}),
        ("GET", {}, "/media/talks/missing.bin"),
    ]
    for method, headers, *path in requests_made:
        asgi, wsgi = (answer(get(servers[kind], method, *path, **headers)) for kind in KINDS)
        assert asgi == wsgi, (method, headers, path)


def answer(response: requests.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in SERVER_HEADERS}
    if response.request.method == "HEAD" and headers.get("content-length") == "0":
        # runserver drops a HEAD answer's 'Content-Length: 0' (django/core/servers/basehttp.py,
        # ServerHandler.cleanup_headers); uvicorn sends it as the application gave it.
        del headers["content-length"]
    return response.status_code, headers, response.content


# Memory: a large file is streamed, not read whole -------------------------------------------


@pytest.fixture(scope="module")
def large_file(media_root) -> tuple[str, str]:
    """LARGE random bytes in MEDIA_ROOT, written a MiB at a time; their path and SHA-256."""
    digest = hashlib.sha256()
    with open(media_root / "talks/long.bin", "wb") as file:
        for _ in range(LARGE // MIB):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            file.write(chunk)
    return "/media/talks/long.bin", digest.hexdigest()


@pytest.mark.parametrize("kind", KINDS)
def test_a_large_download_is_streamed_not_held_in_memory(servers, large_file, kind):
    server = servers[kind]
    path, expected = large_file
    # Warm up: the view, the thread pool and the buffers are all in use before the peak is reset.
    assert get(server, path=path, Range="bytes=0-1048575").status_code == 206
    server.reset_peak()
    baseline = server.status("VmHWM")
    digest, received = hashlib.sha256(), 0
    with requests.get(server.base + path, stream=True, timeout=60) as response:
        assert response.status_code == 200
        for chunk in response.iter_content(MIB):
            digest.update(chunk)
            received += len(chunk)
    growth = server.status("VmHWM") - baseline
    assert (received, digest.hexdigest()) == (LARGE, expected)
    assert growth < LARGE // 4, (
        f"serving {LARGE // MIB} MiB under {kind} grew the server's peak resident set by {growth // MIB} MiB"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_an_abandoned_download_closes_its_file(servers, media_root, large_file, kind):
    server, path = servers[kind], str(media_root / "talks/long.bin")
    with requests.get(server.base + large_file[0], stream=True, timeout=60) as response:
        assert len(next(response.iter_content(MIB))) == MIB
        assert path in server.open_files()  # still being sent
    # The client has hung up with most of the file unsent; the server notices at its next write.
    deadline = time.monotonic() + 60
    while path in server.open_files():
        assert time.monotonic() < deadline, f"{kind}: {path} is still open after the client went away"
        time.sleep(0.1)


# In process: the body's kind follows the request's -------------------------------------------


def test_an_asgi_request_gets_an_async_body_a_wsgi_request_a_sync_one(local):
    url = upload(SimpleUploadedFile("talk.bin", BODY), "talks/talk")
    path = url.removeprefix(local.url)

    async def fetch_async():
        response = await AsyncClient().get(path, headers={"range": "bytes=5-"})
        # A sync body, which Django's ASGI handler would read whole into a list before sending.
        assert response.is_async, "an ASGI request got a sync body"
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, body = async_to_sync(fetch_async)()
    assert (response.status_code, body) == (206, BODY[5:])
    response = Client().get(path)
    body = b"".join(response.streaming_content)
    assert (response.status_code, response.is_async, body) == (200, False, BODY)


# The demo under ASGI has its static files ---------------------------------------------------


def test_the_asgi_demo_serves_the_admins_css_and_the_direct_upload_script(servers):
    server = servers["asgi"]
    login = get(server, path="/admin/login/")
    assert login.status_code == 200, login.text[:300]
    stylesheets = attribute_values(login.text, "link", "href")
    assert "/static/admin/css/base.css" in stylesheets, login.text
    for href in stylesheets:
        css = get(server, path=href)
        assert (css.status_code, css.headers["Content-Type"].split(";")[0]) == (200, "text/css"), href
    script = get(server, path="/static/keyed_storage/direct.js")
    assert script.status_code == 200
    assert script.content == DIRECT_JS.read_bytes()
