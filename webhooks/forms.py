from __future__ import annotations

from django import forms
from django.db import models

from . import transport
from .models import Endpoint, EventType


def formfield(field: models.Field, **kwargs) -> forms.Field:
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"  # Django 6's default, and a webhook's
    return field.formfield(**kwargs)


class EndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(event, event) for event in EventType.values],
        widget=forms.CheckboxSelectMultiple,
        help_text="Baton sends only these.",
    )

    class Meta:
        model = Endpoint
        fields = ["url", "description", "events", "enabled"]
        formfield_callback = formfield


class NewEndpointForm(EndpointForm):
    secret = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        widget=forms.PasswordInput,
        help_text="Leave empty to have one generated (shown once). Or give a whsec_… secret.",
    )

    field_order = ["url", "description", "events", "secret", "enabled"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if secret:
            try:
                transport.secret_key(secret)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
            if not secret.startswith(transport.SECRET_PREFIX):
                secret = transport.SECRET_PREFIX + secret
        return secret

    def save(self, commit: bool = True) -> Endpoint:
        self.instance.secret = self.cleaned_data["secret"] or transport.new_secret()
        return super().save(commit)
