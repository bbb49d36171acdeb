"""RequestOriginMiddleware: local links made while a request is handled start with its origin."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, HttpResponseBase

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

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]):
        # Sync or async, as is_async says at run time; a type cannot tie the two together.
        self.get_response: Callable[[HttpRequest], Any] = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        noted = NotedRequest(request)
        token = enter(noted)
        try:
            response = self.get_response(request)
        finally:
            leave(token)
        return _noted_while_streaming(response, noted)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        noted = NotedRequest(request)
        token = enter(noted)
        try:
            response = await self.get_response(request)
        finally:
            leave(token)
        return _noted_while_streaming(response, noted)


def _noted_while_streaming(response: HttpResponseBase, noted: NotedRequest) -> HttpResponseBase:
    # A streaming body (a CSV export of rows with file links, say) is produced after the
    # view has returned, while the server sends it. A file's own bytes make no links, and
    # replacing a FileResponse's content would cost it the server's sendfile path.
    if not response.streaming or isinstance(response, FileResponse):
        return response
    # Only a StreamingHttpResponse streams, and its is_async says whether streaming_content is
    # sync or async: facts the stubs cannot narrow on, so these three lines go unchecked.
    if response.is_async:  # type: ignore[attr-defined]
        response.streaming_content = _achunks(response.streaming_content, noted)  # type: ignore[attr-defined]
    else:
        response.streaming_content = _chunks(response.streaming_content, noted)  # type: ignore[attr-defined]
    return response


# Each chunk is made with the request entered and left again before it is yielded: between
# chunks the server may serve other requests in this thread or task.
def _chunks(content: Iterable[bytes], noted: NotedRequest) -> Iterator[bytes]:
    content = iter(content)
    while True:
        token = enter(noted)
        try:
            chunk = next(content, _END)
        finally:
            leave(token)
        if chunk is _END:
            return
        yield chunk  # type: ignore[misc]  # anything but the _END sentinel is a chunk of content


async def _achunks(content: AsyncIterable[bytes], noted: NotedRequest) -> AsyncIterator[bytes]:
    content = aiter(content)
    while True:
        token = enter(noted)
        try:
            chunk = await anext(content, _END)
        finally:
            leave(token)
        if chunk is _END:
            return
        yield chunk  # type: ignore[misc]  # as in _chunks
