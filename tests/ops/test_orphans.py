"""`keyed_storage orphans`: stored objects no file field references (variants count with their
original), older than a grace period, listed and deleted in batches; rows whose object is
missing; upload()'s keys spared unless named; one pass over sorted streams, in constant memory."""

from __future__ import annotations

import io
import os
import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models.sql import compiler
from PIL import Image

from events.models import Event, Session, Speaker, Sponsor
from keyed_storage import KeyedStorage, backends, config, upload
from keyed_storage.backends import local as local_backend
from keyed_storage.keys import new_token
from keyed_storage.ops import orphans

from ..ops_helpers import run

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 24 * 3600


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    return buffer.getvalue()


class Place:
    """The store behind keyed_storage's back: objects put and listed without it, and (local
    mode) their modification times set, as a file left there days ago would have."""

    def __init__(self, mode: str, s3=None):
        self.mode, self.s3 = mode, s3

    def put(self, name: str, data: bytes = b"stray bytes", *, age: float | None = None) -> str:
        if self.mode == "s3":
            assert age is None, "S3 dates objects itself: move the audit's clock instead"
            self.s3.client.put_object(Bucket=self.s3.bucket, Key=name, Body=data)
            return name
        path = os.path.join(config.current().media_root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(data)
        if age is not None:
            self.age(name, age)
        return name

    def age(self, name: str, seconds: float) -> None:
        then = time.time() - seconds
        os.utime(os.path.join(config.current().media_root, name), (then, then))

    def names(self) -> list[str]:
        if self.mode == "s3":
            return self.s3.keys()
        root = config.current().media_root
        return sorted(
            os.path.relpath(os.path.join(directory, file), root).replace(os.sep, "/")
            for directory, _, files in os.walk(root)
            for file in files
        )


@pytest.fixture
def place(mode, request):
    return Place(mode, request.getfixturevalue("s3") if mode == "s3" else None)


@pytest.fixture
def later(monkeypatch):
    """Move the audit's clock forward, so objects stored now are as old as a test needs."""

    def move(seconds: float) -> None:
        real = orphans.current_time
        monkeypatch.setattr(orphans, "current_time", lambda: real() + timedelta(seconds=seconds))

    return move


def summary(text: str) -> str:
    return text.strip().splitlines()[-1].removeprefix("CommandError: ")


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def site():
    """Rows of several models and fields, images with their variants, a file of upload()'s."""
    event = Event.objects.create(name="Conf", logo=SimpleUploadedFile("logo.png", png()))
    talk = Session.objects.create(
        event=event, title="Keynote", audio=ContentFile(b"RIFF talk", name="talk.wav")
    )
    Session.objects.create(event=event, title="Slides", slides=ContentFile(b"%PDF-1.4 s", name="s.pdf"))
    Sponsor.objects.create(event=event, name="ACME", logo=SimpleUploadedFile("acme.png", png()))
    lost = Session.objects.create(event=event, title="Lost")
    Speaker.objects.create(event=event, name="Ada")
    upload(ContentFile(b"me", name="me.png"), "users/1/profile_pic")
    return event, talk, lost


def referenced_names() -> set[str]:
    names = set()
    for model in (Event, Session, Sponsor, Speaker):
        for row in model.objects.all():
            for field in model._meta.fields:
                value = getattr(row, field.name, None)
                if hasattr(value, "variants") and value:
                    names |= {variant.name for variant in value.variants().values()}
                if hasattr(value, "storage") and value and value.name:
                    names.add(value.name)
    return names


# Finding and deleting ---------------------------------------------------------------------------


def test_lists_and_deletes_exactly_the_old_orphans(place, later):
    event, talk, lost = site()
    strays = [
        place.put(f"events/{event.pk}/logo/{new_token()}/old.png"),
        # A variant whose original is gone: no row references it either.
        place.put(f"events/{event.pk}/logo/{new_token()}/gone.png~thumb-160x160-q80.webp"),
        place.put(f"events/{event.pk}/sessions/{talk.pk}/audio/{new_token()}/take1.wav", b"x" * 3000),
    ]
    missing = f"events/{event.pk}/sessions/{lost.pk}/slides/{new_token()}/lost.pdf"
    Session.objects.filter(pk=lost.pk).update(slides=missing)
    kept = set(place.names()) - set(strays)
    assert referenced_names() - {missing} <= kept and any("profile_pic" in name for name in kept)

    # Everything was stored moments ago: the default grace period (a day) spares it all.
    out, err, code = run("orphans")
    assert code == 0, err
    assert lines(out, "orphan:") == []
    assert f"Spared {len(strays)} unreferenced objects written in the last 1 day." in out
    assert lines(out, "missing:") == [f"missing: events.Session pk={lost.pk} slides: {missing}"]
    assert summary(out) == "0 orphans, 0\xa0bytes, older than 1 day; 1 row whose file is missing."

    later(2 * DAY)
    out, err, code = run("orphans")
    assert code == 0, err
    assert sorted(line.split(" ")[1] for line in lines(out, "orphan:")) == sorted(strays)
    size = sum(len(b"stray bytes") for _ in strays[:2]) + 3000
    assert summary(out) == (
        f"3 orphans, {size / 1024:.1f}\xa0KB, older than 1 day; 1 row whose file is missing. "
        "Nothing deleted: add --delete."
    )
    assert set(place.names()) == kept | set(strays)  # a listing deletes nothing

    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert summary(out).endswith("Deleted 3.")
    assert set(place.names()) == kept  # the orphans, and nothing else
    if place.mode == "local":  # and the directories they leave empty
        assert not os.path.exists(os.path.join(config.current().media_root, os.path.dirname(strays[0])))


def test_older_than_zero_takes_objects_of_any_age(place):
    event, _, _ = site()
    stray = place.put(f"events/{event.pk}/background/{new_token()}/bg.png")
    out, _, _ = run("orphans", "--older-than", "0")
    assert lines(out, "orphan:")[0].startswith(f"orphan: {stray} (11\xa0bytes, ")
    assert summary(out).startswith(
        "1 orphan, 11\xa0bytes, older than 0 seconds; 0 rows whose files are missing."
    )


def test_an_old_referenced_object_is_never_deleted(local):
    place = Place("local")
    event, talk, _ = site()
    for name in place.names():
        place.age(name, 30 * DAY)  # everything old, the referenced files and their variants too
    stray = place.put(f"events/{event.pk}/logo/{new_token()}/old.png", age=30 * DAY)
    before = set(place.names())

    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert lines(out, "orphan:") == [line for line in lines(out, "orphan:") if stray in line]
    assert set(place.names()) == before - {stray}
    talk.refresh_from_db()
    event.refresh_from_db()
    assert talk.audio.storage.exists(talk.audio.name) and event.logo.storage.exists(event.logo.name)
    assert all(KeyedStorage().exists(v.name) for v in event.logo.variants().values())


def test_grace_period_in_local_mode_goes_by_each_files_mtime(local):
    place = Place("local")
    event, _, _ = site()
    old = place.put(f"events/{event.pk}/logo/{new_token()}/old.png", age=3 * DAY)
    fresh = place.put(f"events/{event.pk}/logo/{new_token()}/fresh.png", age=3600)
    out, _, _ = run("orphans", "--older-than", "2d")
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == [old]
    out, _, _ = run("orphans", "--older-than", "30m")
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == sorted([old, fresh])
    assert "older than 30 minutes" in summary(out)


def test_a_row_saved_during_the_walk_keeps_its_object(local):
    """Deletion asks the database again just before: a row that took an orphan's name after the
    walk passed it (the admin's "Save as new" of a copied name, say) keeps it."""
    place = Place("local")
    event, talk, _ = site()
    stray = place.put(f"events/{event.pk}/sessions/{talk.pk}/audio/{new_token()}/b.wav", age=3 * DAY)
    other = place.put(f"events/{event.pk}/sessions/{talk.pk}/audio/{new_token()}/c.wav", age=3 * DAY)
    found = []

    def adopt(finding):
        found.append(finding)
        if finding.kind == "orphan" and finding.name == stray:
            Session.objects.filter(pk=talk.pk).update(audio=stray)

    audit = orphans.Audit(backends.for_config(config.current()), delete=True)
    report = audit.run(adopt)
    assert [(f.kind, f.name) for f in found] == [("orphan", stray), ("orphan", other), ("kept", stray)]
    assert (report.orphans.count, report.orphans.deleted, report.kept) == (1, 1, 1)
    assert stray in place.names() and other not in place.names()


def test_variants_whose_names_cut_the_original_filename(place, later):
    """A long filename's variants keep only its start (a segment holds 255 bytes): they are
    still their original's."""
    event, _, _ = site()
    long = "é" * 120 + ".png"  # 244 bytes: with a variant's suffix, past the limit
    sponsor = Sponsor.objects.create(event=event, name="Long", logo=SimpleUploadedFile(long, png()))
    variants = [variant.name for variant in sponsor.logo.variants().values()]
    assert all(long not in name for name in variants)  # cut
    later(2 * DAY)
    out, _, _ = run("orphans")
    assert lines(out, "orphan:") == []
    Sponsor.objects.filter(pk=sponsor.pk).update(logo="")  # no signal: the files stay behind
    out, _, _ = run("orphans")
    assert sorted(line.split(" ")[1] for line in lines(out, "orphan:")) == sorted(
        [sponsor.logo.name, *variants]
    )


def test_rows_sharing_a_file_and_a_field_of_the_projects_own(place, later, monkeypatch):
    event, talk, _ = site()
    Session.objects.create(event=event, title="Copy", audio=talk.audio.name)  # "Save as new"
    monkeypatch.setattr(Session._meta.get_field("slides"), "upload_to", lambda instance, filename: filename)
    stray = place.put(f"events/{event.pk}/sessions/{talk.pk}/slides/{new_token()}/old.pdf")
    later(2 * DAY)
    out, err, code = run("orphans")
    assert code == 0
    assert lines(out, "orphan:") == []  # the shared file is referenced; slides' names are unknown
    assert (
        "note: events.Session.slides's upload_to is a function keyed_storage cannot read: its rows "
        "count as references, but its objects are audited only under --include."
    ) in err
    out, _, _ = run("orphans", "--include", "events")
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == [stray]


# What is audited --------------------------------------------------------------------------------


def test_upload_keys_are_spared_unless_included(place, later):
    site()
    own = place.put(f"users/1/profile_pic/{new_token()}/old.png")
    exact = place.put("site/terms.pdf")
    later(2 * DAY)
    out, _, _ = run("orphans")
    assert lines(out, "orphan:") == []
    assert (
        "Not audited: 3 objects under keys no file field writes (site, users/1/profile_pic), such as "
        "upload()'s; name a key with --include to audit it."
    ) in out

    out, _, _ = run("orphans", "--include", "users")
    orphaned = [line.split(" ")[1] for line in lines(out, "orphan:")]
    assert own in orphaned and len(orphaned) == 2  # upload()'s current file too: nothing references it
    assert "Not audited: 1 object under keys no file field writes (site)" in out

    out, _, _ = run("orphans", "--include", "users/1/profile_pic", "--include", "site", "--delete")
    assert summary(out).startswith("3 orphans") and summary(out).endswith("Deleted 3.")
    assert exact not in place.names() and not [n for n in place.names() if n.startswith("users/")]


def test_include_everything_and_bad_prefixes(place, later):
    place.put("loose.txt")
    later(2 * DAY)
    out, _, _ = run("orphans", "--include", "*")
    assert lines(out, "orphan:")[0].startswith("orphan: loose.txt ")
    _, err, code = run("orphans", "--include", "../etc")
    assert code == 1 and "Refused key '../etc'" in err


def test_temporaries_of_writes_are_spared_while_they_may_be_in_use(local):
    place = Place("local")
    event, _, _ = site()
    directory = f"events/{event.pk}/logo/{new_token()}"
    writing = place.put(f"{directory}/{local_backend.TEMP_PREFIX}abc.part", age=10 * 60)
    dead = place.put(f"{directory}/{local_backend.TEMP_PREFIX}def.part", age=2 * 3600)
    partial = place.put(f"users/1/{local_backend.TEMP_PREFIX}xyz.part", age=3 * DAY)  # a sync download
    out, _, _ = run("orphans", "--older-than", "0")
    # A temporary is an orphan only once untouched for an hour, whatever --older-than says,
    # and wherever it is (it is keyed_storage's own, under an audited key or not).
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == sorted([dead, partial])
    assert "Spared 1 temporary file of writes that may be in progress." in out
    out, _, _ = run("orphans")
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == [partial]
    run("orphans", "--older-than", "0", "--delete")
    assert writing in place.names() and dead not in place.names() and partial not in place.names()


def test_default_names_count_as_references(local, monkeypatch):
    place = Place("local")
    default = place.put("defaults/no-audio.wav", age=3 * DAY)
    field = Session._meta.get_field("audio")
    monkeypatch.setattr(field, "default", default)
    monkeypatch.setattr(field, "_get_default", lambda: default)  # Django caches it per field
    out, _, _ = run("orphans", "--include", "*")
    assert lines(out, "orphan:") == []
    assert summary(out).startswith("0 orphans")


def test_name_patterns_follow_upload_to():
    assert orphans.name_pattern(lambda instance, filename: filename) is None
    pattern = orphans.name_pattern(Session._meta.get_field("audio").upload_to)
    assert re.fullmatch(pattern, f"events/1/sessions/22/audio/{new_token()}/a.wav")
    assert re.fullmatch(pattern, f"events/1/sessions/22/audio/{new_token()}/a.wav~thumb-1x1-q80.webp")
    assert not re.fullmatch(pattern, "events/1/sessions/22/audio/a.wav")
    assert not re.fullmatch(pattern, f"events/1/x/sessions/22/audio/{new_token()}/a.wav")
    dated = orphans.name_pattern("docs/%Y/%m/100%%")
    assert re.fullmatch(dated, "docs/2026/11/100%/report.pdf")
    assert not re.fullmatch(dated, "other/2026/11/100%/report.pdf")
    assert re.fullmatch(orphans.name_pattern(""), "top.pdf") and not re.fullmatch(
        orphans.name_pattern(""), "a/b"
    )


# Order and memory -------------------------------------------------------------------------------


def test_names_whose_byte_order_is_not_alphabetical(place, later):
    """S3 lists by UTF-8 bytes ('Z' < 'a' < 'É' < 'é'); so must the database, or referenced
    objects would pass for orphans."""
    event, talk, _ = site()
    token = new_token()
    key = f"events/{event.pk}/sessions/{talk.pk}/slides/{token}"
    stored = {}
    for filename in ("Zed.pdf", "apple.pdf", "Éclair.pdf", "éclair.pdf", "a-b.pdf", "a.pdf", "a_b.pdf"):
        row = Session.objects.create(event=event, title=filename)
        Session.objects.filter(pk=row.pk).update(slides=f"{key}/{filename}")
        stored[filename] = place.put(f"{key}/{filename}")
    stray = place.put(f"{key}/b.pdf")
    later(2 * DAY)
    out, err, code = run("orphans")
    assert code == 0, err
    assert [line.split(" ")[1] for line in lines(out, "orphan:")] == [stray]
    assert lines(out, "missing:") == []


def linguistic_collation() -> str:
    """A collation of the test database that sorts 'apple' before 'Zed', as people read."""
    if connection.vendor == "sqlite":
        return "NOCASE"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT collname FROM pg_collation WHERE collname IN ('und-x-icu', 'en-x-icu', 'en_US.utf8') "
            "ORDER BY collname DESC"
        )
        found = cursor.fetchone()
    if found is None:
        pytest.skip("this PostgreSQL has no linguistic collation (ICU or en_US.utf8)")
    return found[0]


