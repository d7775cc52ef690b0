"""Endpoints and their delivery log in the admin. A secret is shown once, on the page that
follows the endpoint's creation, and never in a form; deliveries are read only (re-send is an
action)."""

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from agents.admin_base import BatonAdmin

from . import actions
from .forms import EndpointForm, NewEndpointForm
from .models import Attempt, Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(BatonAdmin):
    list_display = ("url", "enabled", "event_list", "created_by", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    list_select_related = ("created_by",)
    readonly_fields = ("created_by", "created_at", "updated_at")

    @admin.display(description="events")
    def event_list(self, endpoint: Endpoint) -> str:
        return ", ".join(endpoint.events)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = EndpointForm if obj else NewEndpointForm
        # The model's fields; a new endpoint's form adds its (non-model) secret field.
        kwargs["fields"] = EndpointForm._meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return NewEndpointForm.field_order
        return [*EndpointForm._meta.fields, *self.readonly_fields]

    def save_model(self, request, obj: Endpoint, form, change: bool) -> None:
        if change:
            actions.edit_endpoint(obj, form.cleaned_data, user=request.user)
        else:  # the secret, generated or given, is shown from `obj` on the next page
            saved = actions.register_endpoint(form.cleaned_data, user=request.user)
            obj.pk, obj.secret, obj.created_by = saved.pk, saved.secret, saved.created_by

    def delete_model(self, request, obj: Endpoint) -> None:
        actions.delete_endpoint(obj, user=request.user)

    def delete_queryset(self, request, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            self.delete_model(request, endpoint)

    def response_add(self, request: HttpRequest, obj: Endpoint, post_url_continue=None):
        """The secret, this once, instead of a redirect (a message would store it)."""
        context = {**self.admin_site.each_context(request), "endpoint": obj, "opts": self.opts}
        response = TemplateResponse(request, "webhooks/admin_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response


class AttemptInline(admin.TabularInline):
    model = Attempt
    fields = ("number", "at", "outcome", "status_code", "latency_s", "error", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(BatonAdmin):
    list_display = ("message_id", "event", "endpoint", "job", "status", "attempts", "created_at")
    list_filter = ("status", "event")
    search_fields = ("message_id", "endpoint__url")
    list_select_related = ("endpoint", "job")
    inlines = [AttemptInline]
    actions = ["resend"]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Re-send the selected deliveries", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> HttpResponse | None:
        sent = sum(actions.resend_delivery(delivery, user=request.user) for delivery in queryset)
        skipped = queryset.count() - sent
        self.message_user(request, f"{sent} sent again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} still being sent: left alone.", messages.WARNING)
        return None
