"""The Webhooks pages: operators register endpoints, read the delivery log, re-send."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import actions
from .forms import EndpointForm, NewEndpointForm
from .models import Delivery, DeliveryStatus, Endpoint

OPERATE = "agents.change_job"
DELIVERIES_PER_PAGE = 25


@login_required
@permission_required(OPERATE, raise_exception=True)
def endpoints(request: HttpRequest) -> HttpResponse:
    """GET lists; POST registers an endpoint and shows its secret in the answer, this once
    (never through a redirect: the messages cookie or the session would hold it)."""
    form = NewEndpointForm(request.POST or None)
    context: dict = {}
    status = 200
    if request.method == "POST":
        if form.is_valid():
            endpoint = actions.register_endpoint(form.cleaned_data, user=request.user)
            context["created"], context["secret"] = endpoint, endpoint.secret
            form = NewEndpointForm()
            status = 201
        else:
            status = 400
    context["form"] = form
    context["endpoints"] = Endpoint.objects.annotate(
        delivered=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DELIVERED)),
        undelivered=Count(
            "deliveries",
            filter=Q(deliveries__status__in=(DeliveryStatus.FAILED, DeliveryStatus.REFUSED)),
        ),
        last_at=Max("deliveries__created_at"),
    )
    response = render(request, "webhooks/endpoints.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@login_required
@permission_required(OPERATE, raise_exception=True)
def endpoint(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """An endpoint's settings (never its secret) and its delivery log, newest first."""
    endpoint = get_object_or_404(Endpoint, pk=endpoint_id)
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST":
        if form.is_valid():
            actions.edit_endpoint(endpoint, form.cleaned_data, user=request.user)
            messages.success(request, "Saved.")
            return redirect(endpoint)
    deliveries = endpoint.deliveries.prefetch_related("attempt_log")
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    status = 400 if form.errors else 200
    context = {"endpoint": endpoint, "form": form, "page": page}
    return render(request, "webhooks/endpoint.html", context, status=status)


@login_required
@permission_required(OPERATE, raise_exception=True)
@require_POST
def resend(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("endpoint"), pk=delivery_id)
    if actions.resend_delivery(delivery, user=request.user):
        messages.success(request, f"Delivery {delivery.message_id} is sent again.")
    else:
        messages.error(request, "That delivery is still being sent: wait for its outcome.")
    return redirect(delivery.endpoint)