def test_a_database_that_does_not_sort_by_bytes_stops_the_run(local, monkeypatch):
    place = Place("local")
    event, talk, _ = site()
    key = f"events/{event.pk}/sessions/{talk.pk}/slides/{new_token()}"
    for filename in ("Zed.pdf", "apple.pdf"):
        row = Session.objects.create(event=event, title=filename)
        name = f"{key}/{filename}"
        Session.objects.filter(pk=row.pk).update(slides=name)
        place.put(name, age=3 * DAY)
    stray = place.put(f"events/{event.pk}/logo/{new_token()}/zz.png", age=3 * DAY)
    monkeypatch.setitem(orphans._BYTE_COLLATIONS, connection.vendor, linguistic_collation())
    names = set(place.names())
    _, err, code = run("orphans", "--delete")
    assert code == 1
    assert "The database, for events.Session.slides, gave " in err and "not the order of their UTF-8" in err
    assert "Stopped after " in err and "Deleted 0." in err
    assert set(place.names()) == names and stray in names  # nothing decided, nothing deleted


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a column collation of PostgreSQL's")
def test_byte_order_whatever_the_columns_collation(local, monkeypatch):
    """PostgreSQL's usual collations (en_US.UTF-8, ICU) sort as people read: the names are
    ordered with COLLATE "C", so a column with such a collation is walked in byte order too."""
    place = Place("local")
    event, talk, _ = site()
    key = f"events/{event.pk}/sessions/{talk.pk}/slides/{new_token()}"
    for filename in ("Zed.pdf", "apple.pdf", "Éclair.pdf", "éclair.pdf", "a-b.pdf", "a_b.pdf"):
        row = Session.objects.create(event=event, title=filename)
        Session.objects.filter(pk=row.pk).update(slides=place.put(f"{key}/{filename}", age=3 * DAY))
    stray = place.put(f"{key}/b.pdf", age=3 * DAY)
    table = Session._meta.db_table
    alter = f'ALTER TABLE {table} ALTER COLUMN slides TYPE varchar(255) COLLATE "{{}}"'
    with connection.cursor() as cursor:
        cursor.execute(alter.format(linguistic_collation()))
    try:
        out, err, code = run("orphans")
        assert code == 0, err
        assert [line.split(" ")[1] for line in lines(out, "orphan:")] == [stray]
        # Without COLLATE "C" the column's own order shows, and the run stops.
        monkeypatch.delitem(orphans._BYTE_COLLATIONS, "postgresql")
        _, err, code = run("orphans")
        assert code == 1 and "not the order of their UTF-8 bytes" in err
    finally:
        with connection.cursor() as cursor:
            cursor.execute(alter.format("default"))


