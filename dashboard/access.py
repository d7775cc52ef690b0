"""Who may read what. A page, the htmx requests for it and its live socket need the same
permissions, which every role (agents/roles.py) grants; writes keep their own checks."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

READ_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "board": ("agents.view_job",),
    # A job page's live fragments carry its subtasks, their call traces and the shared state
    # to every watcher alike, so the page and its socket need all four.
    "job": (
        "agents.view_job",
        "agents.view_subtask",
        "agents.view_llmcall",
        "agents.view_sharedstate",
    ),
    "agents": ("agents.view_agent",),
}


def can_read(user, page: str) -> bool:
    return user.has_perms(READ_PERMISSIONS[page])


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
