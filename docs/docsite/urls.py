"""The docs' URLconf: the admin, one page showing the photos, and keyed_storage's views."""

from django.contrib import admin
from django.urls import include, path

from docsite.views import photos

urlpatterns = [
    path("admin/", admin.site.urls),
    path("photos/", photos, name="photos"),
    path("", include("keyed_storage.urls")),
]
