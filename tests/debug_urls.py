"""A URLconf for the secrets test: one view whose upload fails, to render Django's debug page."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import path

from keyed_storage import upload


def failing_upload(request):
    upload(SimpleUploadedFile("a.png", b"data"), "users/1/avatar")


urlpatterns = [path("fail/", failing_upload)]
