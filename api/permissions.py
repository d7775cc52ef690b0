"""The API asks for the same Django permissions as the pages (agents/roles.py)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

VIEW_JOB = "agents.view_job"
VIEW_SUBTASK = "agents.view_subtask"
VIEW_AGENT = "agents.view_agent"
VIEW_CALL = "agents.view_llmcall"
VIEW_STATE = "agents.view_sharedstate"
SUBMIT = "agents.add_job"
OPERATE = "agents.change_job"
ADD_AGENT = "agents.add_agent"
CHANGE_AGENT = "agents.change_agent"
VIEW_TEMPLATE = "agents.view_jobtemplate"
ADD_TEMPLATE = "agents.add_jobtemplate"
CHANGE_TEMPLATE = "agents.change_jobtemplate"
DELETE_TEMPLATE = "agents.delete_jobtemplate"
VIEW_SCHEDULE = "agents.view_schedule"
ADD_SCHEDULE = "agents.add_schedule"
CHANGE_SCHEDULE = "agents.change_schedule"
DELETE_SCHEDULE = "agents.delete_schedule"


class Required(BasePermission):
    """Each view names the permissions every method needs: `required = {"GET": (...)}`.

    An anonymous request is refused with 401 (DRF asks for credentials); a method the view
    does not serve passes here, so it gets its 405.
    """

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        method = "GET" if request.method == "HEAD" else request.method
        needed = getattr(view, "required", {}).get(method)
        if needed is None:
            return True
        return request.user.has_perms(needed)
