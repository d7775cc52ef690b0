"""The roles Baton ships with, as Django groups. Everything else is Django admin's."""

VIEW = ["view_job", "view_subtask", "view_agent", "view_llmcall", "view_sharedstate"]
ROLES = {
    # Read only: every page, no controls.
    "Viewers": VIEW,
    # Submit, cancel, retry, review and approve plans.
    "Operators": [*VIEW, "add_job", "change_job", "change_subtask"],
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
