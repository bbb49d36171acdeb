from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("events.urls")),
    # Serves MEDIA_URL when files are on the local disk; answers 404 in S3 mode.
    path("", include("keyed_storage.urls")),
]
