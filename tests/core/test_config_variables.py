"""The one table of variables: no variable in it can be missed by config, checks, doctor or the docs."""

from __future__ import annotations

import os

import pytest
from django.core.checks import run_checks
from docutils import nodes
from docutils.core import publish_doctree

from keyed_storage import config
from keyed_storage.variables import TABLE, Variable, rst_table, secret, text

from ..helpers import REPO, TEST_KEY, TEST_SECRET
from ..ops_helpers import run

ROOT = REPO

# What a variable needs beside it to be valid at all: without it, its example is an error of
# another variable (E001 for half a key pair, E007 for link lifetimes of public links).
COMPANIONS = {
    "AWS_KEY": {"AWS_SECRET": TEST_SECRET},
    "AWS_SECRET": {"AWS_KEY": TEST_KEY},
    "KEYED_STORAGE_URL_EXPIRES": {"KEYED_STORAGE_PRIVATE": "1"},
}
ALL = pytest.mark.parametrize("variable", TABLE, ids=[variable.name for variable in TABLE])
PARSED = [variable for variable in TABLE if variable.invalid is not None]


def valid_env(variable: Variable) -> dict[str, str]:
    """The variable's example, and what it needs: a bucket where it means something in S3 only."""
    bucket = {"BUCKET_NAME": "site-media"} if variable.mode == "s3" else {}
    return {**bucket, **COMPANIONS.get(variable.name, {}), variable.name: variable.example}


def set_in_mode(request, env, variable: Variable, value: str) -> None:
    """Switch to the variable's mode with a real store (S3 on the test server, or the local disk
    served by the live server) and set the variable, unless the mode's fixture already did."""
    request.getfixturevalue("s3" if variable.mode == "s3" else "local")
    os.makedirs(request.getfixturevalue("settings").MEDIA_ROOT, exist_ok=True)
    extra = {**COMPANIONS.get(variable.name, {}), variable.name: value}
    env(**{name: text for name, text in extra.items() if name not in os.environ})


def test_the_docs_make_the_table_from_the_declaration():
    """docs/reference/configuration.rst has the table made at build time (docs/_ext), so it
    cannot go stale; the table must be valid reStructuredText with a row per variable."""
    with open(os.path.join(ROOT, "docs", "reference", "configuration.rst"), encoding="utf-8") as page:
        assert "\n.. keyed-storage-variables::\n" in page.read()
    with open(os.path.join(ROOT, "docs", "_ext", "keyed_storage_docs.py"), encoding="utf-8") as extension:
        assert "rst_table()" in extension.read()
    doctree = publish_doctree(rst_table(), settings_overrides={"halt_level": 2, "report_level": 2})
    (table,) = doctree.findall(nodes.table)
    rows = list(table.findall(nodes.row))
    assert [row.astext().split()[0] for row in rows[1:]] == [variable.name for variable in TABLE]


@ALL
def test_the_readme_lists_it(variable):
    assert f"\n``{variable.name}``  " in rst_table()


@ALL
def test_config_reads_it_into_its_field(env, variable):
    env(**valid_env(variable))
    current, problems = config.inspect()
    assert problems == []
    assert current is not None
    assert getattr(current, variable.field) == variable.parse(variable.name, variable.example)
    assert getattr(current, variable.field) != variable.default, "the example must differ from the default"
    assert (variable.name, "environment") in current.sources
    assert variable.name in config.VARIABLES


@pytest.mark.parametrize("variable", PARSED, ids=[variable.name for variable in PARSED])
def test_an_invalid_value_is_a_problem_naming_it(env, variable):
    env(**{**valid_env(variable), variable.name: variable.invalid})
    _, problems = config.inspect()
    assert [p.variable for p in problems] == [variable.name]
    assert variable.name in problems[0].message


def test_the_variables_that_take_any_value_are_plain_text():
    assert {variable.name for variable in TABLE if variable.invalid is None} == {"AWS_KEY", "AWS_SECRET"}
    assert all(variable.parse in (text, secret) for variable in TABLE if variable.invalid is None)


@ALL
def test_the_system_checks_run_with_it(env, settings, variable):
    settings.MIDDLEWARE = ["keyed_storage.serving.middleware.RequestOriginMiddleware", *settings.MIDDLEWARE]
    env(**valid_env(variable))
    assert [m for m in run_checks(tags=["keyed_storage"]) if m.is_serious()] == []
    if variable.invalid is not None:
        env(**{variable.name: variable.invalid})
        errors = [m for m in run_checks(tags=["keyed_storage"]) if m.is_serious()]
        assert [error.obj for error in errors] == [variable.name]


@pytest.mark.django_db(transaction=True)
@ALL
def test_doctor_shows_it(request, env, variable):
    set_in_mode(request, env, variable, variable.example)
    out, err, _ = run("doctor")
    seen = [line for line in out.splitlines() if line.startswith(f"  {variable.name}=")]
    assert len(seen) == 1, out + err
    if variable.secret:
        assert seen[0] == f"  {variable.name}=(set, not shown)  (environment)"
        assert os.environ[variable.name] not in out + err


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variable", PARSED, ids=[variable.name for variable in PARSED])
def test_doctor_names_an_invalid_value(request, env, variable):
    set_in_mode(request, env, variable, variable.example)
    env(**{variable.name: variable.invalid})
    out, _, code = run("doctor")
    assert code == 1
    assert "Backend: none, the configuration is incomplete." in out
    assert f"cause: {variable.name}=" in out
