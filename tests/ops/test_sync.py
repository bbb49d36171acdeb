"""`keyed_storage sync`: every file, same names, streamed, verified, skipped when already there, resumable."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest
from boto3.s3.transfer import TransferConfig

from keyed_storage import KeyedStorage, config
from keyed_storage.backends.local import TEMP_PREFIX
from keyed_storage.backends.s3 import FILE_PART_SIZE
from keyed_storage.ops import sync

from ..helpers import TEST_KEY, TEST_SECRET, fetch, make_client
from ..ops_helpers import moto_process, run

MB = 1024 * 1024

FILES = {
    "users/42/avatar/0661a1b2c3d4e5f60718293a4b5c6d7e/me.png": b"\x89PNG fake avatar",
    "events/7/logo/0661a1b2c3d4e5f60718293a4b5c6d7f/C++ & co #1.svg": b"<svg/>" * 100,
    "events/7/sessions/3/audio/0661a1b2c3d4e5f60718293a4b5c6d80/talk.mp3": os.urandom(3 * MB + 17),
    "site/terms.pdf": b"%PDF terms",
    "site/empty.txt": b"",
}


def write_local(root: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(body)


def read_local(root: str) -> dict[str, bytes]:
    found = {}
    for directory, _, files in os.walk(root):
        for file in files:
            path = os.path.join(directory, file)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return found


def read_s3(s3) -> dict[str, bytes]:
    return {key: s3.body(key) for key in s3.keys()}


def temporaries(names) -> list[str]:
    """The in-progress writes among `names`: what no listing shows and no key's file is."""
    return [name for name in names if name.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)]


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_local_to_s3_copies_every_file_under_the_same_name(s3, settings):
    write_local(settings.MEDIA_ROOT, FILES)
    out, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0, err
    assert read_s3(s3) == FILES
    assert summary(out).startswith(f"Copied {len(FILES)} files (")
    assert "skipped 0 already there, 0 failed." in out
    # The app hands out working links to the copied objects, with their content types.
    name = "events/7/logo/0661a1b2c3d4e5f60718293a4b5c6d7f/C++ & co #1.svg"
    assert fetch(KeyedStorage().url(name)) == FILES[name]
    assert s3.client.head_object(Bucket=s3.bucket, Key=name)["ContentType"] == "image/svg+xml"


def test_a_second_run_skips_what_is_already_there(s3, settings):
    write_local(settings.MEDIA_ROOT, FILES)
    run("sync", "--from", "local", "--to", "s3")
    puts = []
    client = sync.S3Side.upload
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "upload", lambda self, *a, **k: puts.append(a) or client(self, *a, **k))
        out, _, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0
    assert puts == []
    assert summary(out) == f"Copied 0 files (0\xa0bytes), skipped {len(FILES)} already there, 0 failed."


def test_same_size_other_bytes_is_copied_again(s3, settings):
    write_local(settings.MEDIA_ROOT, FILES)
    run("sync", "--from", "local", "--to", "s3")
    name = "site/terms.pdf"
    write_local(settings.MEDIA_ROOT, {name: b"%PDF TERMS"})  # same size, other checksum
    out, _, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0
    assert summary(out).startswith("Copied 1 files (10\xa0bytes)")
    assert s3.body(name) == b"%PDF TERMS"


def test_dry_run_copies_nothing_and_says_what_it_would(s3, settings):
    write_local(settings.MEDIA_ROOT, FILES)
    out, err, code = run("sync", "--from", "local", "--to", "s3", "--dry-run")
    assert code == 0
    assert s3.keys() == []
    assert out.startswith("Dry run: 5 files")
    assert summary(out).startswith("Would copy 5 files")
    assert err.count("would copy: ") == len(FILES)

    s3.client.put_object(Bucket=s3.bucket, Key="site/terms.pdf", Body=FILES["site/terms.pdf"])
    out, _, _ = run("sync", "--from", "s3", "--to", "local", "--dry-run")
    assert read_local(settings.MEDIA_ROOT) == FILES  # nothing written on the local side either


def test_s3_to_local_including_a_multipart_object(s3, settings):
    big = os.urandom(11 * MB)
    for name, body in FILES.items():
        s3.client.put_object(Bucket=s3.bucket, Key=name, Body=body)
    chunked = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.client.upload_file(_temp_file(settings, big), s3.bucket, "events/7/video/full.mp4", Config=chunked)
    assert "-" in s3.client.head_object(Bucket=s3.bucket, Key="events/7/video/full.mp4")["ETag"]

    out, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0, err
    local = read_local(settings.MEDIA_ROOT)
    assert local.pop("events/7/video/full.mp4") == big
    local.pop("incoming.bin")
    assert local == FILES

    out, _, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0
    assert "skipped 6 already there, 0 failed." in out