def test_the_walk_holds_a_chunk_of_names_not_the_table(local, monkeypatch):
    place = Place("local")
    event = Event.objects.create(name="Big")
    rows = Session.objects.bulk_create(Session(event=event, title=f"t{i}") for i in range(60))
    for row in rows:
        name = place.put(f"events/{event.pk}/sessions/{row.pk}/audio/{new_token()}/t.wav", age=3 * DAY)
        Session.objects.filter(pk=row.pk).update(audio=name)
    place.put(f"events/{event.pk}/logo/{new_token()}/stray.png", age=3 * DAY)
    fetched = Counter()
    real = compiler.cursor_iter

    def counting(cursor, sentinel, col_count, itersize):
        for rows_ in real(cursor, sentinel, col_count, itersize):
            fetched["rows"] += len(rows_)
            yield rows_

    monkeypatch.setattr(compiler, "cursor_iter", counting)
    ahead = []

    def on_object(stored):
        ahead.append(fetched["rows"] - len(ahead))

    audit = orphans.Audit(backends.for_config(config.current()), chunk_size=4)
    report = audit.run(on_object=on_object)
    assert report.referenced == 60 and report.orphans.count == 1
    assert fetched["rows"] == 60  # every name read once, by the one query of its field
    # At each object, the database had given at most a chunk more than the walk had passed.
    assert max(ahead) <= 4 + 1, ahead


