"""Modules moved into the feature subpackages (issue 20) keep their old import paths: each old
path answers with the new module's object and a DeprecationWarning naming where it went."""

from __future__ import annotations

import importlib

import pytest
from django.core import checks

MOVED = [
    ("keyed_storage.middleware", "RequestOriginMiddleware", "keyed_storage.serving.middleware"),
    ("keyed_storage.pictures", "image_html", "keyed_storage.images.markup"),
    ("keyed_storage.multipart", "part_urls", "keyed_storage.direct.multipart"),
    ("keyed_storage.streams", "Readable", "keyed_storage.files.streams"),
    ("keyed_storage.direct_forms", "DirectFileField", "keyed_storage.direct.forms"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_warns_and_gives_the_same_object(old, name, new):
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}: import {name} from {new}"):
        found = getattr(importlib.import_module(old), name)
    assert found is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_a_name_the_new_module_lacks_is_still_an_attribute_error(old, name, new):
    with pytest.warns(DeprecationWarning):
        assert not hasattr(importlib.import_module(old), "no_such_name")


def test_the_public_names_of_the_packages_that_were_modules_need_no_warning(recwarn):
    from keyed_storage.direct import finish_upload, image_size, start_upload
    from keyed_storage.images import ImageRefused, Variant

    assert Variant(10, 10).deconstruct()[0] == "keyed_storage.images.Variant"
    assert all(callable(f) for f in (finish_upload, image_size, start_upload))
    assert ImageRefused.__module__ == "keyed_storage.images.variants"
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


NEW_MIDDLEWARE = "keyed_storage.serving.middleware.RequestOriginMiddleware"


def test_settings_naming_the_old_middleware_path_still_satisfy_the_origin_check(settings):
    # The test settings set no KEYED_STORAGE_BASE_URL: without the middleware the check is E010.
    others = [path for path in settings.MIDDLEWARE if path != NEW_MIDDLEWARE]
    settings.MIDDLEWARE = others
    assert "keyed_storage.E010" in [m.id for m in checks.run_checks(tags=["keyed_storage"])]
    settings.MIDDLEWARE = ["keyed_storage.middleware.RequestOriginMiddleware", *others]
    with pytest.warns(DeprecationWarning, match="keyed_storage.middleware moved"):
        found = checks.run_checks(tags=["keyed_storage"])
    assert "keyed_storage.E010" not in [m.id for m in found]
