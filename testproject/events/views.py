from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from keyed_storage import upload

from .models import Event


def event_list(request):
    return render(request, "events/event_list.html", {"events": Event.objects.all()})


def event_detail(request, pk):
    event = get_object_or_404(Event, pk=pk)
    return render(request, "events/event_detail.html", {"event": event})


@login_required
def avatar(request):
    """The view pattern from the README: upload() with a key, the absolute URL comes back."""
    url = None
    if request.method == "POST" and "profile_pic" in request.FILES:
        url = upload(request.FILES["profile_pic"], f"users/{request.user.id}/profile_pic")
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"url": url})
    return render(request, "events/avatar.html", {"url": url})
