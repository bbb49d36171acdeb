"""32 threads on one key: every link is a complete upload, and one object survives, the newest."""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connections

from keyed_storage import KeyedStorage, upload
from keyed_storage.exceptions import StorageError

from ..helpers import s3_server_name

THREADS = 32
pytestmark = pytest.mark.django_db(transaction=True)


def payloads() -> list[bytes]:
    # Distinct and large enough that a torn write would mix two of them.
    return [bytes([i]) * 200_000 + os.urandom(16) for i in range(THREADS)]


def run_all(function, items):
    def call(item):
        try:
            return function(item)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(call, items))


def moto_in_use(mode: str) -> bool:
    return mode == "s3" and s3_server_name() == "moto"


_moto_reads = threading.Lock()


def get(mode: str, url: str) -> requests.Response:
    """GET a link: plainly, on the local disk and on SeaweedFS; on moto, with moto's workaround.

    moto's server is not a faithful S3 under concurrent reads: all GETs of one object share
    one buffer (seek, then read), and a replaced object's buffer is closed while a GET may
    still read it, which answers 500. Real S3 has neither problem, nor has SeaweedFS, where
    these tests run without any workaround. On moto only, the reads are serialised (the
    uploads still race freely) and a 500, which carries no file content, is retried; every
    200 is still checked byte for byte.
    """
    if not moto_in_use(mode):
        return requests.get(url, timeout=30)
    with _moto_reads:
        for _ in range(10):
            response = requests.get(url, timeout=30)
            if response.status_code < 500:
                return response
    return response


def upload_racing(mode: str, data: bytes, key: str, **kwargs) -> str:
    """upload(); on moto only, retried when moto's server answers 500 to racing PUTs of one key.

    moto disposes of an object's buffer when another PUT replaces it, sometimes while the
    first PUT is still building its answer, and then answers 500 (S3 does not, nor does
    SeaweedFS). The failed call raised, returned no URL, and is simply made again. The local
    disk and SeaweedFS get no retries: any failure there fails the test.
    """
    if not moto_in_use(mode):
        return upload(named(data), key, **kwargs)
    for _ in range(5):
        try:
            return upload(named(data), key, **kwargs)
        except StorageError as error:
            status = (
                getattr(error.__cause__, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            )
            if status != 500:
                raise
    return upload(named(data), key, **kwargs)


def named(data: bytes) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = "same.bin"
    return buffer


def test_tokened_uploads_to_one_key_converge_on_the_newest(mode):
    datas = payloads()

    def one(data):
        url = upload_racing(mode, data, "events/1/logo")
        response = get(mode, url)
        # Fetched right away the link serves this upload's bytes, unless a newer upload
        # has already replaced it (then it is gone, never something else).
        assert response.status_code in (200, 403, 404)
        if response.status_code == 200:
            assert response.content == data
        return url

    urls = run_all(one, datas)
    names = KeyedStorage().earlier_objects("events/1/logo")
    assert len(names) == 1, names
    survivor = names[0]
    tokens = {url: url.rsplit("/", 2)[-2] for url in urls}
    newest = max(tokens, key=tokens.get)
    assert newest.endswith(survivor)
    assert get(mode, newest).content == datas[urls.index(newest)]


def test_exact_uploads_to_one_key_always_serve_a_complete_file(mode):
    datas = payloads()

    def one(data):
        url = upload_racing(mode, data, "site/banner.bin", exact=True)
        response = get(mode, url)
        assert response.content in datas, (
            f"a link served a torn or mixed file: HTTP {response.status_code}, "
            f"{len(response.content)} bytes, starting {response.content[:40]!r}"
        )
        return url

    urls = run_all(one, datas)
    assert len(set(urls)) == 1
    assert get(mode, urls[0]).content in datas


def test_parallel_saves_of_different_keys_do_not_interfere(mode):
    datas = payloads()

    def one(index):
        url = upload(named(datas[index]), f"users/{index}/avatar")
        assert requests.get(url, timeout=30).content == datas[index]
        return url

    urls = run_all(one, range(THREADS))
    for index, url in enumerate(urls):
        assert requests.get(url, timeout=30).content == datas[index]
        assert KeyedStorage().earlier_objects(f"users/{index}/avatar") != []
