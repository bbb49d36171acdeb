"""URLconf serving MEDIA_URL in local mode: path("", include("keyed_storage.urls"))."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import re_path

from .views import serve

app_name = "keyed_storage"

_prefix = urlsplit(settings.MEDIA_URL or "/media/").path.lstrip("/")

urlpatterns = [
    re_path(rf"^{re.escape(_prefix)}(?P<path>.+)$", serve, name="media"),
]
