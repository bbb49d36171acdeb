"""The file lifecycle as a state machine: bugs live between features, where per-feature tests do not look.

Hypothesis drives a RuleBasedStateMachine over every field shape of tests/lifecycle.py's Item
(a FileField, KeyedImageFields with and without variants and dimension fields, a shared
default, rows copied with pk=None) and the demo's Session through the admin, and over every
way a file enters, changes and leaves: field_file.save() with a ContentFile, a File over a
temporary file or an UploadedFile; a ModelForm; the admin's forms over Django's test client;
upload(); direct uploads, single and multipart, finished once, twice or never; clearing,
deleting, queryset deletes; rollbacks of any of these; a form sent twice; a storage call
failing once; in S3 mode, a step whose requests of one kind (PUT, GET, ...) time out, are
cut mid-answer or answered 500 (tests/faulty_proxy.py); and the operations (orphans with and
without a grace period, variants, sync, delete-prefix of an unrelated key).

After every step, on-commit work having run (the transactions are real, so rollbacks are
too), the invariant: every committed row's file and its variants exist and hold the bytes
saved, its dimension fields say the image's size, nothing a row names was deleted, and
nothing a replaced, deleted or rolled-back row held is still stored. A few steps fetch every
link over HTTP. No request answers 500.

`make test` runs a bounded number of examples; KEYED_STORAGE_SOAK=1 (`make soak`) runs many.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.forms import modelform_factory
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from PIL import Image

import keyed_storage
from events.models import Event, Session
from keyed_storage import KeyedStorage, backends, background, config
from keyed_storage.direct.multipart import part_urls
from keyed_storage.direct.tickets import finish_upload, start_upload
from keyed_storage.exceptions import FileRefused, StorageError
from keyed_storage.images.variants import is_variant_of, variants_prefix
from keyed_storage.keys import KeyNeedsValue

from ..faulty_proxy import SHORT_TIMEOUTS, FaultyProxy
from ..helpers import wav_bytes
from ..tasks_helpers import DUMMY
from .machine import DEFAULT, DEFAULT_BYTES, FIELDS, IMAGE_FIELDS, Held, damaged_png, item_model, png

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    # A hang detector, not a time limit: a failure is shrunk for up to 5 minutes (hypothesis's
    # own bound) after the examples ran; a soak runs as long as it is asked to.
    pytest.mark.timeout(0 if os.environ.get("KEYED_STORAGE_SOAK", "") not in ("", "0") else 900),
]

SOAK = os.environ.get("KEYED_STORAGE_SOAK", "") not in ("", "0")
MACHINE_SETTINGS = settings(
    max_examples=300 if SOAK else 12,
    stateful_step_count=40 if SOAK else 15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

PART = 5 * 1024 * 1024  # S3's smallest part: multipart tickets from this size on
LOOSE_KEYS = ("first", "second")  # upload()'s keys (under lifecycle-loose/<example>/), no field's
FAULTY_METHODS = ("store", "delete", "delete_many", "publish", "head", "open")
COLORS = ("red", "teal", "navy", "gold", "white")
# Network faults (S3 mode): which requests the proxy faults (path-style request lines), and the
# short timeouts of tests/backends/test_timeouts.py, so a silent server costs ~1 s an attempt.
# b"": every request of the step (an unreachable server); twice, as most steps send few kinds.
TRIGGERS = (b"", b"", b"PUT ", b"GET ", b"POST ", b"DELETE", b"HEAD ")
# Each costs seconds of timeouts: one an example in `make test`, as many as drawn in a soak.
NETWORK_FAULTS_PER_EXAMPLE = 1000 if SOAK else 1

picks = st.integers(min_value=0, max_value=10**6)
kinds = st.sampled_from(("content", "tempfile", "upload"))
payloads = st.tuples(
    st.integers(min_value=4, max_value=48),
    st.integers(min_value=4, max_value=48),
    st.sampled_from(COLORS),
    st.binary(min_size=0, max_size=24),
)


class Rollback(Exception):
    """Raised inside a step's transaction to roll it back, as a failing request would."""


def data_for(field_name: str, payload: tuple[int, int, str, bytes]) -> tuple[bytes, tuple[int, int] | None]:
    width, height, color, noise = payload
    if field_name in IMAGE_FIELDS:
        return png(width, height, color), (width, height)
    return b"lifecycle document\n" + noise, None


def filename_for(field_name: str) -> str:
    return f"{field_name}.png" if field_name in IMAGE_FIELDS else f"{field_name}.bin"


def content(kind: str, data: bytes, filename: str) -> File[Any]:
    """The file in one of the shapes a file arrives in."""
    if kind == "content":
        return ContentFile(data, name=filename)
    if kind == "upload":
        return SimpleUploadedFile(filename, data, content_type="application/octet-stream")
    spooled = tempfile.TemporaryFile()
    spooled.write(data)
    spooled.seek(0)
    return File(spooled, name=filename)


