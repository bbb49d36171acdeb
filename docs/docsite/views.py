"""Step 5 of "Add it to your project": a page that shows every photo."""

from django.shortcuts import render

from .models import Photo


def photos(request):
    return render(request, "photos.html", {"photos": Photo.objects.order_by("id")})
