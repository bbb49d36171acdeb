"""keyed_storage against django-storages, raw boto3, Pillow alone and the floor, in one run: `make bench`.

Every comparison runs in this process, on this machine, in the same minute, against the same
moto server (its own process on 127.0.0.1). Timings are medians of repeated batches; the
printed ratio is comparator time / keyed_storage time for speed (higher is better for us)
and keyed throughput / comparator throughput for transfers. Nothing here passes or fails.

    python benchmarks/bench.py [--quick] [--only links|storage|servers|images|background|multipart]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import background, images
from benchmarks.common import (
    KEY,
    SECRET,
    boto3_client,
    configure_django,
    per_call,
    row,
    rows,
    start_moto,
    us,
    use_local,
    use_s3,
)

MiB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A name as key builders make them (the filename sanitised), and names with characters to
# encode: a space, '+', '#', '&', an apostrophe, letters outside ASCII.
NAME = "events/7/sessions/3/audio/0661290e4f8c1b2a3d4e5f6a7b8c9d0e/Keynote_talk_final.mp3"
AWKWARD = "events/7/Zoë's talk/0661290e4f8c1b2a3d4e5f6a7b8c9d0e/Q&A #2+notes.mp3"
GREETINGS = "events/7/sessions/3/audio/0661290e4f8c1b2a3d4e5f6a7b8c9d0e/talk 12+Grüße.mp3"


def new_names():
    """A name to encode that no earlier call saw: what the first link to a name costs."""
    for i in itertools.count():
        yield f"events/{i}/Zoë's talk/0661290e4f8c1b2a3d4e5f6a7b8c9d0e/Q&A #{i}+notes.mp3"


# Links --------------------------------------------------------------------------------------


def storages_s3(*, signed: bool, bucket: str = "bench-bucket", endpoint: str | None = None):
    """django-storages' S3Storage configured as keyed_storage is in the same comparison."""
    from storages.backends.s3 import S3Storage

    return S3Storage(
        bucket_name=bucket,
        endpoint_url=endpoint,
        access_key=KEY,
        secret_key=SECRET,
        region_name="us-east-1",
        querystring_auth=signed,
        file_overwrite=True,
    )


def bench_links() -> None:
    from keyed_storage import KeyedStorage

    use_s3(None, "bench-bucket")
    storage = KeyedStorage()
    theirs = storages_s3(signed=False)
    base = "https://bench-bucket.s3.amazonaws.com/"
    named = [
        ("public S3 url()", NAME),
        ("public S3 url(), name to encode", AWKWARD),
        ("public S3 url(), 'talk 12+Grüße.mp3'", GREETINGS),
    ]
    for label, name in named:
        assert storage.url(name).split("/", 3)[3] == theirs.url(name).split("/", 3)[3], "not the same link"
        ours = per_call(lambda name=name: storage.url(name))
        storages_time = per_call(lambda name=name: theirs.url(name), calls=200)
        floor = per_call(lambda name=name: base + quote(name, safe="/~"))
        row(label, us(ours), us(storages_time), "django-storages", f"{storages_time / ours:.0f}x faster")
        row(label, us(ours), us(floor), "string join + quote()", f"{ours / floor:.2f}x the floor")
    # Links are cached per name, as a page's links repeat; a name never linked before is the
    # cold case: validated, normalised and encoded from scratch.
    mine, others = new_names(), new_names()
    ours = per_call(lambda: storage.url(next(mine)), calls=1000, batches=9)
    storages_time = per_call(lambda: theirs.url(next(others)), calls=200, batches=9)
    row(
        "public S3 url(), a new name each call",
        us(ours),
        us(storages_time),
        "django-storages",
        f"{storages_time / ours:.0f}x faster",
    )

    use_s3(None, "bench-bucket", private=True)
    signed_theirs = storages_s3(signed=True)
    for label, name in [("presigned S3 url()", NAME), ("presigned S3 url(), name to encode", AWKWARD)]:
        storage.url(name)
        ours = per_call(lambda name=name: storage.url(name), calls=500)
        storages_time = per_call(lambda name=name: signed_theirs.url(name), calls=100)
        row(label, us(ours), us(storages_time), "django-storages", f"{storages_time / ours:.0f}x faster")

    from django.core.files.storage import FileSystemStorage

    use_local("https://example.org")
    file_system = FileSystemStorage(location=tempfile.gettempdir(), base_url="/media/")
    ours = per_call(lambda: storage.url(NAME))
    theirs_time = per_call(lambda: file_system.url(NAME))
    row(
        "local url() (absolute)",
        us(ours),
        us(theirs_time),
        "FileSystemStorage (relative)",
        f"{ours / theirs_time:.2f}x its time",
    )


