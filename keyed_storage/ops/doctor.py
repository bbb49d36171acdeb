"""The doctor: say which backend is active and why, then prove it works, step by step."""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile

from .. import backends, config, variables
from ..caching import cache_control
from ..keys import has_token, object_name
from . import policy, worker
from .explain import POLICY_FIX, Diagnosis, error_code, explain, explain_get
from .step import Step

if TYPE_CHECKING:
    from ..backends import Backend, OperationsBackend
    from ..storage import KeyedStorage

PROBE_KEY = "keyed-storage-doctor"
CACHE_SAMPLE = 5  # stored tokened objects whose Cache-Control the doctor looks at
SAMPLE_LISTED = 200  # names listed to find them
MAX_SKEW = 15 * 60  # seconds; S3 refuses signed requests further off than this
GET_TIMEOUT = 15
# An S3 answer that takes more than this share of KEYED_STORAGE_READ_TIMEOUT is a warning: a
# little slower still, and the app's requests fail.
SLOW_SHARE = 0.25

# Replaced by tests to provoke a clock skew; the wall clock otherwise.
clock: Callable[[], float] = time.time


def describe(cfg: config.Config) -> list[str]:
    """Which backend is active and which variables made it so. Never shows AWS_SECRET's value."""
    seen = dict(cfg.sources)
    if cfg.backend == "s3":
        why = f"because BUCKET_NAME is set (in the {seen['BUCKET_NAME']})"
    else:
        why = f"because BUCKET_NAME is not set; files go to MEDIA_ROOT={cfg.media_root}"
    lines = [f"Backend: {cfg.backend}, {why}."]
    if seen:
        lines.append("Variables seen:")
        lines.extend(f"  {name}={_shown(cfg, name)}  ({source})" for name, source in cfg.sources)
    else:
        lines.append("Variables seen: none.")
    origin = "KEYED_STORAGE_CACHE_CONTROL" if "KEYED_STORAGE_CACHE_CONTROL" in seen else "the default"
    lines.append(
        f"Cache-Control: {cfg.cache_control!r} for uploads' tokened names ({origin}), "
        f"{cache_control(cfg, immutable=False)!r} for exact names."
    )
    if cfg.backend == "s3":
        lines.append(
            f"Waiting for S3: {cfg.connect_timeout:g} s to connect, {cfg.read_timeout:g} s for an answer "
            f"({cfg.transfer_timeout:g} s for long transfers), each request tried at most "
            f"{cfg.max_attempts} time(s)."
        )
    return lines


def _shown(cfg: config.Config, name: str) -> str:
    """A variable's value as the Config holds it, from the table: "(ignored)" when local mode
    ignores it, and never a secret's."""
    variable = variables.BY_NAME[name]
    if variable.secret:
        return "(set, not shown)"
    value = getattr(cfg, variable.field)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value) if value not in (None, "") else "(ignored)"


def run() -> tuple[list[str], Iterator[Step]]:
    """The header lines and the steps; the storage's steps stop at the first one the others
    depend on, and the background work's follow them in any case (they need no storage)."""
    cfg, problems = config.inspect()
    if problems:
        header = ["Backend: none, the configuration is incomplete."]
        storage = iter(Step(False, f"configuration ({p.id})", p.message, p.hint) for p in problems)
        return header, itertools.chain(storage, _background_steps())
    assert cfg is not None  # inspect() returns a Config whenever it finds no problem
    steps = _s3_steps(cfg) if cfg.backend == "s3" else _local_steps(cfg)
    return describe(cfg), itertools.chain(steps, _background_steps())


def _background_steps() -> Iterator[Step]:
    """Which task backend runs keyed_storage's work, and warnings about work that is not done."""
    return worker.findings()


# S3 ----------------------------------------------------------------------------------------