def _temp_file(settings, body: bytes) -> str:
    os.makedirs(settings.MEDIA_ROOT, exist_ok=True)
    path = os.path.join(settings.MEDIA_ROOT, "incoming.bin")
    with open(path, "wb") as file:
        file.write(body)
    return path


def test_progress_bars_count_files_and_bytes(s3, settings):
    write_local(settings.MEDIA_ROOT, FILES)
    _, err, code = run("sync", "--from", "local", "--to", "s3", "--progress")
    assert code == 0
    assert "files: 100%" in err and "5/5" in err
    assert "bytes: 100%" in err and "3.00M/3.00M" in err


def test_interrupted_download_leaves_no_half_file_and_resumes(s3, settings):
    for name, body in FILES.items():
        s3.client.put_object(Bucket=s3.bucket, Key=name, Body=body)
    victim = "events/7/sessions/3/audio/0661a1b2c3d4e5f60718293a4b5c6d80/talk.mp3"
    chunks = sync.S3Side.chunks

    def dropped(self, name, progress=None):
        for number, chunk in enumerate(chunks(self, name, progress)):
            if name == victim and number == 1:
                raise ConnectionResetError("connection dropped mid-file")
            yield chunk

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "chunks", dropped)
        out, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 1
    assert f"failed: {victim}: connection dropped mid-file" in err
    assert "Copied 4 files" in err and "1 failed" in err
    local = read_local(settings.MEDIA_ROOT)
    assert victim not in local  # never half a file under the real name
    assert not temporaries(local)  # the interrupted download's temporary is removed too
    assert local == {name: body for name, body in FILES.items() if name != victim}

    out, _, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0
    assert summary(out).startswith("Copied 1 files") and "skipped 4 already there" in out
    assert read_local(settings.MEDIA_ROOT) == FILES


def test_corrupted_download_is_refused_and_the_old_file_kept(s3, settings):
    name = "site/terms.pdf"
    s3.client.put_object(Bucket=s3.bucket, Key=name, Body=b"%PDF new terms")
    write_local(settings.MEDIA_ROOT, {name: b"%PDF old"})
    chunks = sync.S3Side.chunks

    def flipped(self, name, progress=None):
        for chunk in chunks(self, name, progress):
            yield chunk.replace(b"new", b"NEW")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "chunks", flipped)
        _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 1
    assert "verification failed" in err
    assert read_local(settings.MEDIA_ROOT) == {name: b"%PDF old"}


def test_a_download_killed_midway_leaves_a_temporary_that_is_never_uploaded(s3, settings):
    # What a sync killed with SIGKILL leaves beside its target: the same kind of '.keyed-*'
    # temporary as a killed save, never a key's file.
    name = "site/terms.pdf"
    leftover = f"site/{TEMP_PREFIX}k1ll3d.part"
    write_local(settings.MEDIA_ROOT, {leftover: b"%PD"})
    _, _, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0 and s3.keys() == []
    s3.client.put_object(Bucket=s3.bucket, Key=name, Body=b"%PDF terms")
    _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0, err
    assert read_local(settings.MEDIA_ROOT) == {name: b"%PDF terms", leftover: b"%PD"}


def test_a_download_in_progress_is_invisible_to_readers_and_to_a_key_s_sweep(s3, settings):
    """Until it is whole and verified, a download has no name any listing shows: replacing its
    key (which deletes what names_under() lists) cannot take it for an earlier upload, and no
    reader of the directory sees a file."""
    key = "events/7/sessions/3/audio"
    victim = "events/7/sessions/3/audio/0661a1b2c3d4e5f60718293a4b5c6d80/talk.mp3"
    s3.client.put_object(Bucket=s3.bucket, Key=victim, Body=FILES[victim])
    local, _ = sync.backends_for(config.current())
    directory = os.path.dirname(local.path(victim))
    seen = []
    chunks = sync.S3Side.chunks

    def watched(self, name, progress=None):
        for number, chunk in enumerate(chunks(self, name, progress)):
            if number == 2:  # two chunks are on disk by now
                seen.append(
                    {
                        "on disk": os.listdir(directory),
                        "names_under": local.names_under(key),
                        "listdir": local.listdir(os.path.dirname(victim))[1],
                        "inventory": list(local.inventory()),
                        "exists": local.exists(victim),
                    }
                )
            yield chunk

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "chunks", watched)
        _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0, err
    (during,) = seen
    assert len(during["on disk"]) == 1  # the download is there, being written...
    assert during["names_under"] == during["listdir"] == during["inventory"] == []  # ...and listed nowhere
    assert during["exists"] is False
    assert read_local(settings.MEDIA_ROOT) == {victim: FILES[victim]}


