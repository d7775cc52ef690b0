from django.urls import path

from . import reruns, views

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
]