class Listed:
    """A store's listing as given: what a server sends, to put in path order."""

    def __init__(self, listed):
        self.listed = list(listed)

    def stored_objects(self, under=""):
        return iter([stored for stored in self.listed if not under or stored.name.startswith(under + "/")])


def test_names_wait_for_a_sibling_key_only_when_it_exists(place):
    for i in range(30):
        place.put(f"k/2024-conf-{i:02d}/logo.png")  # byte order: all before a possible 'k/2024/...'
    backend = backends.for_config(config.current())
    by_path = sorted(place.names(), key=orphans.path_key)
    order = orphans._PathOrder(backend, hold_limit=5)
    assert [stored.name for stored in order] == by_path
    assert order.most_held <= 6  # asked whether 'k/2024/...' exists, and nothing does
    place.put("k/2024/logo.png")
    order = orphans._PathOrder(backend, hold_limit=5)
    assert [stored.name for stored in order] == sorted(place.names(), key=orphans.path_key)
    assert order.most_held >= 30  # it does: every 'k/2024-...' waits for it


TRICKY = ["x/a/b", "x/a-b", "x/a0", "x/A", "x/é/x", "x/e/x", "x/a/c/d", "x/a.b", "x/Z", "x/ab~1"]


def test_listing_in_byte_or_path_order_with_times(place):
    """stored_objects() gives the store's order: UTF-8 bytes on AWS S3, moto and the local disk (a
    file 'a-b' before the directory 'a/'), directory by directory on SeaweedFS; the audit
    walks either in path order."""
    for name in TRICKY:
        place.put(name)
    listed = list(backends.for_config(config.current()).stored_objects())
    by_bytes = sorted(TRICKY, key=lambda name: name.encode("utf-8"))
    by_path = sorted(TRICKY, key=orphans.path_key)
    assert by_bytes != by_path
    assert [stored.name for stored in listed] in (by_bytes, by_path)
    if place.mode == "local":
        assert [stored.name for stored in listed] == by_bytes
    assert [stored.name for stored in orphans._PathOrder(Listed(listed))] == by_path
    assert [stored.name for stored in orphans._PathOrder(Listed(sorted(listed)))] == by_path
    assert all(stored.size == len(b"stray bytes") and not stored.temporary for stored in listed)
    assert all(stored.modified.utcoffset() == timedelta(0) for stored in listed)


