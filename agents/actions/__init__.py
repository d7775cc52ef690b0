"""Operator actions: one plain function per write, which checks, changes the rows, writes
the audit entry and sends the events after commit, in one transaction (as Zulip's `do_*`
actions). Every face (pages, API, admin) calls these and writes no AuditEntry itself."""

from ..audit import audit
from .agents import (
    delete_agent,
    edit_agent,
    register_agent,
    restore_agent_version,
    set_agent_enabled,
)
from .bulk import BulkResult, TooManyJobs, bulk_act, rerun_job
from .jobs import (
    SubmissionLimit,
    cancel_job,
    edit_job,
    edit_subtask_fields,
    retry_job,
    retry_subtask,
    submit_job,
)
from .mcp import delete_mcp_server, edit_mcp_server, fetch_mcp_tools, register_mcp_server
from .plans import add_subtask, approve_plan, delete_subtask, edit_subtask
from .schedules import (
    ScheduleNameTaken,
    create_schedule,
    delete_schedule,
    edit_schedule,
    set_schedule_enabled,
)
from .templates import (
    TemplateInUse,
    TemplateRefused,
    create_template,
    delete_template,
    edit_template,
    submit_template,
)
from .tokens import issue_token, revoke_token

__all__ = [
    "BulkResult",
    "ScheduleNameTaken",
    "SubmissionLimit",
    "TemplateInUse",
    "TemplateRefused",
    "TooManyJobs",
    "add_subtask",
    "approve_plan",
    "audit",
    "bulk_act",
    "cancel_job",
    "create_schedule",
    "create_template",
    "delete_agent",
    "delete_mcp_server",
    "delete_schedule",
    "delete_subtask",
    "delete_template",
    "edit_agent",
    "edit_job",
    "edit_mcp_server",
    "edit_schedule",
    "edit_subtask",
    "edit_subtask_fields",
    "edit_template",
    "fetch_mcp_tools",
    "issue_token",
    "register_agent",
    "register_mcp_server",
    "retry_job",
    "retry_subtask",
    "rerun_job",
    "restore_agent_version",
    "revoke_token",
    "set_agent_enabled",
    "set_schedule_enabled",
    "submit_job",
    "submit_template",
]