@dataclass
class Direct:
    """One direct upload the machine started: its ticket, bytes, and what finishing gave."""

    ticket: Any
    key: str
    data: bytes
    target: str  # the Item field it is for
    size: tuple[int, int] | None
    finished: str | None = None  # the name the first finish returned
    ready: list[str] = field(default_factory=list)  # finish results not yet set on a row
    aged: bool = False  # its upload's mtime moved back past the orphans grace (local mode)
    gone: bool = False  # orphans may have removed it: finishing it may fail


@dataclass(frozen=True)
class NetworkFault:
    """For a step the storage reaches S3 through a FaultyProxy faulting requests that start
    with `trigger` (the next step that sends such a request)."""

    mode: str  # "silent" (a read timeout), "cut" (after `cut_after` bytes) or "error" (a 500)
    trigger: bytes
    cut_after: int = 0


class Fired(list[str]):
    """The faults that fired in a step: a backend method's, or the network fault's once its
    proxy faulted a request (known as soon as it did, so while the step is still failing)."""

    proxy: FaultyProxy | None = None
    upstream: str = ""  # the real S3 endpoint, behind the proxy

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.proxy and self.proxy.faults)

    def excuses(self, error: BaseException) -> bool:
        """Whether `error` is what the fault may cause: anything for an injected OSError (the
        library passes it on as it comes); for a network fault only what the docs promise,
        a StorageError, a refusal (FileRefused, UploadBroken: ValidationErrors), or from a
        command the CommandError it reports a StorageError with."""
        if not self:
            return False
        promised = (StorageError, ValidationError, CommandError)
        return not (self.proxy and self.proxy.faults) or isinstance(error, promised)