def test_names_whose_byte_order_and_path_order_differ(place, later):
    event, _, _ = site()
    for name in TRICKY:
        row = Session.objects.create(event=event, title=name)
        Session.objects.filter(pk=row.pk).update(slides=place.put(name))
    strays = [place.put("x/a/c/e"), place.put("x/a-a")]
    later(2 * DAY)
    out, err, code = run("orphans", "--include", "x")
    assert code == 0, err
    assert sorted(line.split(" ")[1] for line in lines(out, "orphan:")) == sorted(strays)
    assert lines(out, "missing:") == []


def test_the_bucket_is_listed_a_page_at_a_time(requests_made, s3):
    for i in range(1001):  # S3 lists 1000 names a request
        s3.client.put_object(Bucket=s3.bucket, Key=f"k/{i:04d}", Body=b"")
    pages = []
    requests_made.clear()
    audit = orphans.Audit(backends.for_config(config.current()))
    report = audit.run(on_object=lambda stored: pages.append(requests_made["ListObjectsV2"]))
    assert report.listed == 1001 and report.not_audited == 1001
    assert pages[0] == 1 and pages[999] == 1 and pages[1000] == 2  # the second page only when needed


def test_recent_names_hold_only_prefixes_of_the_current_one():
    recent = orphans._Recent()
    for i in range(10_000):
        recent.add(f"events/{i:05d}/logo/t/logo.png")
        assert len(recent) <= 2
    recent.add("a/x.png")
    recent.pass_to("a/x.png_2")
    assert "a/x.png" in recent  # its variants ('a/x.png~...') are still ahead
    recent.pass_to("a/x.png\x7f")
    assert "a/x.png" not in recent