def _s3_steps(cfg: config.Config) -> Iterator[Step]:
    backend = backends.for_config(cfg)  # cfg.backend is 's3'

    who = backend.identity()
    if who is None:
        yield Step(
            False,
            "credentials",
            "AWS_KEY and AWS_SECRET are not set and boto3 found no other credentials.",
            "Set AWS_KEY and AWS_SECRET, or run with an IAM role (instance profile, task role).",
        )
        return
    yield Step(True, f"credentials: {who}")

    # The region first: S3 answers GetBucketLocation from any region with a code for each
    # failure (NoSuchBucket, AccessDenied, SignatureDoesNotMatch, ...).
    title = f"bucket {cfg.bucket} exists"
    started = time.perf_counter()
    try:
        actual = backend.region()
    except Exception as error:
        yield Step.failed(title, explain(error, action="s3:GetBucketLocation", config=cfg))
        return
    yield _timed(Step(True, title), started, cfg)

    if actual != (cfg.region or "us-east-1"):
        yield Step(
            False,
            "bucket region",
            f"The bucket is in {actual} but AWS_REGION={cfg.region or '(unset, so us-east-1)'}; "
            "requests and links would go to the wrong regional host.",
            f"Set AWS_REGION={actual}.",
        )
        return
    yield Step(True, f"bucket region: {actual}" + (" matches AWS_REGION" if cfg.region else ""))

    title = "list objects (the app lists a key's earlier objects to replace them)"
    started = time.perf_counter()
    try:
        listed = backend.listing(PROBE_KEY + "/", 1)
    except Exception as error:
        yield Step.failed(title, explain(error, action="s3:ListBucket", config=cfg))
        return
    yield _timed(Step(True, title), started, cfg)
    yield _clock_step(listed.server_time)

    stored = True
    for step in _probe_steps(cfg, backend):
        stored = stored and step.ok
        yield step
    yield _stored_cache_step(cfg, backend)
    yield _abandoned_uploads_step(cfg, backend)
    yield _browser_uploads_step(cfg, backend)
    if stored:  # a direct upload needs what the probe needs, and more
        yield _direct_upload_step(cfg)


def _stored_cache_step(cfg: config.Config, backend: OperationsBackend) -> Step:
    """Whether a sample of the bucket's tokened objects carry the Cache-Control they should.

    Objects stored before keyed_storage set it (or under another KEYED_STORAGE_CACHE_CONTROL)
    are cached by nobody, or by the old rule, until they are uploaded again.
    """
    title = "Cache-Control of stored uploads"
    expected = cfg.cache_control
    try:
        listed = backend.listing("", SAMPLE_LISTED).names
        names = [name for name in listed if has_token(name)][:CACHE_SAMPLE]
        looks = {name: backend.look(name) for name in names}
    except Exception as error:
        return Step.failed(title, explain(error, action="s3:GetObject", config=cfg))
    # An object deleted between the listing and its look is no longer stored: not sampled.
    found = {name: look.cache_control for name, look in looks.items() if look is not None}
    if not found:
        return Step(True, f"{title}: no uploads stored yet to sample")
    wrong = {name: value for name, value in found.items() if value != expected}
    if not wrong:
        return Step(True, f"{title}: {len(found)} sampled, all {expected!r}")
    shown = "; ".join(f"{name}: {value or '(none)'}" for name, value in list(wrong.items())[:3])
    return Step(
        False,
        title,
        f"{len(wrong)} of {len(found)} sampled uploads lack Cache-Control {expected!r} ({shown}); "
        "they were stored before keyed_storage set it, or under another "
        "KEYED_STORAGE_CACHE_CONTROL, so browsers and CDNs revalidate or refetch them.",
        "Where the files are on disk too, `manage.py keyed_storage sync --from local --to s3` sets it "
        "on the objects it skips; else set it in place, keeping the type: aws s3api copy-object "
        f"--bucket {cfg.bucket} --key KEY --copy-source {cfg.bucket}/KEY --metadata-directive REPLACE "
        f"--content-type TYPE --cache-control '{expected}'",
    )


def _abandoned_uploads_step(cfg: config.Config, backend: OperationsBackend) -> Step:
    """Whether the bucket removes the parts of multipart uploads nobody finished (a large save
    whose process was killed, a direct upload abandoned midway): S3 keeps them, invisible to
    any listing of objects, and bills them until a lifecycle rule aborts the upload.

    A warning, not a failure: every upload works without the rule, it only costs more."""
    title = "abandoned multipart uploads"
    fix = (
        "Add a lifecycle rule that aborts them: `manage.py keyed_storage policy --only lifecycle` "
        "prints one, and `aws s3api put-bucket-lifecycle-configuration --bucket "
        f"{cfg.bucket} --lifecycle-configuration file://lifecycle.json` applies it (it replaces the "
        "bucket's lifecycle rules: if it has some, add this rule to them)."
    )
    try:
        days = backend.incomplete_upload_expiry()
    except Exception as error:
        what = (
            "The bucket's lifecycle configuration could not be read, so whether it removes them is unknown."
        )
        return _unread_step(title, what, error, "s3:GetLifecycleConfiguration", fix, cfg)
    if days is None:
        return Step(
            True,
            title,
            "No enabled lifecycle rule for the whole bucket aborts incomplete multipart uploads: "
            "the parts of an upload interrupted midway stay in the bucket, invisible and billed.",
            fix,
            warning=True,
        )
    return Step(True, f"{title}: a lifecycle rule removes their parts {days} day(s) after they began")