class Lifecycle(RuleBasedStateMachine):
    """Set up by test_the_file_lifecycle (class attributes), one instance per example."""

    Item: Any = None
    client: Any = None
    mode = "local"
    http_every = 5

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[int, dict[str, Held | None]] = {}
        self.sessions: dict[int, Held | None] = {}
        self.retired: set[str] = set()  # names a row let go of, or a rolled-back save stored
        self.leaked: set[str] = set()  # retired while a fault stopped their clean-up
        self.unclaimed: dict[str, bytes] = {}  # finished direct uploads no row names yet
        self.loose: dict[str, Held] = {}
        self.logo: Held | None = None  # the example's Event's logo
        self.directs: list[Direct] = []
        self.fault: str | NetworkFault | None = None
        self.network_faults = 0  # armed in this example
        self.steps = 0
        self.example = uuid.uuid4().hex[:12]
        self.queued = False

    # Setting up each example ------------------------------------------------------------------

    @initialize(queued=st.booleans())
    def fresh_world(self, queued: bool) -> None:
        """An empty world; in half the examples, work goes to a task queue the `worker` rule
        runs from (a DummyBackend: the tasks run in this process when the machine says)."""
        self.queued = queued
        if queued:
            self.tasks_setting = override_settings(TASKS={"default": {"BACKEND": DUMMY}})
            self.tasks_setting.enable()
            background.backend().clear()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {self.Item._meta.db_table}")
        Session.objects.all()._raw_delete(using="default")
        Event.objects.all()._raw_delete(using="default")
        self.event = Event.objects.create(name="Lifecycle Con")
        KeyedStorage().save(DEFAULT, ContentFile(DEFAULT_BYTES), overwrite=True)

    def teardown(self) -> None:
        if self.queued:
            self.tasks_setting.disable()

    # Helpers ---------------------------------------------------------------------------------

    @contextmanager
    def faults(self) -> Iterator[Fired]:
        """Arm the chosen fault for one step: the backend's method raises on its next call,
        or the storage's S3 client goes through a faulty proxy (presigned URLs given to the
        test's own requests are pointed back at the real server: the fault is the app's), and
        again for the next step if no request met it."""
        fired = Fired()
        method, self.fault = self.fault, None
        if method is None:
            yield fired
            return
        if isinstance(method, NetworkFault):
            fired.upstream = os.environ["AWS_ENDPOINT_URL_S3"]
            fired.proxy = FaultyProxy(
                fired.upstream, method.mode, trigger=method.trigger, cut_after=method.cut_after
            ).start()
            try:
                with pytest.MonkeyPatch.context() as patch:
                    patch.setenv("AWS_ENDPOINT_URL_S3", fired.proxy.endpoint)
                    for variable, value in SHORT_TIMEOUTS.items():
                        patch.setenv(variable, value)
                    config.reset()
                    yield fired
            finally:
                fired.proxy.stop()
                config.reset()
                if not fired and self.fault is None:
                    self.fault = method  # armed until a step sends a request it faults
            return
        backend = backends.for_config(config.current())
        real = getattr(backend, method)

        def once(*args: Any, **kwargs: Any) -> Any:
            if not fired:
                fired.append(method)
                setattr(backend, method, real)
                raise OSError(f"injected fault: {method}() failed")
            return real(*args, **kwargs)

        setattr(backend, method, once)
        try:
            yield fired
        finally:
            vars(backend).pop(method, None)

    def run(
        self, work: Callable[[], Any], rollback: bool, *, atomic: bool = True
    ) -> tuple[str, Any, list[str]]:
        """Run `work` in a transaction (or, not `atomic`, as a task worker runs a task: in
        autocommit): "committed", "rolled back" (as asked), or "failed" (a fault fired and the
        step raised). An exception with no fault is a bug: it escapes."""
        with self.faults() as fired:
            try:
                with transaction.atomic() if atomic else contextlib.nullcontext():
                    result = work()
                    if rollback:
                        raise Rollback
            except Rollback:
                return "rolled back", None, fired
            except Exception as error:
                if fired.excuses(error):
                    return "failed", None, fired
                raise
        return "committed", result, fired

    def let_go(self, names: list[str | None], fired: list[str]) -> None:
        """Names a step stopped using: gone once nothing else names them (checked later)."""
        for name in names:
            if name and name != DEFAULT:
                (self.leaked if fired else self.retired).add(name)

    def item_pk(self, pick: int) -> int:
        return sorted(self.items)[pick % len(self.items)]

    def fields_of(self, held: dict[str, Held | None]) -> list[str | None]:
        return [h.name if h else None for h in held.values()]

    # Files entering: field_file.save(), assignment, forms -----------------------------------

    @rule(
        chosen=st.sets(st.sampled_from(FIELDS)),
        payload=payloads,
        kind=kinds,
        by_field_save=st.booleans(),
        rollback=st.booleans(),
    )
    def create_item(
        self,
        chosen: set[str],
        payload: tuple[int, int, str, bytes],
        kind: str,
        by_field_save: bool,
        rollback: bool,
    ):
        """A new row with files assigned to its fields, then save(): the row is inserted
        first, for the id its keys need, then its files are stored.

        field_file.save() on the unsaved instance instead refuses (KeyNeedsValue) before
        anything is stored or inserted: that path cannot give the key its id."""
        item = self.Item()
        expected: dict[str, Held | None] = dict.fromkeys(FIELDS)
        expected["shared"] = Held(DEFAULT, DEFAULT_BYTES)
        for name in sorted(chosen):
            data, size = data_for(name, payload)
            expected[name] = Held("", data, size)
            if not by_field_save:
                setattr(item, name, content(kind, data, filename_for(name)))
        if by_field_save and chosen:
            name = min(chosen)
            with pytest.raises(KeyNeedsValue):
                getattr(item, name).save(filename_for(name), content(kind, data_for(name, payload)[0], "x"))
            assert item.pk is None
            return

        outcome, _, fired = self.run(item.save, rollback)
        stored = {name: getattr(item, name).name for name in chosen}
        if outcome == "committed":
            self.items[item.pk] = {
                name: Held(stored[name], held.data, held.size) if name in chosen and held else held
                for name, held in expected.items()
            }
        else:
            self.let_go(list(stored.values()), fired or [outcome])

    @precondition(lambda self: self.items)
    @rule(pick=picks, name=st.sampled_from(FIELDS), payload=payloads, kind=kinds, rollback=st.booleans())
    def save_file(
        self, pick: int, name: str, payload: tuple[int, int, str, bytes], kind: str, rollback: bool
    ):
        pk = self.item_pk(pick)
        item = self.Item.objects.get(pk=pk)
        data, size = data_for(name, payload)
        outcome, _, fired = self.run(
            lambda: getattr(item, name).save(filename_for(name), content(kind, data, filename_for(name))),
            rollback,
        )
        self.settle(pk, name, getattr(item, name).name, data, size, outcome, fired)

    def settle(self, pk: int, name: str, new: str, data: bytes, size: Any, outcome: str, fired: list[str]):
        old = self.items[pk][name]
        if outcome == "committed":
            self.items[pk][name] = Held(new, data, size)
            self.let_go([old.name if old else None], fired)
        elif new and new != (old.name if old else None):
            self.let_go([new], fired or [outcome])

    @precondition(lambda self: self.items)
    @rule(
        pick=picks,
        name=st.sampled_from(FIELDS),
        payload=payloads,
        damage=st.sampled_from((None, None, "truncated", "flipped", "checksum")),
        rollback=st.booleans(),
    )
    def post_form(self, pick: int, name: str, payload, damage: str | None, rollback: bool):
        pk = self.item_pk(pick)
        item = self.Item.objects.get(pk=pk)
        data, size = data_for(name, payload)
        if damage:
            data, size = damaged_png(damage), None
        form = modelform_factory(self.Item, fields=[name])(
            {}, {name: SimpleUploadedFile(filename_for(name), data)}, instance=item
        )
        valid = form.is_valid()
        if damage and name in IMAGE_FIELDS:
            assert not valid, f"a {damage} PNG passed {name}'s form: {form.errors}"
            return
        assert valid, form.errors
        outcome, _, fired = self.run(form.save, rollback)
        self.settle(pk, name, getattr(item, name).name, data, size, outcome, fired)

    @precondition(lambda self: self.items)
    @rule(
        pick=picks,
        name=st.sampled_from(IMAGE_FIELDS),
        damage=st.sampled_from(("truncated", "flipped", "checksum")),
    )
    def save_damaged_image(self, pick: int, name: str, damage: str):
        """field_file.save() of a broken picture: refused (a ValidationError) or stored as it
        is, never another exception, and the row keeps what it had when refused."""
        pk = self.item_pk(pick)
        item = self.Item.objects.get(pk=pk)
        data = damaged_png(damage)
        try:
            outcome, _, fired = self.run(
                lambda: getattr(item, name).save(filename_for(name), ContentFile(data)), rollback=False
            )
        except ValidationError:
            return
        self.settle(pk, name, getattr(item, name).name, data, None, outcome, fired)

    @precondition(lambda self: self.items)
    @rule(pick=picks, name=st.sampled_from(FIELDS), payload=payloads, first_commits=st.booleans())
    def post_form_twice(self, pick: int, name: str, payload, first_commits: bool):
        """The same form sent twice (a double click): both requests loaded the row before
        either saved; one commits, the other rolls back after it."""
        pk = self.item_pk(pick)
        data, size = data_for(name, payload)
        Form = modelform_factory(self.Item, fields=[name])
        instances = [self.Item.objects.get(pk=pk), self.Item.objects.get(pk=pk)]
        forms = [
            Form({}, {name: SimpleUploadedFile(filename_for(name), data)}, instance=i) for i in instances
        ]
        assert all(form.is_valid() for form in forms)
        # The committed one first and the rolled-back one after it, or the other way round.
        for form, instance, rollback in zip(
            forms, instances, (not first_commits, first_commits), strict=True
        ):
            outcome, _, fired = self.run(form.save, rollback)
            self.settle(pk, name, getattr(instance, name).name, data, size, outcome, fired)

    # Files leaving: clear, delete, queryset delete; rows copied ------------------------------

    @precondition(lambda self: self.items)
    @rule(pick=picks, name=st.sampled_from(FIELDS), by_form=st.booleans(), rollback=st.booleans())
    def clear(self, pick: int, name: str, by_form: bool, rollback: bool):
        pk = self.item_pk(pick)
        item = self.Item.objects.get(pk=pk)
        if by_form:
            form = modelform_factory(self.Item, fields=[name])({f"{name}-clear": "on"}, {}, instance=item)
            assert form.is_valid(), form.errors
            work: Callable[[], Any] = form.save
        else:
            setattr(item, name, None)
            work = item.save
        outcome, _, fired = self.run(work, rollback)
        if outcome == "committed":
            old = self.items[pk][name]
            self.items[pk][name] = None
            self.let_go([old.name if old else None], fired)

    @precondition(lambda self: self.items)
    @rule(pick=picks, rollback=st.booleans())
    def delete_item(self, pick: int, rollback: bool):
        pk = self.item_pk(pick)
        outcome, _, fired = self.run(self.Item.objects.get(pk=pk).delete, rollback)
        if outcome == "committed":
            self.let_go(self.fields_of(self.items.pop(pk)), fired)

    @precondition(lambda self: self.items)
    @rule(chosen=st.sets(picks, min_size=1, max_size=3), rollback=st.booleans())
    def delete_queryset(self, chosen: set[int], rollback: bool):
        pks = {self.item_pk(pick) for pick in chosen}
        outcome, _, fired = self.run(lambda: self.Item.objects.filter(pk__in=pks).delete(), rollback)
        if outcome == "committed":
            for pk in pks:
                self.let_go(self.fields_of(self.items.pop(pk)), fired)

    @precondition(lambda self: self.items)
    @rule(pick=picks, rollback=st.booleans())
    def copy_item(self, pick: int, rollback: bool):
        """A copy with pk = None (the admin's "Save as new"): it shares every file."""
        pk = self.item_pk(pick)
        copy = self.Item.objects.get(pk=pk)
        copy.pk = None
        copy._state.adding = True
        outcome, _, _ = self.run(copy.save, rollback)
        if outcome == "committed":
            self.items[copy.pk] = dict(self.items[pk])

    # upload() ---------------------------------------------------------------------------------

    @rule(slot=st.sampled_from(LOOSE_KEYS), payload=payloads, kind=kinds)
    def upload_to_key(self, slot: str, payload, kind: str):
        # Keys of this example's own: earlier examples' objects are not this one's to judge.
        slot = f"lifecycle-loose/{self.example}/{slot}"
        data = b"loose upload\n" + payload[3]
        outcome, url, fired = self.run(
            lambda: keyed_storage.upload(content(kind, data, "loose.bin"), slot), False
        )
        if outcome == "committed":
            name = f"{slot}/{url.rsplit(slot + '/', 1)[1]}"
            old = self.loose.get(slot)
            self.loose[slot] = Held(name, data)
            self.let_go([old.name if old else None], fired)

    # Direct uploads ---------------------------------------------------------------------------

    @precondition(lambda self: self.items)
    @rule(
        pick=picks,
        into=st.sampled_from(("doc", "doc", "picture", "sketch")),
        payload=payloads,
        multipart=st.sampled_from((False,) * 5 + (True,)),
        damage=st.sampled_from((None, None, None, "truncated", "flipped", "checksum")),
    )
    def direct_start(self, pick: int, into: str, payload, multipart: bool, damage: str | None):
        """start_upload() and the client's POST (or its part PUTs) to the ticket's URLs: a
        document (a few MiB in parts, sometimes) or a picture, maybe a damaged one, for an
        image field."""
        key = f"lifecycle/{self.item_pk(pick)}/{into}"
        data, size = data_for(into, payload)
        if into == "doc":
            data = b"direct upload\n" + payload[3]
        elif damage:
            data, size = damaged_png(damage), None
        if multipart and into == "doc":
            data = (data * (PART // len(data) + 2))[: PART + 1000 + len(payload[3])]
        with self.faults() as fired:
            try:
                ticket = start_upload(key, filename="direct.bin", size=len(data), content_type="")
            except Exception as error:
                if fired.excuses(error):
                    return
                raise
        if ticket.parts:
            urls = part_urls(ticket.reference, range(1, ticket.parts + 1))
            for number, url in urls.items():
                body = data[(number - 1) * ticket.part_size : number * ticket.part_size]
                answer = requests.put(url, data=body, timeout=60)
                assert answer.status_code == 200, f"part {number}: {answer.status_code} {answer.text[:300]}"
        else:
            url = ticket.url.replace(fired.proxy.endpoint, fired.upstream) if fired.proxy else ticket.url
            answer = requests.post(url, data=ticket.fields, files={"file": ("direct.bin", data)}, timeout=30)
            assert answer.status_code in (200, 201, 204), f"{answer.status_code} {answer.text[:300]}"
        self.directs.append(Direct(ticket, key, data, into, size))

    @precondition(lambda self: self.directs)
    @rule(pick=picks)
    def direct_finish(self, pick: int):
        """finish_upload(): the first time, or again (the same name, or refused if it went)."""
        direct = self.directs[pick % len(self.directs)]
        gone_ok = direct.gone or (direct.finished is not None and not self.expected_stored(direct.finished))
        with self.faults() as fired:
            try:
                name = finish_upload(direct.ticket.reference, key=direct.key)
            except FileRefused:
                if fired or gone_ok:
                    self.directs.remove(direct)
                    return
                raise
            except Exception as error:
                if fired.excuses(error):
                    self.directs.remove(direct)  # half done: no longer modelled
                    return
                raise
        assert name == direct.ticket.name
        if direct.finished is None:
            direct.finished = name
            self.unclaimed[name] = direct.data
        direct.ready.append(name)

    @precondition(lambda self: self.items and any(direct.ready for direct in self.directs))
    @rule(pick=picks, which=picks, rollback=st.booleans())
    def direct_attach(self, pick: int, which: int, rollback: bool):
        """The finished name set on a row's field and saved, as the docs show; for an image
        field its variants are stored first (store_variants(), as the direct-upload form does)."""
        ready = [direct for direct in self.directs if direct.ready]
        direct = ready[which % len(ready)]
        name = direct.ready.pop(0)
        pk, target = self.item_pk(pick), direct.target
        item = self.Item.objects.get(pk=pk)
        setattr(item, target, name)

        def attach() -> None:
            if target in IMAGE_FIELDS:
                getattr(item, target).store_variants()
            item.save()

        try:
            outcome, _, fired = self.run(attach, rollback)
        except ValidationError:
            # A damaged picture is refused, and store_variants() removes it, variants and all.
            if target not in IMAGE_FIELDS or direct.size is not None:
                raise
            if name not in self.live_names():
                self.unclaimed.pop(name, None)
                self.retired.add(name)
            return
        old = self.items[pk][target]
        if outcome == "committed":
            self.items[pk][target] = Held(name, direct.data, direct.size)
            self.unclaimed.pop(name, None)
            self.let_go([old.name if old and old.name != name else None], fired)
        elif fired and name not in self.live_names():
            # A failed variant write removes the original it was for; anything else may not.
            self.unclaimed.pop(name, None)
            self.leaked.add(name)
        elif type(name) is not str and (not old or old.name != name):
            # The first finish's name belongs to the save that sets it: a rollback removes it.
            self.unclaimed.pop(name, None)
            self.let_go([name], fired or [outcome])

    @precondition(
        lambda self: self.mode == "local" and any(d.ticket.url and not d.finished for d in self.directs)
    )
    @rule(pick=picks)
    def age_upload(self, pick: int):
        """A POSTed upload left unfinished for two hours (its mtime moved back)."""
        pending = [direct for direct in self.directs if direct.ticket.url and not direct.finished]
        direct = pending[pick % len(pending)]
        path = os.path.join(config.current().media_root, direct.ticket.fields["key"])
        if os.path.exists(path):
            past = os.stat(path).st_mtime - 2 * 3600
            os.utime(path, (past, past))
            direct.aged = True

    # The admin over HTTP (Django's test client): the demo's Session.audio --------------------

    def admin_post(self, url: str, fields: dict[str, Any]) -> tuple[Any, list[str]]:
        """POST through the test client: a storage fault may make it fail (a 500 in production,
        an exception here); nothing else may."""
        with self.faults() as fired:
            try:
                answer = self.client.post(url, fields)
            except Exception as error:
                if fired.excuses(error):
                    return None, fired
                raise
        assert answer.status_code != 500 or fired, answer.content.decode()[:2000]
        return answer, fired

    @rule(frames=st.integers(min_value=1, max_value=400))
    def admin_add_session(self, frames: int):
        data = wav_bytes(frames)
        before = set(Session.objects.values_list("pk", flat=True))
        fields = {"event": self.event.pk, "title": "Talk", "_save": "Save"}
        answer, fired = self.admin_post(
            "/admin/events/session/add/", {**fields, "audio": SimpleUploadedFile("talk.wav", data)}
        )
        if answer is None or (fired and answer.status_code != 302):
            return
        assert answer.status_code == 302, answer.content.decode()[:2000]
        (session,) = Session.objects.exclude(pk__in=before)
        self.sessions[session.pk] = Held(session.audio.name, data)

    @precondition(lambda self: self.sessions)
    @rule(pick=picks, frames=st.integers(min_value=0, max_value=400))
    def admin_change_session(self, pick: int, frames: int):
        """A new recording (frames > 0) or the clear checkbox (0) on the change form."""
        pk = sorted(self.sessions)[pick % len(self.sessions)]
        data = wav_bytes(frames)
        fields: dict[str, Any] = {"event": self.event.pk, "title": "Talk", "_save": "Save"}
        if frames:
            fields["audio"] = SimpleUploadedFile("talk.wav", data)
        else:
            fields["audio-clear"] = "on"
        answer, fired = self.admin_post(f"/admin/events/session/{pk}/change/", fields)
        if answer is None or (fired and answer.status_code != 302):
            return
        assert answer.status_code == 302, answer.content.decode()[:2000]
        old = self.sessions[pk]
        session = Session.objects.get(pk=pk)
        self.sessions[pk] = Held(session.audio.name, data) if frames else None
        self.let_go([old.name if old else None], fired)

    @precondition(lambda self: self.sessions)
    @rule(pick=picks)
    def admin_delete_session(self, pick: int):
        pk = sorted(self.sessions)[pick % len(self.sessions)]
        answer, fired = self.admin_post(f"/admin/events/session/{pk}/delete/", {"post": "yes"})
        if answer is None or (fired and answer.status_code != 302):
            return
        assert answer.status_code == 302, answer.content.decode()[:2000]
        old = self.sessions.pop(pk)
        self.let_go([old.name if old else None], fired)

    @rule(payload=payloads, how=st.sampled_from(("field_save", "form", "clear")), rollback=st.booleans())
    def event_logo(self, payload: tuple[int, int, str, bytes], how: str, rollback: bool):
        """The demo's Event.logo: variants, dimension fields and validators, on a model imported
        before keyed_storage connected its receivers, as every project's models are."""
        event = Event.objects.get(pk=self.event.pk)
        width, height, color, _ = payload
        data = png(width, height, color)
        work: Callable[[], Any]
        if how == "field_save":
            work = lambda: event.logo.save("logo.png", ContentFile(data))  # noqa: E731
        elif how == "form":
            form = modelform_factory(Event, fields=["name", "logo"])(
                {"name": event.name}, {"logo": SimpleUploadedFile("logo.png", data)}, instance=event
            )
            assert form.is_valid(), form.errors
            work = form.save
        else:
            event.logo = None
            work = event.save
        outcome, _, fired = self.run(work, rollback)
        old, new = self.logo, event.logo.name
        if outcome == "committed":
            self.logo = Held(new, data, (width, height)) if how != "clear" else None
            self.let_go([old.name if old and old.name != new else None], fired)
        elif new and (not old or new != old.name):
            self.let_go([new], fired or [outcome])

    # The task worker (examples with a queue) ------------------------------------------------

    def queue(self) -> list[Any]:
        return background.backend().results if self.queued else []

    def queued_args(self, task: str) -> list[tuple[Any, ...]]:
        """The arguments of the queued runs of `task`, without their try number."""
        return [_without_try(result.args) for result in self.queue() if result.task.name == task]

    @precondition(lambda self: self.queued and self.queue())
    @rule(chosen=st.lists(picks, min_size=1, max_size=4), again=st.booleans())
    def worker(self, chosen: list[int], again: bool):
        """The worker runs some queued tasks in any order, late; `again` runs each twice (a
        duplicate delivery, or a retry racing the first try). Work whose last try fails is
        left undone: its files are leaked (found by `orphans`), its variants stay stand-ins."""
        for pick in chosen:
            queue = self.queue()
            if not queue:
                return
            result = queue.pop(pick % len(queue))
            task, args = result.task, tuple(result.args)
            for _ in range(2 if again else 1):
                outcome, _, _ = self.run(functools.partial(task.call, *args), rollback=False, atomic=False)
                if outcome == "failed" and _without_try(args) not in self.queued_args(task.name):
                    self.gave_up(task.name, _without_try(args))

    def gave_up(self, task: str, args: tuple[Any, ...]) -> None:
        if task == "delete_file":
            self.leaked.add(args[2])
        elif task == "sweep_key":
            key = args[0]
            uploads = KeyedStorage().uploads_of(key)
            newest = max(uploads, default="")
            self.leaked |= {name for token, names in uploads.items() if token != newest for name in names}

    # Faults and operations ------------------------------------------------------------------

    @rule(method=st.sampled_from(FAULTY_METHODS))
    def arm_fault(self, method: str):
        """The next step's first call of this backend method raises OSError."""
        self.fault = method

    @precondition(lambda self: self.mode == "s3" and self.network_faults < NETWORK_FAULTS_PER_EXAMPLE)
    @rule(
        mode=st.sampled_from(("silent", "cut", "error")),
        trigger=st.sampled_from(TRIGGERS),
        cut_after=st.sampled_from((0, 100, 400)),
    )
    def arm_network_fault(self, mode: str, trigger: bytes, cut_after: int):
        """The S3 requests starting with `trigger` of the next step that sends one time out,
        are cut after `cut_after` bytes of the answer, or are answered 500 (every attempt)."""
        self.network_faults += 1
        self.fault = NetworkFault(mode, trigger, cut_after if mode == "cut" else 0)

    @rule(grace=st.sampled_from(("1h", "1h", "0")))
    def orphans(self, grace: str):
        self.run(
            lambda: call_command(
                # The store outlives each example's rows (fresh_world empties the tables), so
                # most objects are unreferenced: the wrong-database guard (tested in
                # test_ops_orphans.py) would refuse. This database is the store's own.
                "keyed_storage",
                "orphans",
                "--delete",
                "--trust-database",
                "--older-than",
                grace,
                stdout=io.StringIO(),
            ),
            False,
        )
        for direct in self.directs:
            # Unreferenced objects past the grace period go: uploads never finished that
            # aged, and with no grace every finished name no row holds.
            if grace == "0" or (direct.aged and not direct.finished):
                direct.gone = True
        if grace == "0":
            for name in self.unclaimed:
                self.leaked.add(name)
            self.unclaimed.clear()
            for direct in self.directs:
                direct.ready = [name for name in direct.ready if self.expected_stored(name)]

    @rule(missing=st.booleans())
    def variants(self, missing: bool):
        arguments = ["variants", "--model", "events.item", *(["--missing"] if missing else [])]
        self.run(lambda: call_command("keyed_storage", *arguments, stdout=io.StringIO()), False)

    @precondition(lambda self: self.mode == "s3")
    @rule()
    def sync_to_disk(self):
        self.run(
            lambda: call_command(
                "keyed_storage",
                "sync",
                "--from",
                "s3",
                "--to",
                "local",
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            ),
            False,
        )

    @rule(pick=picks)
    def delete_prefix(self, pick: int):
        """delete-prefix of a key no row's file is under, though it is a string prefix of some:
        lifecycle/1 while lifecycle/12 holds files."""
        # Not a row's id, nor that of a row gone since a direct upload for it began.
        live = {str(pk) for pk in self.items} | {direct.key.split("/")[1] for direct in self.directs}
        candidates = [pk[:cut] for pk in sorted(live) for cut in range(1, len(pk)) if pk[:cut] not in live]
        prefix = f"lifecycle/{candidates[pick % len(candidates)]}" if candidates else "lifecycle-unrelated"
        self.run(
            lambda: call_command("keyed_storage", "delete-prefix", prefix, "--yes", stdout=io.StringIO()),
            False,
        )

    # The invariant ----------------------------------------------------------------------------

    def expected_stored(self, name: str) -> bool:
        return name in self.live_names() or name in self.unclaimed

    def live_names(self) -> set[str]:
        names = {DEFAULT, *(held.name for held in self.loose.values())}
        names |= {held.name for held in self.sessions.values() if held}
        names |= {self.logo.name} if self.logo else set()
        names |= {held.name for fields in self.items.values() for held in fields.values() if held}
        return names

    @invariant()
    def files_match_rows(self) -> None:
        storage = KeyedStorage()
        self.steps += 1
        over_http = self.steps % self.http_every == 0
        problems: list[str] = []

        def holds(name: str, data: bytes, where: str) -> None:
            try:
                with storage.open(name, "rb") as stored:
                    actual = stored.read()
            except (OSError, FileNotFoundError) as error:
                problems.append(f"{where}: {name} is not stored ({error})")
                return
            if actual != data:
                problems.append(f"{where}: {name} holds {len(actual)} other bytes, not the {len(data)} saved")
            elif over_http:
                answer = requests.get(storage.url(name), timeout=10)
                if answer.status_code != 200 or answer.content != data:
                    problems.append(f"{where}: GET {storage.url(name)} -> {answer.status_code}")

        assert set(self.Item.objects.values_list("pk", flat=True)) == set(self.items)
        assert set(Session.objects.values_list("pk", flat=True)) == set(self.sessions)

        def field_holds(instance: Any, name: str, held: Held | None, where: str) -> None:
            file = getattr(instance, name)
            if held is None:
                if file.name:
                    problems.append(f"{where} names {file.name}, expected no file")
                return
            if file.name != held.name:
                problems.append(f"{where} names {file.name!r}, expected {held.name!r}")
                return
            holds(held.name, held.data, where)
            model_field = type(instance)._meta.get_field(name)
            width_field = getattr(model_field, "width_field", None)
            if width_field and held.size:
                shown = (getattr(instance, width_field), getattr(instance, model_field.height_field))
                if shown != held.size:
                    problems.append(f"{where}: width/height fields say {shown}, the image is {held.size}")
            variants = file.variants() if getattr(model_field, "variants", None) else {}
            for variant_name, variant in variants.items():
                # Never a broken image: a variant not made yet shows a stored stand-in.
                try:
                    with storage.open(variant.name, "rb") as stored:
                        picture = Image.open(io.BytesIO(stored.read()))
                except OSError as error:
                    shown = f"variant {variant_name} shows {variant.name}"
                    problems.append(f"{where}: {shown}, which is not stored: {error}")
                    continue
                if variant.ready and picture.size != (variant.width, variant.height):
                    problems.append(f"{where}: variant {variant_name} is {picture.size}")
            if variants and not self.queued and file.unready_variants():
                problems.append(f"{where}: variants {sorted(file.unready_variants())} pending with no worker")

        for pk, fields in self.items.items():
            item = self.Item.objects.get(pk=pk)
            for name, held in fields.items():
                field_holds(item, name, held, f"Item {pk}.{name}")
        field_holds(Event.objects.get(pk=self.event.pk), "logo", self.logo, "Event.logo")
        for pk, held in self.sessions.items():
            if held:
                holds(held.name, held.data, f"Session {pk}.audio")
        sweeping = {key for key, _ in self.queued_args("sweep_key")}
        for key, held in self.loose.items():
            holds(held.name, held.data, f"upload() to {key}")
            if key in sweeping:
                continue  # the worker has yet to delete the key's earlier objects
            stale = [
                name
                for names in storage.uploads_of(key).values()
                for name in names
                if name != held.name and name not in self.leaked
            ]
            if stale:
                problems.append(f"upload() to {key}: earlier objects still stored: {stale}")
        for name, data in self.unclaimed.items():
            holds(name, data, "a finished direct upload no row holds yet")
        deleting = {args[2] for args in self.queued_args("delete_file")}  # the worker's to delete
        deleting |= {name for name in self.retired if any(name.startswith(f"{key}/") for key in sweeping)}
        for name in sorted(self.retired - self.live_names() - self.leaked - set(self.unclaimed) - deleting):
            if storage.exists(name):
                problems.append(f"{name} was let go of and is still stored")
            left = [c for c in storage.names_starting_with(variants_prefix(name)) if is_variant_of(c, name)]
            if left:
                problems.append(f"variants of {name} are still stored: {left}")
        assert not problems, "\n".join(problems)


@pytest.fixture
def small_parts(env):
    """Multipart direct uploads from 5 MiB (S3's smallest part), so one stays a few MiB."""
    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(PART), KEYED_STORAGE_DIRECT_PART_SIZE=str(PART))


def test_the_file_lifecycle(mode, small_parts, editor_client, monkeypatch):
    with item_model() as Item:
        monkeypatch.setattr(Lifecycle, "Item", Item)
        monkeypatch.setattr(Lifecycle, "client", editor_client)
        monkeypatch.setattr(Lifecycle, "mode", mode)
        run_state_machine_as_test(Lifecycle, settings=MACHINE_SETTINGS)


def _without_try(args: Any) -> tuple[Any, ...]:
    """A task's arguments without the try number a retry adds at the end."""
    args = tuple(args)
    return args[:-1] if args and isinstance(args[-1], int) else args
