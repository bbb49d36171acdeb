"""Fixtures that start real servers: an S3 server on 127.0.0.1 (moto's, or SeaweedFS with
KEYED_STORAGE_TEST_S3=seaweedfs), Django's live server and, on PostgreSQL runs, a throwaway
PostgreSQL cluster."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import django.test.testcases
import hypothesis
import pytest
from django.test import override_settings
from moto.server import ThreadedMotoServer

from keyed_storage import config
from keyed_storage.config import VARIABLES

from . import postgres, seaweedfs
from .faulty_proxy import SHORT_TIMEOUTS, FaultyProxy
from .helpers import TEST_KEY, TEST_SECRET, make_client, public_read_policy, s3_server_name
from .tasks_helpers import queue, worker  # noqa: F401  (fixtures: a task queue in process, a real worker)

# The edit-test loop's profile (`make quick`: --hypothesis-profile=quick): a few examples of
# each property, enough to catch a broken one. Counts written in a test's own @settings go
# through helpers.examples(), which lowers them under this profile; `make test` runs them all.
hypothesis.settings.register_profile("quick", max_examples=10)

# Variables that would let boto3 or the tests reach beyond loopback or read this machine's
# own AWS set-up. Cleared for the whole run; tests set what they need.
_AWS_AMBIENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)


def pytest_configure(config):
    try:
        s3_server_name()
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    config.addinivalue_line(
        "markers", "s3: runs in S3 mode (the s3 or s3_endpoint fixture, or mode=s3); set when collected"
    )
    config.addinivalue_line(
        "markers", "moto_only(reason): holds on moto's server only; skipped, with the reason, on the others"
    )
    config.addinivalue_line(
        "markers", "seaweedfs_only(reason): needs what SeaweedFS checks and moto does not; skipped on moto"
    )
    config.addinivalue_line(
        "markers", "slow: long-running (the lifecycle state machine); deselect with -m 'not slow'"
    )
    config.addinivalue_line(
        "markers", "browser: drives Chromium (everything in tests/browser); deselect with -m 'not browser'"
    )
    config.addinivalue_line(
        "markers",
        "gigabyte: moves 1 GiB; runs where KEYED_STORAGE_TEST_GIGABYTE=1 (one CI entry), skipped elsewhere",
    )
    for name in (*VARIABLES, *_AWS_AMBIENT):
        os.environ.pop(name, None)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never ask 169.254.169.254
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull


def pytest_report_header(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    s3_server = f"S3 server: {s3_server_name()} (KEYED_STORAGE_TEST_S3)"
    if engine == "postgresql":
        return [
            "database: postgresql (a throwaway cluster, started when a test first needs the database)",
            s3_server,
        ]
    return [f"database: {engine}", s3_server]


_S3_FIXTURES = {"s3", "s3_endpoint"}
_BROWSER_TESTS = Path(__file__).resolve().parent / "browser"


def pytest_collection_modifyitems(config, items):
    """Mark the S3-mode tests `s3`, so `-m s3` runs exactly those (e.g. against SeaweedFS), and
    tests/browser's `browser`; skip a test marked for one S3 server on the others, with its
    reason in the summary."""
    server = s3_server_name()
    for item in items:
        if _BROWSER_TESTS in item.path.parents:
            item.add_marker(pytest.mark.browser)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "mode" in params:
            in_s3_mode = params["mode"] == "s3"
        else:
            in_s3_mode = bool(_S3_FIXTURES & set(getattr(item, "fixturenames", ())))
        if not in_s3_mode:
            continue
        item.add_marker(pytest.mark.s3)
        for only, marker in (("moto", "moto_only"), ("seaweedfs", "seaweedfs_only")):
            mark = item.get_closest_marker(marker)
            if mark and server != only:
                reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "")
                item.add_marker(pytest.mark.skip(reason=f"{only} only, not {server}: {reason}"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On PostgreSQL runs, a cluster of the run's own, started before the test database is made.

    The settings chose the engine (KEYED_STORAGE_TEST_DB=postgres); where the server listens
    is known only once it runs, and is written into the settings Django's connections read.
    The cluster stops after the test database is dropped, whether the tests passed or not.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        yield
        return
    with postgres.throwaway_cluster() as cluster:
        database.update(cluster.django_settings())
        yield


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Passwords hashed with MD5, as Django's own test settings do. The default (PBKDF2) takes
    about half a second a user on purpose, and a few hundred tests make an editor; none of
    them is about how passwords are stored."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def isolated(monkeypatch, settings, tmp_path):
    """Each test starts in local mode with its own MEDIA_ROOT and no keyed_storage variables."""
    for name in (*VARIABLES, *_AWS_AMBIENT):
        monkeypatch.delenv(name, raising=False)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.MEDIA_URL = "/media/"
    config.reset()
    yield
    config.reset()


@pytest.fixture
def env(monkeypatch) -> Callable[..., None]:
    """env(NAME="value", OTHER=None): set (a string) or unset (None) environment variables, then
    have keyed_storage read its configuration again. Undone after the test, as monkeypatch is,
    and the configuration read afresh (`isolated`)."""

    def set_variables(**variables: str | None) -> None:
        for name, value in variables.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        config.reset()

    return set_variables


@pytest.fixture(scope="session")
def s3_endpoint():
    """The S3 server for the whole run, over HTTP on 127.0.0.1, on free ports: moto's server,
    or a SeaweedFS of the run's own (KEYED_STORAGE_TEST_S3=seaweedfs), whose admin is the
    tests' key pair. Started when a test first needs it, stopped at the end."""
    if s3_server_name() == "seaweedfs":
        with seaweedfs.throwaway_server(TEST_KEY, TEST_SECRET) as server:
            yield server.endpoint
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture
def s3(s3_endpoint, env) -> Iterator[S3]:
    """S3 mode: a fresh bucket on the S3 server, selected through the environment only."""
    client = make_client(s3_endpoint)
    bucket = f"ks-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=bucket)
    # As a public site's bucket would be set up: ACLs off, anonymous reads by bucket policy.
    client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    env(
        BUCKET_NAME=bucket,
        AWS_KEY=TEST_KEY,
        AWS_SECRET=TEST_SECRET,
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        AWS_REGION="us-east-1",
    )
    yield S3(s3_endpoint, bucket, client)
    if s3_server_name() == "seaweedfs":
        # Each bucket is a collection with a volume of its own, held in SeaweedFS's memory
        # until the bucket goes (and the deletion takes the objects with it).
        client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, minus Django's own media handler.

    Django's LiveServerThread answers MEDIA_URL requests itself (and decodes the path a
    second time). Passing it through means every local link is served by keyed_storage's
    view, exactly as in production.
    """
    from pytest_django.live_server_helper import LiveServer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(django.test.testcases, "_MediaFilesHandler", lambda application: application)
        server = LiveServer("127.0.0.1")
        yield server
        server.stop()


@pytest.fixture
def local(live_server, env, request):
    """Local mode with links pointing at the live server, so every URL can be fetched."""
    # The live server's thread runs Django's request signals, which touch its database
    # connection once an earlier test has opened one; so local tests get database access.
    if "transactional_db" not in request.fixturenames and not _is_transactional(request):
        request.getfixturevalue("db")
    env(KEYED_STORAGE_BASE_URL=live_server.url)
    return live_server


def _is_transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))


@pytest.fixture(params=["local", "s3"])
def mode(request):
    """Run a test once with files on the local disk and once in S3."""
    request.getfixturevalue(request.param)
    return request.param


@pytest.fixture
def editor(django_user_model):
    """A staff user who may change everything, as the admin's direct-upload tests sign in."""
    return django_user_model.objects.create_superuser("editor", "editor@example.org", "pw")


@pytest.fixture
def editor_client(client, editor):
    """Django's test client, signed in as `editor`."""
    client.force_login(editor)
    return client


@pytest.fixture
def through(s3, env):
    """through(mode, ...): the storage pointed at a faulty proxy in front of the test's bucket."""
    proxies: list[FaultyProxy] = []

    def start(mode: str, **options: object) -> FaultyProxy:
        proxy = FaultyProxy(s3.endpoint, mode, **options).start()  # type: ignore[arg-type]
        proxies.append(proxy)
        env(AWS_ENDPOINT_URL_S3=proxy.endpoint, **SHORT_TIMEOUTS)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
