"""The background-work rows of `make bench`: a 12-megapixel photo's save with its three variants
made in the request against one that hands all but the smallest to a worker (the request's
share, and the time until every variant is stored), the worker's throughput against Pillow
alone, and the demo admin's saves of an event with a logo, a background and five speaker photos.

The worker's side runs in this process: the tasks framework's DummyBackend keeps what a save
enqueues, so a save's time is the request's share alone, and the bench then runs the task
itself (tasks.make_variants.call), as a worker process would, right after the save.

    python benchmarks/bench.py --only background
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from benchmarks.common import row, use_local, use_s3
from benchmarks.images import ROOT, interleaved, ms, photo, pillow_alone, time_ratio, variants


@contextlib.contextmanager
def tasks_backend(name: str) -> Iterator[Any]:
    """TASKS['default'] is the framework's backend `name` for the block ('dummy': saves enqueue
    and nothing runs; 'immediate': the site without a worker); the backend, emptied."""
    from django.test import override_settings

    from keyed_storage import background

    framework = background.framework()
    assert framework is not None, "the background rows need django-tasks (Django 5.2) or Django 6"
    with contextlib.suppress(ImportError):  # its receiver resets the backends when TASKS changes
        importlib.import_module(f"{framework.__name__}.signals")
    backend = f"{framework.__name__}.backends.{name}.{name.title()}Backend"
    with override_settings(TASKS={"default": {"BACKEND": backend}}):
        chosen = background.backend()
        assert type(chosen).__name__ == f"{name.title()}Backend", background.describe()
        if name == "dummy":
            chosen.clear()
        yield chosen


def worker_model() -> type:
    """A KeyedImageField with the three variants and a pending_field, its table in memory."""
    from django.db import connection, models

    from keyed_storage import key_template
    from keyed_storage.fields import KeyedImageField

    class WithWorker(models.Model):
        image = KeyedImageField(
            upload_to=key_template("bench/worker/{id}/photo"),
            variants=variants(),
            width_field="width",
            height_field="height",
            pending_field="pending",
        )
        width = models.PositiveIntegerField(null=True)
        height = models.PositiveIntegerField(null=True)
        pending = models.JSONField(null=True, blank=True, editable=False)

        class Meta:
            app_label = "keyed_storage"

    with connection.schema_editor() as editor:
        editor.create_model(WithWorker)
    return WithWorker


def _save(model: type, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return model.objects.create(image=SimpleUploadedFile("photo.jpg", data, "image/jpeg"))


def in_request(model: type, data: bytes) -> None:
    with tasks_backend("immediate"):
        _save(model, data)


def handed_over(model: type, data: bytes) -> list[tuple[Any, ...]]:
    """The save with a worker; the arguments of the make_variants task it enqueued."""
    with tasks_backend("dummy") as queue:
        _save(model, data)
        return [tuple(r.args) for r in queue.results if r.task.name == "make_variants"]


def save_and_work(model: type, data: bytes) -> None:
    """The save, then the task it enqueued, run at once as an idle worker would."""
    from keyed_storage import tasks

    [args] = handed_over(model, data)
    assert tasks.make_variants.call(*args).startswith("made 2 variants")


def bench_request_share(model: type, data: bytes, rounds: int, where: str) -> None:
    """(a) the request's time with a worker against all in the request; (b) until all are stored."""
    in_request(model, data), handed_over(model, data)  # first use: the client, Pillow's plugins
    mine, other = interleaved(lambda: handed_over(model, data), lambda: in_request(model, data), rounds)
    row(
        f"request: save a 12 MP photo + 3 variants, a worker makes 2, {where}",
        ms(mine),
        ms(other),
        "all 3 made in the request",
        time_ratio(mine, other),
    )
    mine, other = interleaved(lambda: save_and_work(model, data), lambda: in_request(model, data), rounds)
    row(
        f"until all 3 are stored: the save, then its task run at once in-process, {where}",
        ms(mine),
        ms(other),
        "all 3 made in the request",
        time_ratio(mine, other),
    )


def pillow_worker(data: bytes) -> dict[str, bytes]:
    """What the worker makes (every variant but the smallest), with Pillow alone as
    images.pillow_alone writes it."""
    return pillow_alone(data, ("card", "hero"))


def bench_worker(model: type, data: bytes, rounds: int, where: str) -> None:
    """(c) images a worker makes the variants of per second (the task: the row, one read of the
    original from the storage, two variants rendered and stored, the row updated) against
    Pillow alone making the same two from bytes in memory."""
    from keyed_storage import tasks

    pending = [args for _ in range(rounds + 1) for args in handed_over(model, data)]
    tasks.make_variants.call(*pending.pop())  # first use
    pillow_worker(data)
    mine, other = interleaved(
        lambda: tasks.make_variants.call(*pending.pop()), lambda: pillow_worker(data), rounds
    )
    row(
        f"worker: make_variants task, 12 MP JPEG -> 2 variants, {where}",
        f"{1 / mine:.2f} images/s",
        f"{1 / other:.2f} images/s",
        "Pillow alone, same 2 outputs",
        f"{other / mine:.2f}x its throughput",
    )


def run(endpoint: str, bucket: str, *, quick: bool) -> None:
    data = photo()
    model = worker_model()
    rounds = 3 if quick else 5
    for where, configure in (("local", use_local), ("S3", lambda: use_s3(endpoint, bucket))):
        configure()
        bench_request_share(model, data, rounds, where)
        bench_worker(model, data, rounds, where)
    bench_admin(data, endpoint, bucket, rounds=2 if quick else 3)


def bench_admin(data: bytes, endpoint: str, bucket: str, rounds: int) -> None:
    """(d) the demo admin's saves of an event with a logo and a background and of five speakers
    with a photo each (seven 12 MP photos, seven requests through Django's test client, in a
    process of its own with the demo's settings), with a worker against all in the request."""
    from benchmarks.common import KEY, SECRET

    place = tempfile.mkdtemp(prefix="keyed-bench-admin-")
    with open(os.path.join(place, "photo.jpg"), "wb") as file:
        file.write(data)
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in ("BUCKET_NAME", "AWS_KEY", "AWS_SECRET", "AWS_ENDPOINT_URL_S3", "KEYED_STORAGE_PRIVATE")
    }
    base.update(
        DJANGO_SETTINGS_MODULE="testproject.settings",
        PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "testproject")]),
        KEYED_STORAGE_BASE_URL="https://example.org",
    )
    s3 = dict(
        BUCKET_NAME=bucket,
        AWS_KEY=KEY,
        AWS_SECRET=SECRET,
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_REGION="us-east-1",
    )
    for where, extra in (("local", {}), ("S3", s3)):
        env = {
            **base,
            **extra,
            "DEMO_DB": os.path.join(place, f"{where}.sqlite3"),
            "DEMO_MEDIA_ROOT": os.path.join(place, "media"),
        }
        done = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", "admin_child.py"), file.name, str(rounds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        times = json.loads(done.stdout.strip().splitlines()[-1])
        row(
            f"demo admin: an event (logo, background) + 5 speaker photos, 7 saves, {where}",
            ms(times["dummy"]),
            ms(times["immediate"]),
            "all variants made in the request",
            time_ratio(times["dummy"], times["immediate"]),
        )
    shutil.rmtree(place, ignore_errors=True)