def _unread_step(title: str, what: str, error: Exception, action: str, fix: str, cfg: config.Config) -> Step:
    """The warning of a step whose bucket setting could not be read: the policy's fix when
    the app may not read it, else the step's own."""
    denied = error_code(error)[0] in ("AccessDenied", "403")
    return Step(
        True,
        title,
        f"{what} {explain(error, action=action, config=cfg).cause}",
        POLICY_FIX.format(action=action) if denied else fix,
        warning=True,
    )


def _browser_uploads_step(cfg: config.Config, backend: OperationsBackend) -> Step:
    """Whether the bucket's CORS rules let the site's pages send direct uploads to it.

    A warning, not a failure: without them the admin's file inputs still work, through Django
    (direct.js falls back when the browser is refused), only slower and within the worker's
    timeout."""
    title = "direct uploads from browsers (CORS)"
    site = cfg.base_url
    fix = (
        "`manage.py keyed_storage policy --only cors --origin https://your.site` prints a CORS "
        f"configuration, and `aws s3api put-bucket-cors --bucket {cfg.bucket} --cors-configuration "
        "file://cors.json` applies it (it replaces the bucket's CORS rules)."
    )
    try:
        allowed = {method: backend.browser_origins(method) or [] for method in policy.BROWSER_METHODS}
    except Exception as error:
        return _unread_step(
            title, "The bucket's CORS rules could not be read.", error, "s3:GetBucketCORS", fix, cfg
        )
    refused = [method for method, origins in allowed.items() if not _admits(origins, site)]
    if not refused:
        whom = site or ", ".join(sorted(set(allowed["POST"]) & set(allowed["PUT"])))
        return Step(True, f"{title}: POST and PUT allowed from {whom}")
    told = "; ".join(
        f"{method} from {', '.join(origins) or 'no origin'}" for method, origins in allowed.items()
    )
    return Step(
        True,
        title,
        f"The bucket's CORS rules allow {told}"
        + (f", not both from {site} (KEYED_STORAGE_BASE_URL)" if site else "")
        + ": browsers cannot send direct uploads to it, so file inputs upload through Django.",
        fix,
        warning=True,
    )


def _admits(origins: list[str], site: str | None) -> bool:
    if site is None:
        return bool(origins)  # no origin to compare with: some rule at least
    # S3 allows one '*' wildcard in an AllowedOrigin ('https://*.example.org').
    return any(fnmatch.fnmatchcase(site, origin) for origin in origins)


def _timed(step: Step, started: float, cfg: config.Config) -> Step:
    """`step`, a warning if S3 took more than SLOW_SHARE of the read timeout since `started`."""
    seconds = time.perf_counter() - started
    if cfg.backend != "s3" or not step.ok or step.warning or seconds <= cfg.read_timeout * SLOW_SHARE:
        return step
    return Step(
        True,
        f"{step.title} (slow: {seconds:.1f} s)",
        f"S3 took {seconds:.1f} s to answer, more than {SLOW_SHARE:.0%} of KEYED_STORAGE_READ_TIMEOUT="
        f"{cfg.read_timeout:g} s: a little slower and the app's requests fail with a timeout.",
        f"Check the network between here and {cfg.endpoint_url or 'Amazon S3'} and the service's load; "
        "if it is slow by nature, raise KEYED_STORAGE_READ_TIMEOUT.",
        warning=True,
    )


def _clock_step(server_time: datetime | None) -> Step:
    if server_time is None:
        return Step(True, "clock: the server sent no Date header to compare with")
    skew = clock() - server_time.timestamp()
    if abs(skew) >= MAX_SKEW:
        direction = "ahead of" if skew > 0 else "behind"
        return Step(
            False,
            "clock",
            f"This machine's clock is {abs(skew) / 60:.0f} minutes {direction} the server's; S3 refuses "
            "signed requests and presigned links 15 minutes off.",
            "Set the clock right, e.g. `timedatectl set-ntp true`.",
        )
    return Step(True, f"clock: within {max(1, round(abs(skew)))} s of the server's")


