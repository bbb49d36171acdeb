"""The import-graph check CI runs (.ci/imports.py): it names every cycle and every private name
taken across modules, lazy and TYPE_CHECKING imports included."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from ..helpers import REPO

SCRIPT = Path(REPO) / ".ci" / "imports.py"


def load_script(path: Path, name: str) -> ModuleType:
    """One of .ci/'s scripts as a module (they are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def imports() -> ModuleType:
    return load_script(SCRIPT, "ci_imports")


def package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / "fake" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "fake"


def test_a_clean_package_passes(imports, tmp_path, capsys):
    fake = package(
        tmp_path,
        {
            "__init__.py": "from .a import thing\n",
            "a.py": "from . import b\nthing = b.value\n",
            "b.py": "from ._helpers import value\n",
            "_helpers.py": "value = 1\n",
        },
    )
    assert imports.main([str(fake)]) == 0
    assert (
        "fake: no import cycle, no private name taken across modules (4 modules)" in capsys.readouterr().out
    )


def test_every_cycle_is_named_with_where_its_imports_stand(imports, tmp_path, capsys):
    fake = package(
        tmp_path,
        {
            "__init__.py": "",
            "config.py": "from .caching import default\n",
            "caching.py": """\
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from .config import Config
            """,
            "sub/__init__.py": "def make():\n    from .one import One\n    return One\n",
            "sub/one.py": "from . import Base\n",
        },
    )
    assert imports.main([str(fake)]) == 1
    out = capsys.readouterr().out
    assert "cycle 1: fake.caching -> fake.config -> fake.caching" in out
    assert "fake.caching -> fake.config (fake/caching.py:3, TYPE_CHECKING)" in out
    assert "fake.config -> fake.caching (fake/config.py:1)" in out
    # A lazy import in a function still makes a cycle: it only postpones the failure.
    assert "cycle 2: fake.sub -> fake.sub.one -> fake.sub" in out
    assert "fake.sub -> fake.sub.one (fake/sub/__init__.py:2, lazy)" in out
    assert "fake: 2 import cycle(s), 0 private name(s)" in out


def test_a_longer_cycle_is_named_once(imports, tmp_path, capsys):
    fake = package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import fake.b\n",
            "b.py": "from fake import c\n",
            "c.py": "from .a import x\n",
        },
    )
    assert imports.main([str(fake)]) == 1
    out = capsys.readouterr().out
    assert "cycle 1: fake.a -> fake.b -> fake.c -> fake.a" in out
    assert "cycle 2" not in out


def test_private_names_taken_from_another_module_are_refused(imports, tmp_path, capsys):
    fake = package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "_cache = {}\n__version__ = '1'\n",
            "b.py": "from .a import _cache, __version__\n",
            "c.py": "from . import a\n\ndef f():\n    return a._cache\n",
            "d.py": "from .sub import _inner\n",
            "sub/__init__.py": "from . import _inner\n",
            "sub/_inner.py": "",
        },
    )
    assert imports.main([str(fake)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "fake/b.py:1: private name _cache taken from fake.a",
        "fake/c.py:4: private name _cache taken from fake.a",
        "fake/d.py:1: private name _inner taken from fake.sub",
        "fake: 0 import cycle(s), 3 private name(s) taken across modules (7 modules, 5 imports)",
    ]


# The function-length check beside it (.ci/lengths.py) ----------------------------------------

LENGTHS = SCRIPT.with_name("lengths.py")


def test_a_function_over_the_limit_is_named_with_its_length(tmp_path):
    lengths = load_script(LENGTHS, "ci_lengths")
    body = "".join(f"    x{n} = {n}\n" for n in range(60))  # def line + 60 = 61 lines
    fake = package(tmp_path, {"a.py": f"def short():\n    return 1\n\n\nasync def long():\n{body}"})
    assert lengths.long_functions(fake) == [f"{fake / 'a.py'}:5: long has 61 lines (limit 60)"]
    assert lengths.long_functions(fake, limit=61) == []