# Batches, options, output -----------------------------------------------------------------------


@pytest.fixture
def requests_made(s3):
    seen = Counter()

    def count(request, **kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1

    client = backends.for_config(config.current()).client
    client.meta.events.register("before-send.s3", count)
    return seen


def test_deletes_go_in_batches(requests_made, s3, later, monkeypatch):
    monkeypatch.setattr(orphans, "DELETE_BATCH", 3)
    strays = {
        s3.client.put_object(Bucket=s3.bucket, Key=f"k/{i}.bin", Body=b"x") and f"k/{i}.bin" for i in range(7)
    }
    later(2 * DAY)
    requests_made.clear()
    out, err, code = run("orphans", "--include", "k", "--delete")
    assert code == 0, err
    assert (
        summary(out) == "7 orphans, 7\xa0bytes, older than 1 day; 0 rows whose files are missing. Deleted 7."
    )
    assert s3.keys() == []
    # 3 + 3 in two DeleteObjects, the last one alone in a DeleteObject; one listing.
    assert requests_made["DeleteObjects"] == 2 and requests_made["DeleteObject"] == 1
    assert requests_made["ListObjectsV2"] == 1
    assert len(strays) == 7


@pytest.mark.parametrize("value", ["1", "1.5d", "-1d", "d", "2y", "", "12 h", "1d2h", "0d0"])
def test_older_than_is_parsed_strictly(value):
    _, err, code = run("orphans", f"--older-than={value}")
    assert code == 1
    assert f"--older-than {value!r} is not a duration: write a whole number and a unit" in err


@pytest.mark.parametrize(
    ("value", "seconds", "said"),
    [
        ("0", 0, "0 seconds"),
        ("30s", 30, "30 seconds"),
        ("90m", 5400, "90 minutes"),
        ("12h", 43200, "12 hours"),
        ("2d", 172800, "2 days"),
        ("1w", 604800, "7 days"),
    ],
)
def test_durations(value, seconds, said):
    assert orphans.parse_duration(value) == timedelta(seconds=seconds)
    assert orphans.describe(timedelta(seconds=seconds)) == said


def test_progress_bar_and_header(local):
    Place("local").put("loose.txt", age=3 * DAY)
    out, err, code = run("orphans", "--progress", "--include", "*")
    assert code == 0
    assert out.startswith("Auditing ")
    assert (
        "against 7 file fields: objects older than 1 day that no row references; rows whose object "
        "is missing." in out
    )
    assert "objects: 1" in err  # tqdm's bar, on standard error


def test_direct_uploads_never_finished_are_orphans_and_finished_ones_are_not(mode, later):
    """A browser that uploaded and never submitted leaves its object at the upload's name; a
    ticket used again after its upload was finished leaves a stray there too. Both go; the
    published file a row holds stays."""
    from keyed_storage.direct.tickets import finish_upload, start_upload

    from ..direct.test_tickets import post, uploaded

    event = Event.objects.create(name="Direct Con")
    talk = Session.objects.create(event=event, title="Keynote")
    key = f"events/{event.pk}/sessions/{talk.pk}/audio"
    data = b"RIFF" + b"\0" * 200
    abandoned = start_upload(key, filename="draft.wav", size=len(data), content_type="audio/wav")
    assert post(abandoned, data).status_code == 204
    finished = start_upload(key, filename="talk.wav", size=len(data), content_type="audio/wav")
    assert post(finished, data).status_code == 204
    talk.audio.name = finish_upload(finished.reference, key=key)
    talk.save()
    assert post(finished, data).status_code == 204  # the same ticket, again: a stray

    later(2 * DAY)
    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert sorted(line.split(" ")[1] for line in lines(out, "orphan:")) == sorted(
        [uploaded(abandoned), uploaded(finished)]
    )
    assert KeyedStorage().exists(talk.audio.name)
    assert not KeyedStorage().exists(uploaded(abandoned))


@pytest.fixture
def abandoned_upload(mode, request, env):
    """A multipart direct upload with one part of two sent, then the browser went away."""
    from keyed_storage.direct.tickets import start_upload

    from ..direct.test_multipart import PART, leftovers, send_parts

    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(PART), KEYED_STORAGE_DIRECT_PART_SIZE=str(PART))
    s3 = request.getfixturevalue("s3") if mode == "s3" else None
    data = os.urandom(2 * PART)
    ticket = start_upload("events/1/sessions/2/video", filename="talk.mp4", size=len(data), content_type="")
    send_parts(ticket, [1], data)

    def left() -> list:
        return leftovers(mode, s3)

    assert len(left()) == 1
    return left


