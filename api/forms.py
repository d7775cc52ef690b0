"""The pages' forms hold the rules for what may be submitted: the API applies them too."""

from __future__ import annotations

from django import forms
from rest_framework.exceptions import ErrorDetail, ValidationError


def checked(form: forms.BaseForm) -> dict:
    """The form's cleaned data, or a 422 listing its errors by field."""
    if not form.is_valid():
        raise ValidationError(
            {
                field: [
                    ErrorDetail(message, error.code or "invalid")
                    for error in errors
                    for message in error
                ]
                for field, errors in form.errors.as_data().items()
            }
        )
    return form.cleaned_data


def form_data(values: dict) -> dict:
    """JSON values as a form reads them: null is an empty field."""
    return {key: "" if value is None else value for key, value in values.items()}