def test_directories_sync_makes_get_file_upload_directory_permissions(s3, settings):
    # As Django's FileSystemStorage makes them for a save, not with the process's umask.
    settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
    config.reset()
    name = "events/7/logo/0661a1b2c3d4e5f60718293a4b5c6d7f/C++ & co #1.svg"
    s3.client.put_object(Bucket=s3.bucket, Key=name, Body=FILES[name])
    old = os.umask(0o022)  # alone, it would make them 0o755
    try:
        _, err, code = run("sync", "--from", "s3", "--to", "local")
    finally:
        os.umask(old)
    assert code == 0, err
    parts = name.split("/")[:-1]
    made = {"/".join(parts[: n + 1]) for n in range(len(parts))}
    modes = {
        directory: oct(os.stat(os.path.join(settings.MEDIA_ROOT, *directory.split("/"))).st_mode & 0o777)
        for directory in made
    }
    assert modes == dict.fromkeys(made, "0o750")


def test_a_file_changed_during_upload_fails_verification(s3, settings):
    name = "site/terms.pdf"
    write_local(settings.MEDIA_ROOT, {name: b"%PDF terms"})
    upload = sync.S3Side.upload

    def racing(self, path, key, md5, progress):
        with open(path, "wb") as file:
            file.write(b"%PDF edited")  # someone edits the file after it was hashed
        upload(self, path, key, md5, progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "upload", racing)
        _, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 1
    assert "verification failed" in err

    _, _, code = run("sync", "--from", "local", "--to", "s3")  # the re-run repairs it
    assert code == 0 and s3.body(name) == b"%PDF edited"


@pytest.mark.moto_only(
    "SeaweedFS refuses to store a key with '..' segments (InvalidRequest), so no such object can be "
    "set up there; S3 and moto store it"
)
def test_refuses_names_that_would_escape_media_root(s3, settings):
    s3.client.put_object(Bucket=s3.bucket, Key="a/../../escape.txt", Body=b"x")
    s3.client.put_object(Bucket=s3.bucket, Key="ok.txt", Body=b"ok")
    _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 1
    assert "failed: a/../../escape.txt: not copied: Refused key" in err
    assert read_local(settings.MEDIA_ROOT) == {"ok.txt": b"ok"}
    assert not os.path.exists(os.path.join(os.path.dirname(settings.MEDIA_ROOT), "escape.txt"))


def test_needs_a_bucket():
    _, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code != 0 and "set BUCKET_NAME" in err


def test_from_and_to_must_differ(s3):
    _, err, code = run("sync", "--from", "s3", "--to", "s3")
    assert code != 0 and "between 'local' and 's3'" in err


@pytest.fixture
def own_server(env):
    """S3 mode against a moto process of the test's own, which it may kill."""
    with moto_process() as (process, endpoint):
        client = make_client(endpoint)
        client.create_bucket(Bucket="sync-own")
        env(BUCKET_NAME="sync-own", AWS_KEY=TEST_KEY, AWS_SECRET=TEST_SECRET, AWS_ENDPOINT_URL_S3=endpoint)
        yield process, client


def peak_memory_of_sync(source: str, target: str) -> int:
    """Peak Python memory of copying, the clients being made first (botocore's set-up is not copying)."""
    job = sync.Sync(config.current(), source, target)
    entries = job.entries()
    assert job.s3.backend.client  # made now, whichever way the files go
    tracemalloc.start()
    try:
        report = job.run(entries)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not report.failed, report.failed
    assert len(report.copied) == len(entries) == 1
    return peak


def test_memory_stays_flat_for_a_large_file(own_server, settings):
    """A 64 MiB file goes up and comes back with a fraction of its size in Python memory.

    The S3 server runs in another process, so only sync's own allocations are measured.
    """
    big = "events/1/video/big.mp4"
    body = os.urandom(64 * MB)
    write_local(settings.MEDIA_ROOT, {big: body})
    up = peak_memory_of_sync("local", "s3")
    os.remove(os.path.join(settings.MEDIA_ROOT, *big.split("/")))
    down = peak_memory_of_sync("s3", "local")
    assert read_local(settings.MEDIA_ROOT) == {big: body}
    assert up < 16 * MB, up
    assert down < 16 * MB, down


