"""Operators' writes to webhook endpoints and deliveries, from the Webhooks pages or the
admin: each one transaction with its audit row (agents.actions' writer)."""

from __future__ import annotations

from django.db import transaction

from agents.actions import audit

from .models import Delivery, Endpoint


def register_endpoint(fields: dict, *, user=None) -> Endpoint:
    """`fields` is a validated NewEndpointForm's cleaned data; an empty `secret` has one
    generated (Endpoint.save). The secret is on the endpoint returned, to be shown once."""
    with transaction.atomic():
        endpoint = Endpoint.objects.create(**fields, created_by=user)
        audit("register_webhook_endpoint", actor=user, detail=endpoint.url)
    return endpoint


def edit_endpoint(endpoint: Endpoint, fields: dict, *, user=None) -> Endpoint:
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        for name, value in fields.items():
            setattr(endpoint, name, value)
        endpoint.save()
        audit("edit_webhook_endpoint", actor=user, detail=endpoint.url)
    return endpoint


def delete_endpoint(endpoint: Endpoint, *, user=None) -> None:
    """Its deliveries and their attempts go with it."""
    with transaction.atomic():
        audit("delete_webhook_endpoint", actor=user, detail=endpoint.url)
        endpoint.delete()


def resend_delivery(delivery: Delivery, *, user=None) -> bool:
    """Send again, with a fresh set of attempts; False (nothing written) while it is still
    being sent."""
    with transaction.atomic():
        if not delivery.resend():
            return False
        detail = f"{delivery.message_id} to {delivery.endpoint.url}"
        audit("resend_webhook_delivery", actor=user, detail=detail)
    return True
