from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from . import schema  # noqa: F401  (registers the bearer scheme; web processes only)
from .views import (
    agents,
    approvals,
    bulk,
    datasets,
    experiments,
    job_templates,
    jobs,
    meta,
    records,
    reruns,
    schedules,
    scorers,
    stats,
)

urlpatterns = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="api-schema"),
    path("docs/", meta.docs, name="api-docs"),
    path("problems/<slug:slug>", meta.ProblemType.as_view(), name="api-problem-type"),
    path("me", meta.Me.as_view(), name="api-me"),
    path("jobs", jobs.JobList.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>", jobs.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", jobs.JobCancel.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/retry", jobs.JobRetry.as_view(), name="api-job-retry"),
    path("jobs/<int:job_id>/approve", jobs.JobApprove.as_view(), name="api-job-approve"),
    path("jobs/<int:job_id>/subtasks", jobs.SubtaskAdd.as_view(), name="api-subtask-add"),
    path("jobs/<int:job_id>/calls", records.JobCalls.as_view(), name="api-job-calls"),
    path("jobs/<int:job_id>/state", records.JobState.as_view(), name="api-job-state"),
    path(
        "jobs/<int:job_id>/state/versions",
        records.StateVersions.as_view(),
        name="api-state-versions",
    ),
    path(
        "jobs/<int:job_id>/state/versions/<int:version>",
        records.StateVersion.as_view(),
        name="api-state-version",
    ),
    path("jobs/<int:job_id>/state/diff", records.StateDiff.as_view(), name="api-state-diff"),
    path("subtasks/<int:subtask_id>", jobs.SubtaskDetail.as_view(), name="api-subtask"),
    path("subtasks/<int:subtask_id>/retry", jobs.SubtaskRetry.as_view(), name="api-subtask-retry"),
    path(
        "subtasks/<int:subtask_id>/rerun", reruns.SubtaskRerun.as_view(), name="api-subtask-rerun"
    ),
    path("agents", agents.AgentList.as_view(), name="api-agents"),
    path("agents/<slug:slug>", agents.AgentDetail.as_view(), name="api-agent"),
    path("agents/<slug:slug>/enable", agents.AgentEnable.as_view(), name="api-agent-enable"),
    path("agents/<slug:slug>/disable", agents.AgentDisable.as_view(), name="api-agent-disable"),
    path("agents/<slug:slug>/versions", agents.AgentVersions.as_view(), name="api-agent-versions"),
    path(
        "agents/<slug:slug>/versions/<int:number>",
        agents.AgentVersionDetail.as_view(),
        name="api-agent-version",
    ),
    path(
        "agents/<slug:slug>/versions/<int:number>/diff/<int:other>",
        agents.AgentVersionDiff.as_view(),
        name="api-agent-version-diff",
    ),
    path(
        "agents/<slug:slug>/versions/<int:number>/restore",
        agents.AgentVersionRestore.as_view(),
        name="api-agent-version-restore",
    ),
    path("spend", records.Spend.as_view(), name="api-spend"),
    path("approvals", approvals.ApprovalList.as_view(), name="api-approvals"),
    path("approvals/<int:approval_id>", approvals.ApprovalDetail.as_view(), name="api-approval"),
    path(
        "approvals/<int:approval_id>/decide",
        approvals.ApprovalDecide.as_view(),
        name="api-approval-decide",
    ),
    *datasets.urlpatterns,
    *scorers.urlpatterns,
    *experiments.urlpatterns,
    *job_templates.urlpatterns,
    *schedules.urlpatterns,
    *bulk.urlpatterns,
    *stats.urlpatterns,
    re_path(r"^.*$", meta.NoSuchEndpoint.as_view(), name="api-not-found"),
]
