from django.urls import path

from . import (
    agent_versions,
    approval_pages,
    bulk,
    datasets,
    experiments,
    job_templates,
    mcp_servers,
    overview,
    reruns,
    schedules,
    scorers,
    views,
)

urlpatterns = [
    path("", views.board, name="dash-board"),
    path("jobs/submit/", views.submit_job, name="dash-submit-job"),
    path("jobs/<int:job_id>/", views.job_detail, name="dash-job-detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="dash-job-cancel"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="dash-job-retry"),
    path("jobs/<int:job_id>/approve/", views.job_approve, name="dash-job-approve"),
    path("jobs/<int:job_id>/subtasks/add/", views.subtask_add, name="dash-subtask-add"),
    path("jobs/<int:job_id>/compare/<int:other_id>/", reruns.compare, name="dash-job-compare"),
    path("subtasks/<int:subtask_id>/", views.subtask_detail, name="dash-subtask-detail"),
    path("subtasks/<int:subtask_id>/retry/", views.subtask_retry, name="dash-subtask-retry"),
    path("subtasks/<int:subtask_id>/edit/", views.subtask_edit, name="dash-subtask-edit"),
    path("subtasks/<int:subtask_id>/delete/", views.subtask_delete, name="dash-subtask-delete"),
    path("subtasks/<int:subtask_id>/rerun/", reruns.rerun_subtask, name="dash-subtask-rerun"),
    path("agents/", views.agent_list, name="dash-agents"),
    path("agents/new/", views.agent_create, name="dash-agent-create"),
    path("agents/<slug:slug>/edit/", views.agent_edit, name="dash-agent-edit"),
    path("agents/<slug:slug>/toggle/", views.agent_toggle, name="dash-agent-toggle"),
    path(
        "agents/<slug:slug>/versions/",
        agent_versions.agent_versions,
        name="dash-agent-versions",
    ),
    path(
        "agents/<slug:slug>/versions/<int:number>/restore/",
        agent_versions.agent_version_restore,
        name="dash-agent-version-restore",
    ),
    path("tools/", mcp_servers.tool_list, name="dash-tools"),
    path("tools/servers/new/", mcp_servers.server_create, name="dash-mcp-create"),
    path("tools/servers/<slug:slug>/edit/", mcp_servers.server_edit, name="dash-mcp-edit"),
    path("tools/servers/<slug:slug>/fetch/", mcp_servers.server_fetch, name="dash-mcp-fetch"),
    path("tools/servers/<slug:slug>/delete/", mcp_servers.server_delete, name="dash-mcp-delete"),
    path("approvals/", approval_pages.approval_list, name="dash-approvals"),
    path("approvals/<int:approval_id>/decide/", approval_pages.decide, name="dash-approval-decide"),
    path("approvals/rules/", approval_pages.rule_add, name="dash-approval-rule-add"),
    path(
        "approvals/rules/<int:rule_id>/delete/",
        approval_pages.rule_delete,
        name="dash-approval-rule-delete",
    ),
]
# Evaluation: datasets, scorers and experiments, each module with its own routes.
urlpatterns += datasets.urlpatterns + scorers.urlpatterns + experiments.urlpatterns
# Recurring and safe submission: job templates, schedules and bulk actions.
urlpatterns += job_templates.urlpatterns + schedules.urlpatterns + bulk.urlpatterns
# The overview: how the system behaves over time.
urlpatterns += overview.urlpatterns
