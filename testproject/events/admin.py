from django.contrib import admin

from .models import Event, Profile, Session


class SessionInline(admin.TabularInline):
    model = Session
    extra = 0


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "logo"]
    inlines = [SessionInline]


admin.site.register(Session)
admin.site.register(Profile)
