"""32 threads on one key: every link is a complete upload, and one object survives, the newest."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connections

from keyed_storage import KeyedStorage, upload

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


def get_retrying_5xx(url: str) -> requests.Response:
    """GET as an S3 client does, retrying 5xx answers.

    moto's server closes a replaced object's buffer while a GET may still be reading it and
    answers 500 (S3 itself replaces objects atomically). A 500 carries no file content, so
    retrying it hides no torn write: every 200 below is still checked byte for byte.
    """
    for _ in range(10):
        response = requests.get(url, timeout=30)
        if response.status_code < 500:
            return response
    return response


def named(data: bytes) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = "same.bin"
    return buffer


def test_tokened_uploads_to_one_key_converge_on_the_newest(mode):
    datas = payloads()

    def one(data):
        url = upload(named(data), "events/1/logo")
        response = requests.get(url, timeout=30)
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
    assert requests.get(newest, timeout=30).content == datas[urls.index(newest)]


def test_exact_uploads_to_one_key_always_serve_a_complete_file(mode):
    datas = payloads()

    def one(data):
        url = upload(named(data), "site/banner.bin", exact=True)
        response = get_retrying_5xx(url)
        assert response.content in datas, (
            f"a link served a torn or mixed file: HTTP {response.status_code}, "
            f"{len(response.content)} bytes, starting {response.content[:40]!r}"
        )
        return url

    urls = run_all(one, datas)
    assert len(set(urls)) == 1
    assert requests.get(urls[0], timeout=30).content in datas


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
