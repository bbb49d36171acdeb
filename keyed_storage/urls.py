"""URLconf of keyed_storage's local-mode views: path("", include("keyed_storage.urls")).

MEDIA_URL serves stored files; keyed-storage/direct/ receives direct uploads (keyed_storage.endpoint).
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import path, re_path

from .endpoint import receive
from .views import serve

app_name = "keyed_storage"

_prefix = urlsplit(settings.MEDIA_URL or "/media/").path.lstrip("/")

urlpatterns = [
    # First, so a MEDIA_URL that contains it cannot shadow it.
    path("keyed-storage/direct/<str:ticket>/", receive, name="direct-upload"),
    re_path(rf"^{re.escape(_prefix)}(?P<path>.+)$", serve, name="media"),
]
