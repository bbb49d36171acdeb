"""A save whose own write fails leaves nothing stored: the rollback removes what it stored.

The database refuses the save itself here (a trigger raising on BEFORE UPDATE or BEFORE
INSERT, a deferred foreign key failing at the commit, another thread holding SQLite's write
lock), so no post_save ever runs, in an atomic block and in autocommit. The row is unchanged,
the file it held stays, and every object the save stored (an original and its variants) is gone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, OperationalError, connection, transaction

from events.models import Event, Profile, Session

from ..helpers import fetch, png_bytes, wav_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ATOMIC = pytest.mark.parametrize("in_block", [True, False], ids=["atomic", "autocommit"])


@pytest.fixture
def stored(mode, settings, request) -> Callable[[], set[str]]:
    """Every name in the storage of the test's mode, listed behind keyed_storage's back."""
    if mode == "s3":
        bucket = request.getfixturevalue("s3")
        return lambda: set(bucket.keys())

    def on_disk() -> set[str]:
        root = settings.MEDIA_ROOT
        return {
            os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
            for directory, _, names in os.walk(root)
            for name in names
            if not name.startswith(".keyed-")
        }

    return on_disk


@contextmanager
def refusing(table: str, statement: str) -> Iterator[None]:
    """A trigger on `table` that makes every `statement` (UPDATE or INSERT) fail with 'refused'."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER ks_refuse BEFORE {statement} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION ks_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER ks_refuse BEFORE {statement} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ks_refuse()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER ks_refuse")
            else:
                cursor.execute(f"DROP TRIGGER ks_refuse ON {table}")
                cursor.execute("DROP FUNCTION ks_refuse()")


def failing_save(instance, in_block: bool, error: type[Exception] = DatabaseError, match: str = "refused"):
    with pytest.raises(error, match=match):
        if in_block:
            with transaction.atomic():
                instance.save()
        else:
            instance.save()


def png(color: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"{color}.png", png_bytes(color=color))


@ATOMIC
def test_a_refused_update_removes_the_new_file_and_keeps_the_old(mode, stored, in_block):
    session = Session.objects.create(event=Event.objects.create(name="Con"), title="Talk")
    session.audio = SimpleUploadedFile("old.wav", wav_bytes(800))
    session.save()
    old_url, before = session.audio.url, stored()
    session.audio = SimpleUploadedFile("new.wav", wav_bytes(1600))
    session.title = "Renamed"
    with refusing("events_session", "UPDATE"):
        failing_save(session, in_block)
    assert stored() == before, "the refused save's file was left behind"
    assert fetch(old_url) == wav_bytes(800)
    row = Session.objects.get(pk=session.pk)
    assert (row.title, row.audio.url) == ("Talk", old_url)


@ATOMIC
def test_a_refused_update_removes_the_new_image_and_its_variants(mode, stored, in_block):
    event = Event.objects.create(name="Con", logo=png("red"))
    old_url, before = event.logo.url, stored()
    assert len(before) == 4, before  # the original and three variants
    event.logo = png("blue")
    with refusing("events_event", "UPDATE"):
        failing_save(event, in_block)
    assert stored() == before, "the refused save's image or variants were left behind"
    assert fetch(old_url) == png_bytes(color="red")
    row = Event.objects.get(pk=event.pk)
    assert (row.logo.url, row.logo_width) == (old_url, 64)


@ATOMIC
@pytest.mark.parametrize("kind", ["file", "image"])
def test_a_new_row_whose_key_needs_its_id_leaves_nothing_when_its_update_is_refused(
    mode, stored, in_block, kind
):
    """The row is inserted, then its held file stored and named by a second, narrow UPDATE:
    the UPDATE is refused, so the file (with its variants) goes, and so does the row."""
    event = Event.objects.create(name="Con")
    if kind == "file":
        audio = SimpleUploadedFile("a.wav", wav_bytes())
        table, row = "events_session", Session(event=event, title="T", audio=audio)
    else:
        table, row = "events_event", Event(name="New", logo=png("blue"))
    before = stored()
    with refusing(table, "UPDATE"):
        failing_save(row, in_block)
    assert stored() == before, "the refused save's file was left behind"
    assert not type(row).objects.filter(pk=row.pk).exists(), "a row was left without its file"


