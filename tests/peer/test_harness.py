"""The harness itself: Django's test models really store through KeyedStorage during the run."""

from django.apps import apps
from django.db.models import FileField

from keyed_storage import KeyedStorage

from .harness import import_django_tests

file_storage_models = import_django_tests("file_storage.models")
model_fields_models = import_django_tests("model_fields.models")


def test_the_test_models_store_through_keyed_storage():
    elsewhere = [
        f"{model.__name__}.{field.name}"
        for label in ("file_storage", "model_fields")
        for model in apps.get_app_config(label).get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, FileField) and not isinstance(field.storage, KeyedStorage)
    ]
    # CallableStorage is a storage class given as a callable; only tests not run here use it.
    assert elsewhere == ["Storage.storage_callable_class"]
    assert isinstance(file_storage_models.temp_storage, KeyedStorage)
    assert isinstance(model_fields_models.temp_storage, KeyedStorage)
