from django import forms

from .models import Profile


class AvatarForm(forms.ModelForm):
    """The model-field pattern: the form saves Profile.avatar, whose upload_to names the key."""

    class Meta:
        model = Profile
        fields = ["avatar"]
