"""Public pages of the demo. Templates use {% image %} and {{ field.url }}: nothing here reads storage."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from keyed_storage import upload
from keyed_storage.exceptions import FileRefused

from .about import about_this_demo
from .forms import AvatarForm
from .models import Event, Profile

AVATAR_MAX = 5 * 1024 * 1024


def event_list(request):
    context = {"events": Event.objects.all(), "about": about_this_demo()}
    return render(request, "events/event_list.html", context)


def event_detail(request, pk):
    event = get_object_or_404(Event.objects.prefetch_related("sessions", "speakers", "sponsors"), pk=pk)
    return render(request, "events/event_detail.html", {"event": event})


@login_required
def avatar(request):
    """Pattern 1, the model field: a ModelForm saves Profile.avatar under users/<id>/avatar."""
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = AvatarForm(request.POST or None, request.FILES or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Avatar saved through the model field.")
        return redirect("avatar")
    return render(request, "events/avatar.html", {"form": form, "profile": profile})


@login_required
@require_POST
def avatar_upload(request):
    """Pattern 2, upload() in a view: store the file under a key and get its absolute URL back."""
    file = request.FILES.get("profile_pic")
    if file is None:
        return JsonResponse({"error": "send the image as 'profile_pic'"}, status=400)
    wants_json = request.headers.get("Accept") == "application/json"
    try:
        # Only pictures, and not huge ones: a refused file is stored nowhere and the
        # user's current picture stays.
        url = upload(file, f"users/{request.user.id}/profile_pic", accept=["image/*"], max_size=AVATAR_MAX)
    except FileRefused as refused:
        if wants_json:
            return JsonResponse({"error": " ".join(refused.messages)}, status=400)
        return _avatar_page(request, upload_errors=refused.messages, status=400)
    if wants_json:
        return JsonResponse({"url": url})
    return _avatar_page(request, url=url)


def _avatar_page(request, status=200, **context):
    profile, _ = Profile.objects.get_or_create(user=request.user)
    form = AvatarForm(instance=profile)
    context |= {"form": form, "profile": profile}
    return render(request, "events/avatar.html", context, status=status)