def bench_setup() -> None:
    code = (
        "import time, sys; t=time.perf_counter(); import django; from django.conf import settings;"
        "settings.configure(INSTALLED_APPS=['keyed_storage'], MEDIA_ROOT='/tmp', MEDIA_URL='/m/');"
        "django.setup(); import keyed_storage; keyed_storage.KeyedStorage();"
        "print(time.perf_counter()-t, int('boto3' in sys.modules))"
    )
    env = {**os.environ, "BUCKET_NAME": "bench-bucket"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    seconds, boto3_loaded = out.stdout.split()
    row(
        "import + KeyedStorage()",
        f"{float(seconds) * 1e3:.0f} ms",
        "boto3 imported" if boto3_loaded == "1" else "boto3 not imported",
        "no boto3 work",
        "ok" if boto3_loaded == "0" else "FAILS",
    )


def bench_first_use(endpoint: str, bucket: str) -> None:
    from storages.backends.s3 import S3Storage

    from keyed_storage import backends, config

    use_s3(endpoint, bucket)
    start = time.perf_counter()
    backends.for_config(config.current()).client  # noqa: B018
    ours = time.perf_counter() - start
    theirs = S3Storage(bucket_name=bucket, access_key=KEY, secret_key=SECRET, endpoint_url=endpoint)
    start = time.perf_counter()
    theirs.connection  # noqa: B018
    storages_time = time.perf_counter() - start
    row(
        "first-use client",
        f"{ours * 1e3:.0f} ms, once per process",
        f"{storages_time * 1e3:.0f} ms, once per thread",
        "django-storages connection",
        f"{storages_time / ours:.1f}x",
    )


# Requests -----------------------------------------------------------------------------------


def count_requests(client, action) -> Counter:
    seen: Counter = Counter()

    def count(**kwargs):
        seen[kwargs["event_name"].rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send.s3", count)
    action()
    client.meta.events.unregister("before-send.s3", count)
    return seen


def bench_requests(endpoint: str, bucket: str) -> None:
    from django.core.files.base import ContentFile
    from storages.backends.s3 import S3Storage

    from keyed_storage import KeyedStorage, backends, config
    from keyed_storage.keys import object_name

    use_s3(endpoint, bucket)
    storage = KeyedStorage()
    client = backends.for_config(config.current()).client
    ours = count_requests(
        client, lambda: storage.save(object_name("users/1/avatar", "a.png"), ContentFile(b"x"))
    )
    theirs_storage = S3Storage(bucket_name=bucket, access_key=KEY, secret_key=SECRET, endpoint_url=endpoint)
    theirs_storage.file_overwrite = False  # its default for FileSystemStorage-like safety
    theirs = count_requests(
        theirs_storage.connection.meta.client,
        lambda: theirs_storage.save("users/1/avatar/a.png", ContentFile(b"x")),
    )
    row(
        "requests per FileField save",
        " + ".join(f"{n} {op}" for op, n in sorted(ours.items())),
        " + ".join(f"{n} {op}" for op, n in sorted(theirs.items())),
        "django-storages, file_overwrite=False",
        f"{sum(ours.values())} vs {sum(theirs.values())}",
    )


# Transfers ----------------------------------------------------------------------------------


def best_throughputs(ours, theirs, total_bytes: int, rounds: int = 4) -> tuple[float, float]:
    """Best of `rounds` (MiB/s) for each side, the rounds interleaved so both see the same
    server and machine load; the least disturbed run of each side is compared."""
    best = [0.0, 0.0]
    for _ in range(rounds):
        for side, send in enumerate((ours, theirs)):
            start = time.perf_counter()
            send()
            best[side] = max(best[side], total_bytes / MiB / (time.perf_counter() - start))
    return best[0], best[1]


def bench_transfers(endpoint: str, bucket: str, big: int) -> None:
    from keyed_storage import KeyedStorage, upload

    use_s3(endpoint, bucket)
    storage = KeyedStorage()
    client = boto3_client(endpoint)
    # Photos and recordings as users upload them: a known signature, then incompressible bytes.
    one_mib = PNG_SIGNATURE + os.urandom(MiB - len(PNG_SIGNATURE))
    unknown = os.urandom(MiB)  # no signature: puremagic's full scan runs (the slow case)
    large = b"ID3\x04\x00\x00\x00\x00\x00\x00" + os.urandom(big - 10)

    def ours_small():
        for i in range(50):
            storage.save(f"bench/small/{i}", io.BytesIO(one_mib), overwrite=True)

    def ours_unknown():
        for i in range(50):
            storage.save(f"bench/unknown/{i}", io.BytesIO(unknown), overwrite=True)

    def boto_unknown():
        for i in range(50):
            client.upload_fileobj(io.BytesIO(unknown), bucket, f"bench/boto-unknown/{i}")

    def ours_small_upload():
        for i in range(50):
            upload(io.BytesIO(one_mib), f"bench/upload/{i}")

    def boto_small():
        for i in range(50):
            client.upload_fileobj(io.BytesIO(one_mib), bucket, f"bench/boto/{i}")

    for label, ours_fn, theirs_fn in [
        ("50 x 1 MiB images, FileField save", ours_small, boto_small),
        ("50 x 1 MiB unknown binary, FileField save", ours_unknown, boto_unknown),
        ("50 x 1 MiB images, upload() (+1 listing each)", ours_small_upload, boto_small),
    ]:
        ours, theirs = best_throughputs(ours_fn, theirs_fn, 50 * MiB)
        row(
            label, f"{ours:.0f} MiB/s", f"{theirs:.0f} MiB/s", "boto3 upload_fileobj", f"{ours / theirs:.2f}x"
        )

    ours, theirs = best_throughputs(
        lambda: storage.save("bench/big", io.BytesIO(large), overwrite=True),
        lambda: client.upload_fileobj(io.BytesIO(large), bucket, "bench/boto-big"),
        big,
        rounds=2,
    )
    row(
        f"1 x {big // MiB} MiB",
        f"{ours:.0f} MiB/s",
        f"{theirs:.0f} MiB/s",
        "boto3 upload_fileobj",
        f"{ours / theirs:.2f}x",
    )


def bench_servers(servers: dict[str, str], big: int) -> None:
    """The upload paths against each S3 server in one run, each as a share of boto3's own
    put_object on the same server: small files (where per-request costs show) and one large."""
    small = PNG_SIGNATURE + os.urandom(64 * 1024 - len(PNG_SIGNATURE))
    large = b"ID3\x04\x00\x00\x00\x00\x00\x00" + os.urandom(big - 10)
    for server, endpoint in servers.items():
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3_client(endpoint).create_bucket(Bucket=bucket)
        use_s3(endpoint, bucket)
        server_rows(server, endpoint, bucket, "64 KiB", small, 200)
        server_rows(server, endpoint, bucket, f"{big // MiB} MiB", large, 1)


def server_rows(server: str, endpoint: str, bucket: str, size: str, body: bytes, count: int) -> None:
    from keyed_storage import KeyedStorage, upload

    client = boto3_client(endpoint)
    storage, theirs = KeyedStorage(), storages_s3(signed=False, bucket=bucket, endpoint=endpoint)

    def put_object() -> None:
        for i in range(count):
            client.put_object(Bucket=bucket, Key=f"bench/boto/{size}/{i}", Body=body)

    def storages_save() -> None:
        for i in range(count):
            theirs.save(f"bench/storages/{size}/{i}", io.BytesIO(body))

    def keyed_save() -> None:
        for i in range(count):
            storage.save(f"bench/keyed/{size}/{i}", io.BytesIO(body), overwrite=True)

    def keyed_upload() -> None:
        for i in range(count):
            upload(io.BytesIO(body), f"bench/upload/{size}/{i}")

    for label, send in [
        ("django-storages save", storages_save),
        ("KeyedStorage.save", keyed_save),
        ("upload() (+1 listing)", keyed_upload),
    ]:
        ours, base = best_throughputs(send, put_object, len(body) * count, rounds=3 if count > 1 else 2)
        row(
            f"{server}: {count} x {size}, {label}",
            f"{ours:.0f} MiB/s",
            f"{base:.0f} MiB/s",
            "boto3 put_object, same server",
            f"{ours / base:.2f}x",
        )


def bench_memory(endpoint: str, bucket: str, size: int) -> None:
    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rss_child.py")
    growth = {}
    for who in ("keyed", "boto3"):
        out = subprocess.run(
            [sys.executable, child, who, endpoint, bucket, str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        baseline, peak = map(int, out.stdout.split()[-2:])
        growth[who] = (peak - baseline) / 1024  # KiB to MiB
    row(
        f"peak RSS growth, {size // MiB} MiB stream",
        f"+{growth['keyed']:.0f} MiB",
        f"+{growth['boto3']:.0f} MiB",
        "boto3 upload_fileobj (defaults)",
        "within +64 MiB" if growth["keyed"] <= 64 else "OVER 64 MiB",
    )


def bench_multipart(endpoint: str, bucket: str, size: int, rounds: int = 2) -> None:
    """A multipart direct upload as the widget makes it (parts of 16 MiB, four at a time, to
    presigned part URLs the Django process signs eight at a time) against boto3's own
    multipart upload_file with the same part size and concurrency, on the same server; and
    the peak memory of the Django process while the file goes past it."""
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from boto3.s3.transfer import TransferConfig

    part_size, parallel = 16 * MiB, 4
    client = boto3_client(endpoint)
    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multipart_child.py")
    directory = tempfile.mkdtemp(prefix="keyed-bench-multipart-")
    path = os.path.join(directory, "recording.bin")
    with open(path, "wb") as out:  # incompressible, written a MiB at a time
        for _ in range(size // MiB):
            out.write(os.urandom(MiB))
    growth: list[float] = []
    finishing: list[float] = []  # when the last part was stored, each round
    finish_share = 1.0  # of the time, spent in finish_upload() (completing and checking)

    def ours(django: subprocess.Popen, ticket: dict) -> None:
        assert django.stdin is not None and django.stdout is not None
        asking = threading.Lock()
        urls: dict[int, str] = {}
        numbers = list(range(1, ticket["parts"] + 1))

        def url(number: int) -> str:
            with asking:  # one conversation with the Django process at a time
                if number not in urls:
                    batch = [n for n in numbers[number - 1 : number + 7]]
                    django.stdin.write(f"urls {','.join(map(str, batch))}\n")
                    django.stdin.flush()
                    urls.update({int(n): u for n, u in json.loads(django.stdout.readline()).items()})
                return urls[number]

        def send(number: int) -> None:
            with open(path, "rb") as file:
                body = os.pread(file.fileno(), ticket["part_size"], (number - 1) * ticket["part_size"])
            answer = requests.put(url(number), data=body, timeout=300)
            answer.raise_for_status()

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, numbers))
        finishing.append(time.perf_counter())
        django.stdin.write("finish\n")
        django.stdin.flush()
        name, baseline, peak = django.stdout.readline().split()
        django.wait()
        growth.append((int(peak) - int(baseline)) / 1024)
        client.delete_object(Bucket=bucket, Key=name)

    def boto() -> None:
        config = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=parallel
        )
        client.upload_file(path, bucket, "bench/boto3-multipart", Config=config)
        client.delete_object(Bucket=bucket, Key="bench/boto3-multipart")

    best = [0.0, 0.0]
    try:
        for _ in range(rounds):  # interleaved, as in best_throughputs()
            # The Django process starts, and the upload begins (CreateMultipartUpload), before
            # the clock: a site's processes are running already.
            django = subprocess.Popen(
                [sys.executable, child, endpoint, bucket, str(size)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert django.stdout is not None
            ticket = json.loads(django.stdout.readline())
            start = time.perf_counter()
            ours(django, ticket)  # the parts, then finish_upload(): complete and check
            end = time.perf_counter()
            best[0] = max(best[0], size / MiB / (end - start))
            finish_share = min(finish_share, (end - finishing[-1]) / (end - start))
            start = time.perf_counter()
            boto()
            best[1] = max(best[1], size / MiB / (time.perf_counter() - start))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    keyed, theirs = best
    row(
        f"multipart direct upload and finish_upload(), {size // MiB} MiB",
        f"{keyed:.0f} MiB/s",
        f"{theirs:.0f} MiB/s",
        "boto3 upload_file, 16 MiB parts x4",
        f"{keyed / theirs:.2f}x",
    )
    print(f"  (finish_upload(): {finish_share:.0%} of the direct upload's time)", flush=True)
    row(
        f"Django process peak RSS growth, {size // MiB} MiB multipart direct upload",
        f"+{max(growth):.1f} MiB",
        f"{size // MiB} MiB",
        "the bytes uploaded (none pass through Django)",
        f"{max(growth) * MiB / size:.4f}x",
    )


def bench_local_large(size: int) -> None:
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from keyed_storage import KeyedStorage

    use_local()
    storage = KeyedStorage()
    root = tempfile.mkdtemp(prefix="keyed-bench-copy-")
    data = os.urandom(MiB)

    def temporary() -> TemporaryUploadedFile:
        upload = TemporaryUploadedFile("big.bin", "application/octet-stream", size, None)
        for _ in range(size // MiB):
            upload.write(data)
        upload.seek(0)
        return upload

    def ours() -> float:
        upload = temporary()
        start = time.perf_counter()
        storage.save(f"bench/{uuid.uuid4().hex}/big.bin", upload, overwrite=True)
        elapsed = time.perf_counter() - start
        upload.close()
        return elapsed

    def copy(fsync: bool) -> float:
        upload = temporary()
        start = time.perf_counter()
        with open(os.path.join(root, uuid.uuid4().hex), "wb") as out:
            shutil.copyfileobj(upload, out)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        elapsed = time.perf_counter() - start
        upload.close()
        return elapsed

    mine = min(ours() for _ in range(3))
    durable = min(copy(True) for _ in range(3))
    plain = min(copy(False) for _ in range(3))
    rate = size / MiB
    row(
        f"local save, {size // MiB} MiB temp upload",
        f"{rate / mine:.0f} MiB/s",
        f"{rate / durable:.0f} MiB/s",
        "shutil.copyfileobj + fsync",
        f"{durable / mine:.2f}x",
    )
    row(
        f"local save, {size // MiB} MiB temp upload",
        f"{rate / mine:.0f} MiB/s",
        f"{rate / plain:.0f} MiB/s",
        "shutil.copyfileobj, no fsync",
        f"{plain / mine:.2f}x",
    )
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller transfers (64 MiB, 256 MiB stream), fewer image rounds"
    )
    parser.add_argument(
        "--only",
        choices=["links", "storage", "servers", "images", "background", "multipart"],
        help="only the link rows, the storage rows (links, requests, transfers on moto), the upload "
        "rows on moto and SeaweedFS side by side, the image rows, the background work rows (variants "
        "handed to a worker), or the multipart direct upload rows",
    )
    options = parser.parse_args()
    big = 64 * MiB if options.quick else 100 * MiB
    stream = 256 * MiB if options.quick else 1024 * MiB

    media_root = configure_django()
    process, endpoint = start_moto()
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3_client(endpoint).create_bucket(Bucket=bucket)
        print("Running (each line is one comparison)...", flush=True)
        if options.only in (None, "links", "storage"):
            bench_links()
        if options.only in (None, "storage"):
            bench_setup()
            bench_first_use(endpoint, bucket)
            bench_requests(endpoint, bucket)
            bench_transfers(endpoint, bucket, big)
            bench_memory(endpoint, bucket, stream)
            bench_local_large(big)
        if options.only in (None, "servers"):
            # A real object store beside moto (tests/seaweedfs.py starts and stops it).
            from tests.seaweedfs import throwaway_server

            with throwaway_server(KEY, SECRET) as seaweedfs:
                bench_servers({"moto": endpoint, "SeaweedFS": seaweedfs.endpoint}, big)
        if options.only in (None, "images"):
            images.run(endpoint, bucket, quick=options.quick)
        if options.only in (None, "background"):
            background.run(endpoint, bucket, quick=options.quick)
        if options.only in (None, "multipart"):
            bench_multipart(endpoint, bucket, stream)
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(media_root, ignore_errors=True)  # the local saves: hundreds of MiB

    import boto3
    import django
    import storages

    print()
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, django-storages "
        f"{storages.__version__}, boto3 {boto3.__version__}; {os.cpu_count()} cores, "
        f"{platform.machine()}; moto server (and SeaweedFS for the server rows) on 127.0.0.1, "
        "each in its own process."
    )
    headers = ("operation", "keyed_storage", "comparator", "compared with", "ratio")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(5)]
    line = "  ".join("=" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)
    print(f"bench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
