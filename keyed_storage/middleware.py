"""RequestOriginMiddleware: local links made while a request is handled start with its origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse

from .origin import NotedRequest, enter, leave

_END = object()


class RequestOriginMiddleware:
    """Gives keyed_storage the origin of the request being handled, under WSGI and ASGI.

    The request is current for the middleware below this one, the view, and the body of a
    streaming response while it is sent, and for nothing else: the next request served by
    the same thread or task starts without it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        noted = NotedRequest(request)
        token = enter(noted)
        try:
            response = self.get_response(request)
        finally:
            leave(token)
        return _noted_while_streaming(response, noted)

    async def __acall__(self, request):
        noted = NotedRequest(request)
        token = enter(noted)
        try:
            response = await self.get_response(request)
        finally:
            leave(token)
        return _noted_while_streaming(response, noted)


def _noted_while_streaming(response, noted: NotedRequest):
    # A streaming body (a CSV export of rows with file links, say) is produced after the
    # view has returned, while the server sends it. A file's own bytes make no links, and
    # replacing a FileResponse's content would cost it the server's sendfile path.
    if not response.streaming or isinstance(response, FileResponse):
        return response
    if response.is_async:
        response.streaming_content = _achunks(response.streaming_content, noted)
    else:
        response.streaming_content = _chunks(response.streaming_content, noted)
    return response


# Each chunk is made with the request entered and left again before it is yielded: between
# chunks the server may serve other requests in this thread or task.
def _chunks(content, noted: NotedRequest) -> Iterator[bytes]:
    content = iter(content)
    while True:
        token = enter(noted)
        try:
            chunk = next(content, _END)
        finally:
            leave(token)
        if chunk is _END:
            return
        yield chunk


async def _achunks(content, noted: NotedRequest) -> AsyncIterator[bytes]:
    content = aiter(content)
    while True:
        token = enter(noted)
        try:
            chunk = await anext(content, _END)
        finally:
            leave(token)
        if chunk is _END:
            return
        yield chunk
