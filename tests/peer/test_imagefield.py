"""Django's ImageField tests (model_fields) with the fields' storage a KeyedStorage."""

from .harness import PeerMixin, RealCommits, import_django_tests

test_imagefield = import_django_tests("model_fields.test_imagefield")
models = import_django_tests("model_fields.models")


class KeyedImageField(PeerMixin):
    media_root = models.temp_storage_dir


class KeyedImageFieldTests(KeyedImageField, test_imagefield.ImageFieldTests):
    pass


class KeyedImageFieldTwoDimensionsTests(KeyedImageField, test_imagefield.ImageFieldTwoDimensionsTests):
    pass


class KeyedImageFieldNoDimensionsTests(KeyedImageField, test_imagefield.ImageFieldNoDimensionsTests):
    pass


class KeyedImageFieldOneDimensionTests(KeyedImageField, test_imagefield.ImageFieldOneDimensionTests):
    pass


class KeyedImageFieldDimensionsFirstTests(KeyedImageField, test_imagefield.ImageFieldDimensionsFirstTests):
    pass


class KeyedImageFieldUsingFileTests(KeyedImageField, test_imagefield.ImageFieldUsingFileTests):
    pass


class KeyedTwoImageFieldTests(KeyedImageField, test_imagefield.TwoImageFieldTests):
    pass


class KeyedNoReadTests(KeyedImageField, test_imagefield.NoReadTests):
    pass


class KeyedImageFieldTestsCommitted(RealCommits, KeyedImageFieldTests):
    pass


class KeyedImageFieldTwoDimensionsTestsCommitted(RealCommits, KeyedImageFieldTwoDimensionsTests):
    pass


class KeyedTwoImageFieldTestsCommitted(RealCommits, KeyedTwoImageFieldTests):
    pass


class KeyedImageFieldNoDimensionsTestsCommitted(RealCommits, KeyedImageFieldNoDimensionsTests):
    pass


class KeyedImageFieldOneDimensionTestsCommitted(RealCommits, KeyedImageFieldOneDimensionTests):
    pass


class KeyedImageFieldDimensionsFirstTestsCommitted(RealCommits, KeyedImageFieldDimensionsFirstTests):
    pass


class KeyedImageFieldUsingFileTestsCommitted(RealCommits, KeyedImageFieldUsingFileTests):
    pass


class KeyedNoReadTestsCommitted(RealCommits, KeyedNoReadTests):
    pass