def test_unfinished_multipart_uploads_are_found_and_aborted(abandoned_upload, later):
    """An abandoned upload keeps its parts (in S3, invisible to listings and billed): the
    audit lists it once the grace period is over, and aborts it with --delete."""
    later(2 * DAY)
    out, err, code = run("orphans")
    assert code == 0, err
    [line] = lines(out, "unfinished upload:")
    assert line.startswith("unfinished upload: events/1/sessions/2/video/") and "/talk.mp4 (begun " in line
    assert summary(out) == (
        "0 orphans, 0\xa0bytes, older than 1 day; 0 rows whose files are missing; "
        "1 unfinished upload, begun more than 1 day ago. Nothing deleted: add --delete."
    )
    assert len(abandoned_upload()) == 1  # a listing aborts nothing

    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert summary(out).endswith("Deleted 0. Aborted 1.")
    assert abandoned_upload() == []


@pytest.mark.seaweedfs_only("moto dates every multipart upload 2010-11-10, so none is recent there")
def test_an_upload_begun_within_the_grace_period_is_spared(abandoned_upload):
    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert "Spared 1 unfinished upload begun in the last 1 day." in out
    assert lines(out, "unfinished upload:") == []
    assert len(abandoned_upload()) == 1


# The wrong database: --delete refuses when the audit looks like one -------------------------------


def test_delete_is_refused_when_no_row_references_the_store(place, later):
    # The demo's files, audited with another (here: empty) database: every object looks orphaned.
    names = [place.put(f"events/{i}/logo/{new_token()}/logo.png") for i in range(12)]
    later(2 * DAY)
    reason = "12 of 12 audited objects (100%) are referenced by no row"

    out, err, code = run("orphans")  # listing still works, and warns
    assert code == 0, err
    assert len(lines(out, "orphan:")) == 12
    assert f"Warning: This looks like the wrong database for this store: {reason}." in out
    assert "--delete would refuse to delete; --trust-database overrides." in out
    assert summary(out).endswith("Nothing deleted: add --delete.")

    out, err, code = run("orphans", "--delete")
    assert code == 1
    refusal = lines(err, "CommandError:")[0]
    assert refusal.startswith(
        f"CommandError: Refused to delete. This looks like the wrong database for this store: {reason}."
    )
    assert "Check that DATABASES" in refusal
    assert refusal.endswith("Nothing deleted. If it is the right one, run again with --trust-database.")
    assert place.names() == sorted(names)

    out, err, code = run("orphans", "--delete", "--trust-database")
    assert code == 0, err
    assert summary(out).endswith("Deleted 12.")
    assert place.names() == []


