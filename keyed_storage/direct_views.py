"""The ticket view: a signed-in user's browser exchanges a field token for a direct-upload ticket.

POST (the site's own form, so with the session cookie and the CSRF token) token, filename,
size and content_type; the answer is JSON {url, fields, reference}, or {error} with 400 for a
file the field refuses (too large, a type it does not accept) and 403 for an anonymous user
or a token not issued to this user. The token (keyed_storage.direct_forms) names the model
field and the key, so a client cannot ask for a ticket for any other place; the field's
validators give the ticket its limits.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .direct import start_upload
from .direct_forms import binding, fitting_filename, open_field_token, upload_limits, user_id


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
    try:
        size = int(request.POST.get("size", ""))
    except ValueError:
        return JsonResponse({"error": "size is the file's length in bytes."}, status=400)
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
    return JsonResponse({"url": issued.url, "fields": issued.fields, "reference": issued.reference})
