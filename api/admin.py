"""API tokens in the admin: issued for any user, the secret shown once after saving."""

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from agents import actions
from agents.admin_base import BatonAdmin
from agents.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(BatonAdmin):
    list_display = ("name", "owner", "shown", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("owner",)
    search_fields = ("name", "prefix", "owner__username")
    readonly_fields = ("shown", "created_at", "last_used_at", "revoked_at")
    autocomplete_fields = ("owner",)
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        return ("owner", "name") if obj is None else ("owner", "name", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        # A token keeps its owner: a new owner would inherit a secret someone else holds.
        return self.readonly_fields if obj is None else ("owner", *self.readonly_fields)

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued, secret = actions.issue_token(obj.owner, obj.name, user=request.user)
        obj.pk = issued.pk
        obj.refresh_from_db()  # the form's token is the one issued, for the answer and the log
        obj.issued_secret = secret  # kept on the instance for response_add only

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None):
        """The secret, this once, in the answer itself: a redirect would carry it in the
        messages cookie (signed, not encrypted) or the session."""
        context = {**self.admin_site.each_context(request), "token": obj, "opts": self.opts}
        response = TemplateResponse(request, "api/admin_token_secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        tokens = queryset.filter(revoked_at__isnull=True).select_related("owner")
        count = sum(actions.revoke_token(token, user=request.user) for token in tokens)
        self.message_user(request, f"Revoked {count} tokens.")