# Local disk --------------------------------------------------------------------------------


def _local_steps(cfg: config.Config) -> Iterator[Step]:
    root = cfg.media_root
    if not os.path.isdir(root):
        yield Step(
            False,
            f"MEDIA_ROOT {root} exists",
            "The directory does not exist (or is not a directory).",
            f"Create it as the user the site runs as: mkdir -p {root}",
        )
        return
    yield Step(True, f"MEDIA_ROOT {root} exists")
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".keyed-storage-doctor-"):
            pass
    except OSError as error:
        yield Step(
            False,
            f"MEDIA_ROOT {root} is writable",
            f"Writing a file there failed: {error.strerror}.",
            f"Give the user the site runs as write access: chown -R <user> {root}",
        )
        return
    yield Step(True, f"MEDIA_ROOT {root} is writable")
    yield _base_url_step(cfg)
    yield _direct_endpoint_step()
    yield from _probe_steps(cfg, backends.for_config(cfg), fetch_link=False)


def _base_url_step(cfg: config.Config) -> Step:
    if cfg.base_url:
        return Step(True, f"base URL for links: {cfg.base_url} (KEYED_STORAGE_BASE_URL)")
    if "://" in cfg.media_url:
        return Step(True, f"base URL for links: {cfg.media_url} (MEDIA_URL is absolute)")
    note = (
        "KEYED_STORAGE_BASE_URL is not set, so links made outside a request (jobs, emails, commands) "
        "raise NoOrigin."
    )
    if settings.DEBUG:
        return Step(True, "base URL for links: each request's origin; none outside a request (DEBUG)")
    return Step(False, "base URL for links", note, "Set KEYED_STORAGE_BASE_URL, e.g. https://example.org.")


# Both: a probe object through the app's own storage -------------------------------------------


def _probe_steps(cfg: config.Config, backend: Backend, *, fetch_link: bool = True) -> Iterator[Step]:
    from ..storage import KeyedStorage

    storage = KeyedStorage()
    body = f"keyed_storage doctor probe {secrets.token_hex(16)}\n".encode()
    name = object_name(PROBE_KEY, "probe.txt")
    started = time.perf_counter()
    try:
        name = storage.save(name, ContentFile(body))
    except Exception as error:
        yield Step.failed(f"PUT {name}", _explain_write(error, cfg))
        return
    yield _timed(Step(True, f"PUT {name} ({len(body)} bytes)"), started, cfg)
    if fetch_link:
        yield _get_step(storage.url(name), body, cfg)
    else:
        with storage.open(name) as stored:
            same = stored.read() == body
        cause = "" if same else "The bytes read back differ from those written."
        yield Step(same, f"read back {name}", cause, "" if same else "Check the disk.")
    started = time.perf_counter()
    yield _timed(_delete_step(storage, name, cfg), started, cfg)
    if cfg.backend == "local":
        try:
            os.rmdir(storage.path(PROBE_KEY))
        except OSError:
            pass  # not empty: another doctor is running, or someone stored files there


def _direct_upload_step(cfg: config.Config) -> Step:
    """A direct upload as a browser makes it (keyed_storage.direct): a ticket, a multipart POST
    of its fields and a probe file to the bucket, finish_upload(), then the probe deleted.

    It proves the service takes POST uploads under a signed policy (not all S3-compatible ones
    do) with this key and clock. Browsers also need the bucket's CORS to allow the site's
    origin, which only a browser can prove."""
    from ..direct.tickets import finish_upload, start_upload

    title = "direct upload (keyed_storage.direct): POST to the bucket, then finish_upload()"
    body = f"keyed_storage doctor direct-upload probe {secrets.token_hex(16)}\n".encode()
    try:
        ticket = start_upload(
            PROBE_KEY, filename="direct-probe.txt", size=len(body), content_type="text/plain"
        )
    except Exception as error:
        return Step.failed(title, explain(error, action="s3:PutObject", config=cfg))
    try:
        status, answer = _post_form(ticket.url, ticket.fields, body)
        if status not in (200, 201, 204):
            found = re.search(r"<Code>([^<]+)</Code>", answer)
            code = f" {found.group(1)}" if found else ""
            return Step(
                False,
                title,
                f"The bucket answered the POST with {status}{code}: browsers cannot upload to it directly.",
                "Check the clock and that AWS_KEY may s3:PutObject. Some S3-compatible services take "
                "no POST uploads at all: use normal uploads there.",
            )
        finish_upload(ticket.reference, key=PROBE_KEY)
    except Exception as error:
        return Step.failed(title, explain(error, action="s3:GetObject", config=cfg))
    finally:
        try:
            backends.storage_backend(cfg).delete(ticket.name)
        except Exception:
            pass  # the probe's own failure is the one to report
    return Step(True, f"{title}: {status}, checked and presented")