def test_delete_is_refused_when_most_rows_files_are_missing(place, later):
    # A database whose rows name files this store never had (a copy of another site's), though
    # some of its rows match: the objects alone would not tell.
    event, _, _ = site()
    for i in range(12):
        Session.objects.create(event=event, title=f"Elsewhere {i}", slides=f"events/{event.pk}/x/{i}.pdf")
    stray = place.put(f"events/{event.pk}/logo/{new_token()}/old.png")
    later(2 * DAY)
    found = sum(1 for row in (*Event.objects.all(), *Sponsor.objects.all()) if row.logo) + sum(
        1
        for row in Session.objects.all()
        for file in (row.audio, row.slides)
        if file and "/x/" not in file.name
    )
    rows = found + 12
    reason = f"12 of {rows} rows ({12 / rows:.0%}) name a file the store does not have"

    out, _, code = run("orphans")
    assert code == 0
    assert f"Warning: This looks like the wrong database for this store: {reason}." in out
    assert "audited objects" not in out

    _, err, code = run("orphans", "--delete")
    assert code == 1
    assert f"Refused to delete. This looks like the wrong database for this store: {reason}." in err
    assert stray in place.names()

    out, err, code = run("orphans", "--delete", "--trust-database")
    assert code == 0, err
    assert summary(out).endswith("Deleted 1.") and stray not in place.names()


def test_too_few_objects_to_tell_are_deleted_without_asking(place, later):
    names = [
        place.put(f"events/{i}/logo/{new_token()}/logo.png") for i in range(orphans.SUSPECT_MIN_OBJECTS - 1)
    ]
    later(2 * DAY)
    out, err, code = run("orphans", "--delete")
    assert code == 0, err
    assert "Warning" not in out
    assert summary(out).endswith(f"Deleted {len(names)}.")
    assert place.names() == []


# Age counts from publication -------------------------------------------------------------------


def test_a_direct_upload_published_now_is_young_whatever_the_uploads_age(local):
    """Published by a hard link, the file kept its upload's mtime: `orphans --older-than 1h
    --delete` removed a file finished seconds ago, before the form that finished it was saved."""
    from keyed_storage.direct.tickets import finish_upload, start_upload

    from ..direct.test_tickets import post, uploaded

    key = "events/1/sessions/2/audio"
    data = b"RIFF" + b"\0" * 200
    ticket = start_upload(key, filename="talk.wav", size=len(data), content_type="audio/wav")
    assert post(ticket, data).status_code == 204
    Place("local").age(uploaded(ticket), 2 * 3600)  # sent two hours ago, finished now
    name = finish_upload(ticket.reference, key=key)

    out, err, code = run("orphans", "--older-than", "1h", "--delete")
    assert code == 0, err
    assert lines(out, "orphan:") == []
    assert KeyedStorage().exists(name)


def test_a_multipart_upload_completed_now_is_young_though_s3_dates_it_from_its_start(s3, later, env):
    """AWS gives a completed multipart upload the LastModified of its start: a talk sent for
    90 minutes and finished now is dated 90 minutes ago. moto dates it now, so the audit's
    clock is moved 90 minutes on instead; the upload's token bounds when it was finished."""
    from keyed_storage.direct.tickets import finish_upload, finished_by, start_upload

    from ..direct.test_multipart import PART, send_parts

    env(KEYED_STORAGE_DIRECT_PART_THRESHOLD=str(PART), KEYED_STORAGE_DIRECT_PART_SIZE=str(PART))
    data = os.urandom(2 * PART)
    key = "events/1/sessions/2/audio"  # a field's key: the audit looks at it
    ticket = start_upload(key, filename="talk.m4a", size=len(data), content_type="audio/mp4")
    send_parts(ticket, [1, 2], data)
    name = finish_upload(ticket.reference, key=key)
    (stored,) = backends.for_config(config.current()).stored_objects()
    assert stored.name == name and stored.modified >= finished_by(name)

    later(90 * 60)
    out, err, code = run("orphans", "--older-than", "1h", "--delete")
    assert code == 0, err
    assert lines(out, "orphan:") == []
    assert s3.keys() == [name]
