from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("events/<int:pk>/", views.event_detail, name="event-detail"),
    path("avatar/", views.avatar, name="avatar"),
    path("avatar/upload/", views.avatar_upload, name="avatar-upload"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="events/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="event-list"), name="logout"),
]
