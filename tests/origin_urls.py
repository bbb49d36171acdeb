"""A URLconf for the request-origin tests: exports streamed row by row, each row with a file link."""

from django.http import StreamingHttpResponse
from django.urls import path

from events.models import Event


def export(request):
    rows = (f"{event.name},{event.logo.url}\n" for event in Event.objects.order_by("pk"))
    return StreamingHttpResponse(rows, content_type="text/csv")


async def async_export(request):
    async def rows():
        async for event in Event.objects.order_by("pk"):
            yield f"{event.name},{event.logo.url}\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


urlpatterns = [path("export/", export), path("async-export/", async_export)]
