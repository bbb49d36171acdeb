"""One backend interface: every place answers the Backend protocol alike, and the operations
(doctor, sync, policy) reach S3 only through it, so a third place is one module."""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import pytest

import keyed_storage.ops
from keyed_storage import backends, config
from keyed_storage.backends import Backend, Digest
from keyed_storage.backends.local import LocalBackend
from keyed_storage.backends.s3 import S3Backend

OPS = Path(keyed_storage.ops.__file__).parent
S3_LIBRARIES = ("boto3", "botocore", "s3transfer", "mypy_boto3_s3")
# Modules that name botocore's exception classes, and never a client: why each may.
READS_S3_ERRORS = {
    "explain.py": "turns botocore's exceptions into the doctor's causes and fixes",
    "variants.py": "lets an error of botocore's, raised while an S3 file is read lazily, stop the run",
}
# The methods the operations added, named alike in both places (see backends/__init__.py).
OPERATIONS = (
    "identity",
    "region",
    "listing",
    "incomplete_upload_expiry",
    "look",
    "digest",
    "stream",
    "part_size",
    "store_file",
    "refresh_cache_control",
)


def protocol_methods() -> list[str]:
    return sorted(
        name
        for protocol in Backend.__mro__  # the capabilities it is made of (backends/protocols.py)
        if protocol.__module__ == Backend.__module__
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    )


def imported_modules(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def ops_modules() -> list[Path]:
    modules = sorted(OPS.glob("*.py"))
    assert {"doctor.py", "sync.py", "policy.py"} <= {path.name for path in modules}
    return modules


@pytest.mark.parametrize("path", ops_modules(), ids=lambda path: path.name)
def test_operations_import_no_s3_library(path):
    """Not even for type hints: knowing the S3 client is the S3 backend's business."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = [name for name in imported_modules(tree) if name.split(".")[0] in S3_LIBRARIES]
    if path.name in READS_S3_ERRORS:
        assert found == ["botocore.exceptions"], READS_S3_ERRORS[path.name]
        return
    assert found == [], f"{path.name} imports {found}: ask the backend instead"


@pytest.mark.parametrize("path", ops_modules(), ids=lambda path: path.name)
def test_operations_never_touch_a_client(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    uses = [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("client", "_create_session", "bucket_name")
    ]
    assert uses == [], f"{path.name} reaches into the S3 backend: {uses}"


def test_the_protocol_lists_the_operations():
    assert set(OPERATIONS) <= set(protocol_methods())


@pytest.mark.parametrize("place", [S3Backend, LocalBackend], ids=["s3", "local"])
@pytest.mark.parametrize("method", protocol_methods())
def test_every_place_answers_every_method_of_the_protocol(place, method):
    """Same parameters, in the same order, of the same kinds, with the same defaults. A place
    may take more (django-storages' url() does) only as optional extras, so every caller of
    the protocol works with it."""
    wanted = list(inspect.signature(getattr(Backend, method)).parameters.values())
    implemented = getattr(place, method, None)
    assert callable(implemented), f"{place.__name__} has no {method}()"
    given = list(inspect.signature(implemented).parameters.values())
    assert [(p.name, p.kind, p.default) for p in given[: len(wanted)]] == [
        (p.name, p.kind, p.default) for p in wanted
    ], f"{place.__name__}.{method}{inspect.signature(implemented)} != Backend.{method}"
    extras = given[len(wanted) :]
    assert all(p.default is not p.empty or p.kind is p.VAR_KEYWORD for p in extras), extras


@pytest.mark.parametrize("method", OPERATIONS)
def test_both_places_write_the_operations_exactly_as_the_protocol_does(method):
    """The operations' methods are new and ours: identical signatures, annotations included
    (a place may narrow what it returns, e.g. the disk's region() is always None)."""
    wanted = inspect.signature(getattr(Backend, method)).parameters
    for place in (S3Backend, LocalBackend):
        given = inspect.signature(getattr(place, method)).parameters
        assert [(p.name, p.kind, p.default, p.annotation) for p in given.values()] == [
            (p.name, p.kind, p.default, p.annotation) for p in wanted.values()
        ], f"{place.__name__}.{method}"


def test_both_places_name_themselves():
    assert (S3Backend.backend, LocalBackend.backend) == ("s3", "local")


@pytest.mark.django_db(transaction=True)
def test_the_operations_answer_alike_in_both_places(mode, tmp_path):
    """What sync and doctor rely on, asked of whichever place is configured."""
    backend = backends.for_config(config.current())
    body = b"%PDF slides " * 1000
    source = tmp_path / "slides.pdf"
    source.write_bytes(body)
    name = "events/7/slides/0661a1b2c3d4e5f60718293a4b5c6d7e/slides.pdf"
    sent = []
    backend.store_file(name, str(source), md5=hashlib.md5(body).hexdigest(), progress=sent.append)
    assert sum(sent) == len(body)

    look = backend.look(name)
    assert look is not None and look.size == len(body)
    assert look.cache_control == config.current().cache_control  # a tokened name: the long one
    assert backend.refresh_cache_control(name, look) is False  # it has it already
    assert b"".join(backend.stream(name)) == body
    assert backend.listing("events/7/", 10).names == [name]
    assert backend.listing("events/8/", 10).names == []
    assert backend.look("events/7/slides/missing.pdf") is None
    assert backend.part_size(len(body)) is None  # small: one piece
    digest = backend.digest(name, look)
    # S3 vouches for the MD5 (its ETag); a file on disk vouches for nothing.
    assert digest == (Digest(hashlib.md5(body).hexdigest()) if mode == "s3" else None)