def test_server_killed_mid_download(own_server, settings):
    process, client = own_server
    client.put_object(Bucket="sync-own", Key="events/1/video/big.mp4", Body=os.urandom(48 * MB))
    chunks = sync.S3Side.chunks

    def kill_after_first_chunk(self, name, progress=None):
        for number, chunk in enumerate(chunks(self, name, progress)):
            if number == 0:
                process.kill()
                process.wait()
            yield chunk

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "chunks", kill_after_first_chunk)
        _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 1
    assert "1 failed" in err
    assert read_local(settings.MEDIA_ROOT) == {}


def test_an_empty_source_is_a_success(s3):
    out, _, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 0
    assert out.startswith("0 files (0\xa0bytes) from s3 to local.")
    assert summary(out) == "Copied 0 files (0\xa0bytes), skipped 0 already there, 0 failed."


def test_verbosity_2_lists_every_file_with_its_outcome(s3, settings):
    write_local(settings.MEDIA_ROOT, {"site/a.txt": b"a", "site/b.txt": b"b"})
    run("sync", "--from", "local", "--to", "s3")
    write_local(settings.MEDIA_ROOT, {"site/b.txt": b"B"})
    _, err, code = run("sync", "--from", "local", "--to", "s3", "-v", "2")
    assert code == 0
    assert "skipped: site/a.txt (1\xa0byte)" in err
    assert "copied: site/b.txt (1\xa0byte)" in err
    _, err, _ = run("-v", "2", "sync", "--from", "local", "--to", "s3")
    assert "skipped: site/b.txt (1\xa0byte)" in err
    _, err, _ = run("sync", "--from", "local", "--to", "s3")
    assert "site/b.txt" not in err


def test_a_large_file_changed_in_place_during_a_multipart_upload_fails_verification(s3, settings):
    """Same size, other bytes, uploaded in parts: only the parts' checksums can tell."""
    name = "events/1/video/talk.mp4"
    body = os.urandom(FILE_PART_SIZE + MB)
    write_local(settings.MEDIA_ROOT, {name: body})
    upload = sync.S3Side.upload

    def racing(self, path, key, md5, progress):
        with open(path, "r+b") as file:
            file.seek(FILE_PART_SIZE + 10)
            file.write(b"edited")
        upload(self, path, key, md5, progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync.S3Side, "upload", racing)
        _, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 1
    assert "verification failed" in err
    assert "-2" in s3.client.head_object(Bucket=s3.bucket, Key=name)["ETag"]  # it was a multipart upload


def test_multipart_etag_is_computed_as_s3_does(s3):
    body = os.urandom(11 * MB)
    config5 = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.client.upload_fileobj(io.BytesIO(body), s3.bucket, "x.bin", Config=config5)
    etag = s3.client.head_object(Bucket=s3.bucket, Key="x.bin")["ETag"].strip('"')
    assert sync.checksum([body[:3], body[3:]], 5 * MB).etag == etag
    assert sync.checksum([body], 5 * MB).md5 != etag


def test_an_unreachable_bucket_is_an_error_pointing_at_doctor(s3, env):
    env(BUCKET_NAME="no-such-bucket-here")
    _, err, code = run("sync", "--from", "s3", "--to", "local")
    assert code == 1
    assert "NoSuchBucket" in err and "keyed_storage doctor" in err


def test_downloaded_files_get_the_upload_permissions_whatever_the_umask(s3, settings):
    # A service often runs with umask 077; the web server that serves MEDIA_ROOT still needs to
    # read what sync brings down, as it reads what a save stores (FILE_UPLOAD_PERMISSIONS).
    settings.FILE_UPLOAD_PERMISSIONS = 0o640
    config.reset()
    s3.client.put_object(Bucket=s3.bucket, Key="site/terms.pdf", Body=b"%PDF terms")
    old = os.umask(0o077)
    try:
        _, err, code = run("sync", "--from", "s3", "--to", "local")
    finally:
        os.umask(old)
    assert code == 0, err
    mode = os.stat(os.path.join(settings.MEDIA_ROOT, "site", "terms.pdf")).st_mode & 0o777
    assert mode == 0o640


def test_a_save_s_leftover_temporary_is_never_uploaded(s3, settings):
    # What a save killed midway leaves beside its target (keyed_storage.backends.local): never
    # a key's file, so never copied.
    from keyed_storage.backends.local import TEMP_PREFIX

    write_local(
        settings.MEDIA_ROOT, {"site/terms.pdf": b"%PDF terms", f"site/{TEMP_PREFIX}x1y2.part": b"%PD"}
    )
    _, err, code = run("sync", "--from", "local", "--to", "s3")
    assert code == 0, err
    assert s3.keys() == ["site/terms.pdf"]
