"""Django's file_storage tests (the Storage contract, FileField on a storage) on KeyedStorage."""

import re

from django.core.exceptions import SuspiciousFileOperation

from .harness import PeerMixin, RealCommits, import_django_tests

tests = import_django_tests("file_storage.tests")
generate_filename = import_django_tests("file_storage.test_generate_filename")
models = import_django_tests("file_storage.models")


class KeyedFileStorageTests(PeerMixin, tests.FileStorageTests):
    pass


class KeyedOverwritingStorageTests(PeerMixin, tests.OverwritingStorageTests):
    """FileSystemStorage(allow_overwrite=True): KeyedStorage.save(..., overwrite=True)."""


class KeyedFileFieldStorageTests(PeerMixin, tests.FileFieldStorageTests):
    media_root = models.temp_storage_location


class KeyedFileFieldStorageTestsCommitted(RealCommits, KeyedFileFieldStorageTests):
    pass


class KeyedFileSaveRaceConditionTest(PeerMixin, tests.FileSaveRaceConditionTest):
    pass


class KeyedFileStoragePermissions(PeerMixin, tests.FileStoragePermissions):
    pass


class KeyedFileStoragePathParsing(PeerMixin, tests.FileStoragePathParsing):
    pass


class KeyedContentFileStorageTestCase(PeerMixin, tests.ContentFileStorageTestCase):
    pass


class KeyedFileLikeObjectTestCase(PeerMixin, tests.FileLikeObjectTestCase):
    # Django's [] would hide django.contrib.auth, which the demo site's middleware needs.
    available_apps = None


class KeyedStorageGenerateFilenameTests(PeerMixin, generate_filename.StorageGenerateFilenameTests):
    pass


class KeyedGenerateFilenameStorageTests(PeerMixin, generate_filename.GenerateFilenameStorageTests):
    def assertRaisesMessage(self, expected_exception, expected_message, *args, **kwargs):
        """Django's SuspiciousFileOperation, in Django's words or keyed_storage's ("Refused key ...")."""
        if expected_exception is SuspiciousFileOperation:
            pattern = f"{re.escape(expected_message)}|^Refused key "
            return self.assertRaisesRegex(expected_exception, pattern, *args, **kwargs)
        return super().assertRaisesMessage(expected_exception, expected_message, *args, **kwargs)
