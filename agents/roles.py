"""The roles Baton ships with, as Django groups, and what each face needs to read. Everything
else is Django admin's."""

VIEW = [
    "view_job",
    "view_subtask",
    "view_agent",
    "view_llmcall",
    "view_sharedstate",
    "view_dataset",
    "view_case",
    "view_scorer",
    "view_experiment",
    "view_score",
    "view_jobtemplate",
    "view_schedule",
    "view_schedulerun",
]
# Keep datasets and scorers, run experiments and score outputs.
EVALUATE = [
    "add_dataset",
    "change_dataset",
    "delete_dataset",
    "add_case",
    "change_case",
    "delete_case",
    "add_scorer",
    "change_scorer",
    "add_experiment",
    "change_experiment",
    "add_score",
]
# Keep job templates and the schedules that submit them.
RECUR = [
    "add_jobtemplate",
    "change_jobtemplate",
    "delete_jobtemplate",
    "add_schedule",
    "change_schedule",
    "delete_schedule",
]
ROLES = {
    # Read only: every page, no controls.
    "Viewers": VIEW,
    # Submit, cancel, retry, review and approve plans.
    "Operators": [*VIEW, *EVALUATE, *RECUR, "add_job", "change_job", "change_subtask"],
    # Register and edit agents, enable and disable them.
    "Agent managers": [*VIEW, "add_agent", "change_agent"],
}


def ensure_roles(group_model, permission_model) -> None:
    """Create the groups with their permissions; models are passed in for migrations."""
    for name, codenames in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(
            permission_model.objects.filter(
                content_type__app_label="agents", codename__in=codenames
            )
        )


# Who may read what. A page, the htmx requests for it and its live socket or event stream
# need the same permissions, which every role grants; writes keep their own checks.
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
    # Datasets, scorers, experiments and their scores.
    "evaluation": (
        "agents.view_dataset",
        "agents.view_experiment",
        "agents.view_score",
        "agents.view_job",
    ),
    # Job templates, schedules and their runs.
    "recurring": (
        "agents.view_jobtemplate",
        "agents.view_schedule",
        "agents.view_job",
    ),
    # The overview's charts: jobs by outcome, and the LLM calls' spend, latency and errors.
    "overview": ("agents.view_job", "agents.view_llmcall"),
}


def can_read(user, page: str) -> bool:
    return user.has_perms(READ_PERMISSIONS[page])
