"""The ticket view: a signed-in user's browser exchanges a field token for a direct-upload ticket.

POST (the site's own form, so with the session cookie and the CSRF token) token, filename,
size and content_type; the answer is JSON {url, fields, reference}, or {error} with 400 for a
file the field refuses (too large, a type it does not accept) and 403 for an anonymous user
or a token not issued to this user. The token (keyed_storage.direct.forms) names the model
field and the key, so a client cannot ask for a ticket for any other place; the field's
validators give the ticket its limits.

A ticket for a file at or above KEYED_STORAGE_DIRECT_PART_THRESHOLD is a multipart one
(keyed_storage.direct.multipart): its answer has part_size, parts and the URLs of the three views below
instead of url and fields. Each of them takes the same token and the ticket's reference, and
answers for this user's binding only: part_urls (the PUT URLs of some parts), uploaded_parts
(which parts are stored, so a reloaded page resumes) and abort_upload (cancel: no part remains).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ..numbers import whole_number
from . import multipart
from .forms import binding, fitting_filename, open_field_token, upload_limits, user_id
from .tickets import start_upload

# How many part URLs one request may ask for: a browser asks for the next few it will send.
MAX_PART_URLS = 100


@never_cache
@require_POST
def ticket(request: HttpRequest) -> JsonResponse:
    """POST token, filename, size, content_type -> {url, fields, reference}."""
    user = user_id(getattr(request, "user", None))
    if user is None:
        return JsonResponse({"error": "Sign in to upload files."}, status=403)
    try:
        grant = open_field_token(request.POST.get("token", ""), user)
    except PermissionDenied as denied:
        return JsonResponse({"error": str(denied)}, status=403)
    size = whole_number(request.POST.get("size", ""))
    if size is None:
        return JsonResponse({"error": "size is the file's length in bytes, in digits 0-9."}, status=400)
    accept, max_size = upload_limits(grant.field)
    try:
        issued = start_upload(
            grant.key,
            filename=fitting_filename(grant.field, grant.key, request.POST.get("filename", "")),
            size=size,
            content_type=request.POST.get("content_type", ""),
            accept=accept,
            max_size=max_size,
            bound_to=binding(grant.field, user),
        )
    except ValidationError as refused:
        return JsonResponse({"error": " ".join(refused.messages)}, status=400)
    except ValueError as wrong:  # a negative size
        return JsonResponse({"error": str(wrong)}, status=400)
    if issued.parts:
        return JsonResponse(
            {
                "reference": issued.reference,
                "part_size": issued.part_size,
                "parts": issued.parts,
                "part_urls": reverse("keyed_storage:direct-part-urls"),
                "uploaded_parts": reverse("keyed_storage:direct-uploaded-parts"),
                "abort": reverse("keyed_storage:direct-abort"),
            }
        )
    return JsonResponse({"url": issued.url, "fields": issued.fields, "reference": issued.reference})


def _for_this_user(view: Callable[[HttpRequest, str], JsonResponse]) -> Callable[[HttpRequest], JsonResponse]:
    """POST token and reference: the view runs with the reference's binding for this user's
    token (a reference bound elsewhere is refused as altered); errors become JSON."""

    @never_cache
    @require_POST
    def checked(request: HttpRequest) -> JsonResponse:
        user = user_id(getattr(request, "user", None))
        if user is None:
            return JsonResponse({"error": "Sign in to upload files."}, status=403)
        try:
            grant = open_field_token(request.POST.get("token", ""), user)
            return view(request, binding(grant.field, user))
        except PermissionDenied as denied:
            return JsonResponse({"error": str(denied)}, status=403)
        except ValidationError as refused:  # a reference refused, an upload gone
            return JsonResponse({"error": " ".join(refused.messages), "code": refused.code}, status=400)
        except ValueError as wrong:  # part numbers outside the upload
            return JsonResponse({"error": str(wrong)}, status=400)

    checked.__doc__ = view.__doc__
    return checked


@_for_this_user
def part_urls(request: HttpRequest, bound_to: str) -> JsonResponse:
    """POST token, reference, numbers ("1,2,3") -> {urls: {number: PUT URL}}."""
    text = request.POST.get("numbers", "")
    pieces = text.split(",", MAX_PART_URLS)  # one more than allowed is enough to refuse
    numbers = [whole_number(piece.strip()) for piece in pieces]
    if None in numbers or len(numbers) > MAX_PART_URLS:
        raise ValueError(f"numbers is a list of 1 to {MAX_PART_URLS} part numbers, e.g. 1,2,3.")
    wanted = [number for number in numbers if number is not None]  # all of them: None was refused
    urls = multipart.part_urls(request.POST.get("reference", ""), wanted, bound_to=bound_to)
    return JsonResponse({"urls": {str(number): url for number, url in urls.items()}})


@_for_this_user
def uploaded_parts(request: HttpRequest, bound_to: str) -> JsonResponse:
    """POST token, reference -> {parts: [[number, size], ...]}: what is stored so far."""
    parts = multipart.uploaded_parts(request.POST.get("reference", ""), bound_to=bound_to)
    return JsonResponse({"parts": [[part.number, part.size] for part in parts]})


@_for_this_user
def abort(request: HttpRequest, bound_to: str) -> JsonResponse:
    """POST token, reference -> {}: the upload and its parts are gone."""
    multipart.abort_upload(request.POST.get("reference", ""), bound_to=bound_to)
    return JsonResponse({})
