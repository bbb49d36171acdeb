"""Django's FileField tests (model_fields) with the field's storage a KeyedStorage."""

from .harness import PeerMixin, RealCommits, import_django_tests

test_filefield = import_django_tests("model_fields.test_filefield")
models = import_django_tests("model_fields.models")


class KeyedFileFieldTests(PeerMixin, test_filefield.FileFieldTests):
    media_root = models.temp_storage_dir


class KeyedFileFieldTestsCommitted(RealCommits, KeyedFileFieldTests):
    pass
