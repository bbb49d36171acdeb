"""Run by benchmarks/background.py in a process of its own, with the demo's settings: the admin's
saves of an event with a logo and a background, then five speakers with a photo each, through
Django's test client (the whole request in this process: forms, validation, the save in its
transaction), with the variants made in the request and then with a worker's backend.

    python benchmarks/admin_child.py PHOTO ROUNDS  ->  one JSON line of median seconds
"""

from __future__ import annotations

import contextlib
import importlib
import json
import statistics
import sys
import time


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client, override_settings
    from django.test.utils import setup_test_environment

    from keyed_storage import background

    setup_test_environment()  # the test client's host, 'testserver', is allowed
    call_command("migrate", verbosity=0, interactive=False)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bench", "bench@example.org", "pw"))
    with open(sys.argv[1], "rb") as file:
        data = file.read()
    rounds = int(sys.argv[2])
    framework = background.framework()
    assert framework is not None
    with contextlib.suppress(ImportError):  # its receiver resets the backends when TASKS changes
        importlib.import_module(f"{framework.__name__}.signals")
    backends = {
        way: f"{framework.__name__}.backends.{way}.{way.title()}Backend" for way in ("immediate", "dummy")
    }
    samples: dict[str, list[float]] = {"immediate": [], "dummy": []}
    for _ in range(rounds + 1):  # the first round: first use of everything, not counted
        for way, backend in backends.items():
            with override_settings(TASKS={"default": {"BACKEND": backend}}):
                assert (way == "dummy") == background.in_background(), background.describe()
                samples[way].append(saves(client, data))
    print(json.dumps({way: statistics.median(times[1:]) for way, times in samples.items()}))


def saves(client, data: bytes) -> float:
    """Seconds the admin's seven saves take: the event with two pictures, five speakers."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from events.models import Event

    def picture(name: str) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, data, "image/jpeg")

    start = time.perf_counter()
    event = {"name": "Bench", "description": "", "logo": picture("logo.jpg"), "background": picture("bg.jpg")}
    inline = {"sessions-TOTAL_FORMS": "0", "sessions-INITIAL_FORMS": "0"}
    answer = client.post("/admin/events/event/add/", {**event, **inline})
    assert answer.status_code == 302, answer.content.decode()[:3000]
    pk = Event.objects.latest("pk").pk
    for number in range(5):
        speaker = {"event": pk, "name": f"Speaker {number}", "photo": picture(f"speaker{number}.jpg")}
        answer = client.post("/admin/events/speaker/add/", speaker)
        assert answer.status_code == 302, answer.content.decode()[:3000]
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
