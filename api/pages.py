"""The API tokens page: a user lists, creates and revokes their own tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from agents import actions
from agents.models import ApiToken


class TokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name"]


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """GET lists; POST issues a token and shows its secret in the answer, this once
    (never through a redirect: the messages cookie or the session would hold it)."""
    form = TokenForm(request.POST or None)
    context = {"form": form}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            context["issued"], context["secret"] = actions.issue_token(
                request.user, form.cleaned_data["name"], user=request.user
            )
            context["form"] = TokenForm()
            status = 201
        else:
            status = 400
    context["tokens"] = request.user.api_tokens.all()
    response = render(request, "api/tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, owner=request.user)
    if actions.revoke_token(token, user=request.user):
        messages.success(request, f"Token “{token.name}” is revoked: it no longer works.")
    return redirect("api-tokens")