def _post_form(url: str, fields: dict[str, str], body: bytes) -> tuple[int, str]:
    """POST `fields` and then `body` as the file, multipart as a browser sends them: (status, text)."""
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="probe.txt"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url,
        data=b"".join(parts),
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=GET_TIMEOUT) as response:
            return response.status, response.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode("utf-8", "replace")


def _direct_endpoint_step() -> Step:
    """Local mode: keyed_storage's endpoint that receives direct uploads is routed."""
    from django.urls import NoReverseMatch, reverse

    title = "direct uploads: keyed_storage's endpoint is routed"
    try:
        path = reverse("keyed_storage:direct-upload", kwargs={"ticket": "TICKET"})
    except NoReverseMatch:
        return Step(
            False,
            title,
            "keyed_storage.urls is not in the project's URLconf, so local direct uploads have nowhere to go.",
            "Add path('', include('keyed_storage.urls')) to the URLconf (it also serves MEDIA_URL).",
        )
    return Step(True, f"{title} at {path}")


def _explain_write(error: Exception, cfg: config.Config) -> Diagnosis:
    if isinstance(error, OSError) and cfg.backend == "local":
        return Diagnosis(f"Writing failed: {error}.", f"Let the site's user write to {cfg.media_root}.")
    return explain(error, action="s3:PutObject", config=cfg)


def _get_step(url: str, body: bytes, cfg: config.Config) -> Step:
    kind = "presigned" if cfg.private else "anonymous"
    shown = url.split("?", 1)[0] + ("?<signature>" if "?" in url else "")
    title = f"GET {shown} ({kind}, the link the app hands out)"
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=GET_TIMEOUT) as response:
            got = response.read()
            caching = response.headers.get("Cache-Control")
    except urllib.error.HTTPError as error:
        text = error.read(2000).decode("utf-8", "replace")
        found = re.search(r"<Code>([^<]+)</Code>", text)
        return Step.failed(title, explain_get(error.code, found.group(1) if found else "", cfg))
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Step(
            False,
            title,
            f"The link's host cannot be reached: {reason}.",
            "Check AWS_ENDPOINT_URL_S3, KEYED_STORAGE_CUSTOM_DOMAIN and the network.",
        )
    if got != body:
        return Step(
            False,
            title,
            f"The link answered 200 but with other bytes ({len(got)} instead of {len(body)}).",
            "Check that KEYED_STORAGE_CUSTOM_DOMAIN or the endpoint serves this bucket.",
        )
    if caching != cfg.cache_control:
        return Step(
            False,
            title,
            f"The link answered 200 with the same bytes but Cache-Control {caching or '(none)'!r}, "
            f"not {cfg.cache_control!r}: browsers and CDNs will not keep uploads as long as they could.",
            "Check that the S3 service keeps an object's Cache-Control, and that a CDN in front "
            "(KEYED_STORAGE_CUSTOM_DOMAIN) passes it on rather than replacing it.",
        )
    return Step(True, f"{title}: 200, same bytes, Cache-Control {caching!r}")


def _delete_step(storage: KeyedStorage, name: str, cfg: config.Config) -> Step:
    try:
        storage.delete(name)
    except Exception as error:
        if isinstance(error, OSError) and cfg.backend == "local":
            cause = f"Deleting failed: {error}."
            return Step(False, f"DELETE {name}", cause, "Check MEDIA_ROOT's permissions.")
        return Step.failed(f"DELETE {name}", explain(error, action="s3:DeleteObject", config=cfg))
    return Step(True, f"DELETE {name}")
