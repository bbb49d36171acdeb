from django.urls import path

from . import views

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("events/<int:pk>/", views.event_detail, name="event-detail"),
    path("avatar/", views.avatar, name="avatar"),
]
