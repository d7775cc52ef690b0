"""A page's read check: the permissions are the domain's (agents.roles.READ_PERMISSIONS)."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agents.roles import can_read


def read_required(page: str) -> Callable:
    """Log in first; then, lacking the page's permissions, a 403 page that says whom to ask."""

    def decorator(view: Callable) -> Callable:
        @login_required
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not can_read(request.user, page):
                return render(request, "dashboard/no_role.html", status=403)
            return view(request, *args, **kwargs)

        return checked

    return decorator
