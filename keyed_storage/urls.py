"""URLconf of keyed_storage's views: path("", include("keyed_storage.urls")).

MEDIA_URL serves stored files and keyed-storage/direct/ receives direct uploads
(keyed_storage.endpoint), both in local mode; keyed-storage/ticket/ gives the direct-upload
widget its tickets in either mode (keyed_storage.direct_views).
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import path, re_path

from .direct_views import ticket
from .endpoint import receive
from .views import serve

app_name = "keyed_storage"

_prefix = urlsplit(settings.MEDIA_URL or "/media/").path.lstrip("/")

urlpatterns = [
    # First, so a MEDIA_URL that contains it cannot shadow it.
    path("keyed-storage/direct/<str:ticket>/", receive, name="direct-upload"),
    path("keyed-storage/ticket/", ticket, name="direct-ticket"),
    re_path(rf"^{re.escape(_prefix)}(?P<path>.+)$", serve, name="media"),
]
