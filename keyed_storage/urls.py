"""URLconf of keyed_storage's views: path("", include("keyed_storage.urls")).

MEDIA_URL serves stored files and keyed-storage/direct/ and keyed-storage/part/ receive direct
uploads and their parts (keyed_storage.direct.receiver), all in local mode; keyed-storage/ticket/
gives the direct-upload widget its tickets in either mode, and keyed-storage/parts/ the URLs,
list and abort of a multipart upload's parts (keyed_storage.direct.views).
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import path, re_path

from .direct.receiver import receive, receive_part
from .direct.views import abort, part_urls, ticket, uploaded_parts
from .serving.views import serve

app_name = "keyed_storage"

_prefix = urlsplit(settings.MEDIA_URL or "/media/").path.lstrip("/")

urlpatterns = [
    # First, so a MEDIA_URL that contains it cannot shadow it.
    path("keyed-storage/direct/<str:ticket>/", receive, name="direct-upload"),
    path("keyed-storage/part/<str:ticket>/", receive_part, name="direct-part"),
    path("keyed-storage/ticket/", ticket, name="direct-ticket"),
    path("keyed-storage/parts/urls/", part_urls, name="direct-part-urls"),
    path("keyed-storage/parts/uploaded/", uploaded_parts, name="direct-uploaded-parts"),
    path("keyed-storage/parts/abort/", abort, name="direct-abort"),
    re_path(rf"^{re.escape(_prefix)}(?P<path>.+)$", serve, name="media"),
]
