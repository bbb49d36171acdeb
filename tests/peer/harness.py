"""How Django's test classes are re-pointed at KeyedStorage: by subclassing, without copying their code.

Django's tests build their storage as FileSystemStorage(location, base_url, ...). KeyedStorage
takes no arguments: its configuration is the process's (MEDIA_ROOT, MEDIA_URL, the
environment). So each constructor call becomes settings for the duration of the test, and
the storage is a KeyedStorage that follows them.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

from django.apps import apps
from django.core.files.storage import FileSystemStorage
from django.db.models import FileField
from django.test import override_settings

from keyed_storage import KeyedStorage, config

from . import django_tests
from .differences import DIFFERENCES


def import_django_tests(name: str) -> ModuleType:
    """A module of Django's test suite (e.g. 'file_storage.tests'); fails or skips if it is unavailable."""
    django_tests.require()
    return importlib.import_module(name)


class PeerStorage(KeyedStorage):
    """KeyedStorage plus two read-only attributes of FileSystemStorage that Django's tests read.

    They answer from the configuration and change no behaviour: `location` is MEDIA_ROOT as
    an absolute path, `base_url` the (absolute) link of a name minus that name.
    """

    @property
    def location(self) -> str:
        return os.path.abspath(config.current().media_root)

    @property
    def base_url(self) -> str:
        return self.url("x")[: -len("x")]


class OverwritingPeerStorage(PeerStorage):
    """FileSystemStorage(allow_overwrite=True) as KeyedStorage offers it: save(..., overwrite=True)."""

    def save(self, name, content, max_length=None):
        return super().save(name, content, max_length=max_length, overwrite=True)


def keyed_variant(django_storage: type, method: str) -> type[PeerStorage]:
    """PeerStorage with the one method by which a storage of Django's tests differs (reused, not copied)."""
    return type(f"Keyed{django_storage.__name__}", (PeerStorage,), {method: getattr(django_storage, method)})


class PeerMixin:
    """Put first in the bases of a subclass of one of Django's test classes.

    A test listed in differences.DIFFERENCES runs as an expected failure: if it passes, it
    fails ("Unexpected success").

    `storage_class(...)` and every FileSystemStorage(...) the Django test module builds give
    a KeyedStorage configured by settings instead. Set `media_root` when the test models'
    fields (switched to KeyedStorage for the run, see keyed_storages_on_test_models) must
    store where Django's test expects their files.
    """

    media_root: str | None = None

    def __init__(self, methodName: str = "runTest"):
        super().__init__(methodName)
        if f"{type(self).__name__}.{methodName}" in DIFFERENCES:
            # unittest's expected failure rather than pytest.mark.xfail: the latter judges
            # each subTest on its own, so a passing subTest would count as an XPASS.
            self.__unittest_expecting_failure__ = True

    def setUp(self):
        if self.media_root is not None:
            self.enterContext(override_settings(MEDIA_ROOT=self.media_root))
        for module in self._django_test_modules():
            if module.__dict__.get("FileSystemStorage") is FileSystemStorage:
                self.enterContext(mock.patch.object(module, "FileSystemStorage", self.storage_class))
        super().setUp()
        storage = getattr(self, "storage", None)
        if storage is not None and not isinstance(storage, KeyedStorage):
            self.fail(f"{type(self).__name__} was not re-pointed: its storage is {storage!r}")

    def storage_class(
        self,
        location=None,
        base_url=None,
        file_permissions_mode=None,
        directory_permissions_mode=None,
        allow_overwrite=False,
    ) -> PeerStorage:
        """FileSystemStorage's arguments, given to KeyedStorage as the settings it reads."""
        overrides = {
            setting: value
            for setting, value in (
                ("MEDIA_ROOT", location),
                ("MEDIA_URL", base_url),
                ("FILE_UPLOAD_PERMISSIONS", file_permissions_mode),
                ("FILE_UPLOAD_DIRECTORY_PERMISSIONS", directory_permissions_mode),
            )
            if value is not None
        }
        if overrides:
            # Changing MEDIA_ROOT or MEDIA_URL resets keyed_storage's configuration by itself.
            self.enterContext(override_settings(**overrides))
        return (OverwritingPeerStorage if allow_overwrite else PeerStorage)()

    @classmethod
    def _django_test_modules(cls) -> list[ModuleType]:
        tree = django_tests.fetch()
        modules = {sys.modules[klass.__module__] for klass in cls.__mro__}
        return [m for m in modules if tree and Path(getattr(m, "__file__", None) or "/").is_relative_to(tree)]


class RealCommits:
    """Put before a Django TestCase subclass: no wrapping transaction, so every save commits.

    Django's TestCase then behaves as TransactionTestCase does (tables flushed after each
    test), and keyed_storage's transaction.on_commit clean-ups really run.
    """

    @classmethod
    def _databases_support_transactions(cls) -> bool:
        return False


# The storages of Django's test models, and the module globals its tests reach them by.
_TEST_APPS = ("file_storage", "model_fields")
_STORAGE_GLOBALS = {
    "file_storage.models": "temp_storage",
    "file_storage.tests": "temp_storage",
    "model_fields.models": "temp_storage",
}
# Test storages that are FileSystemStorage with one twist: the twist is kept on KeyedStorage.
_TWISTS = {"CustomValidNameStorage": "get_valid_name", "NoReadFileSystemStorage": "open"}


@contextmanager
def keyed_storages_on_test_models():
    """Switch every FileSystemStorage of Django's test models to a KeyedStorage, then back.

    For the whole run, not per test: keyed_storage learns which fields of a model are on
    KeyedStorage when it first sees an instance of that model.
    """
    replacements: dict[FileSystemStorage, KeyedStorage] = {}

    def keyed(storage):
        if storage not in replacements:
            name = type(storage).__name__
            if type(storage) is FileSystemStorage:
                replacements[storage] = PeerStorage()
            elif name in _TWISTS:
                replacements[storage] = keyed_variant(type(storage), _TWISTS[name])()
            else:
                return storage  # a storage with more than one twist (CallableStorage, ...)
        return replacements[storage]

    undo = []
    for label in _TEST_APPS:
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, FileField) and isinstance(field.storage, FileSystemStorage):
                    undo.append((field, "storage", field.storage))
                    field.storage = keyed(field.storage)
    for module_name, attribute in _STORAGE_GLOBALS.items():
        module = importlib.import_module(module_name)
        undo.append((module, attribute, getattr(module, attribute)))
        setattr(module, attribute, keyed(getattr(module, attribute)))
    try:
        yield
    finally:
        for owner, attribute, value in reversed(undo):
            setattr(owner, attribute, value)