@ATOMIC
def test_a_refused_insert_removes_the_image_and_its_variants(mode, stored, in_block, django_user_model):
    user = django_user_model.objects.create_user("ada")
    before = stored()
    profile = Profile(user=user, avatar=png("green"))
    with refusing("events_profile", "INSERT"):
        failing_save(profile, in_block)
    assert stored() == before, "the refused save's image or variants were left behind"
    assert not Profile.objects.exists()


def test_a_save_refused_at_the_commit_removes_its_file(mode, stored):
    """A deferred foreign key is checked at the commit: the UPDATE passes, the commit fails."""
    session = Session.objects.create(event=Event.objects.create(name="Con"), title="Talk")
    session.audio = SimpleUploadedFile("old.wav", wav_bytes(800))
    session.save()
    old_url, before = session.audio.url, stored()
    session.audio = SimpleUploadedFile("new.wav", wav_bytes(1600))
    session.event_id = 10**9
    with pytest.raises(DatabaseError):
        session.save()
    assert stored() == before, "the save that failed to commit left its file behind"
    assert fetch(old_url) == wav_bytes(800)
    assert Session.objects.get(pk=session.pk).audio.url == old_url


def test_a_file_copied_from_another_row_stays_when_the_save_is_refused(mode, stored):
    """A name the save only copied is not its own: the refusal leaves it to the row that holds it."""
    first = Event.objects.create(name="First", logo=png("red"))
    second = Event.objects.create(name="Second")
    before = stored()
    second.logo = first.logo.name
    with refusing("events_event", "UPDATE"):
        failing_save(second, in_block=False)
    assert stored() == before
    assert fetch(Event.objects.get(pk=first.pk).logo.url) == png_bytes(color="red")


@pytest.mark.skipif("os.environ.get('KEYED_STORAGE_TEST_DB') == 'postgres'", reason="SQLite's write lock")
def test_a_save_that_finds_the_database_locked_removes_its_file(mode, stored):
    """Another thread holds SQLite's write lock; this save waits for none (busy_timeout 0), so
    its UPDATE fails with "database is locked" as it would once a longer timeout ran out."""
    session = Session.objects.create(event=Event.objects.create(name="Con"), title="Talk")
    before = stored()
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        try:
            with transaction.atomic():
                Event.objects.create(name="Holding the write lock")
                locked.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(timeout=60), "the other thread never took the lock"
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 0")
        try:
            session.audio = SimpleUploadedFile("a.wav", wav_bytes())
            failing_save(session, in_block=False, error=OperationalError, match="database is locked")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 5000")
    finally:
        release.set()
        holder.join(timeout=60)
    assert stored() == before, "the save that found the database locked left its file behind"
    assert not Session.objects.get(pk=session.pk).audio


@ATOMIC
@pytest.mark.parametrize("kind", ["file", "image"])
def test_saving_again_after_a_refusal_stores_the_file_again(mode, stored, in_block, kind):
    """The refused save's file is removed, so the instance must not keep naming it: saved again
    (a retry), it stores its file anew and the row names a file that is there."""
    event = Event.objects.create(name="Con")
    if kind == "file":
        row, table, data = Session.objects.create(event=event, title="T"), "events_session", wav_bytes(1600)
        row.audio = SimpleUploadedFile("a.wav", data)
    else:
        row, table, data = event, "events_event", png_bytes(color="blue")
        row.logo = SimpleUploadedFile("blue.png", data)
    with refusing(table, "UPDATE"):
        failing_save(row, in_block)
    row.save()
    saved = type(row).objects.get(pk=row.pk)
    file = saved.audio if kind == "file" else saved.logo
    assert fetch(file.url) == data
    if kind == "image":
        assert len(stored()) == 4, stored()  # the original and its three variants, once
        for variant in file.variants().values():
            fetch(variant.url)
