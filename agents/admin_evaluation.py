"""Evaluation in the admin: datasets, scorers, experiments and scores, browsable and read
only here. They change through their pages and the API, whose actions check and audit."""

from django.contrib import admin

from .admin_base import ListAdmin, RecordAdmin
from .models import Case, Dataset, Experiment, ExperimentCase, Score, Scorer


class ReadOnly(RecordAdmin):
    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CaseInline(admin.TabularInline):
    model = Case
    fields = ("title", "expected", "tags", "source_job", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = False


@admin.register(Dataset)
class DatasetAdmin(ReadOnly, ListAdmin):
    list_display = ("name", "slug", "created_by", "created_at")
    search_fields = ("name",)
    readonly_fields = ("name", "slug", "description", "created_by", "created_at", "updated_at")
    inlines = [CaseInline]


@admin.register(Scorer)
class ScorerAdmin(ReadOnly):
    list_display = ("name", "kind", "threshold", "online_type", "sample_rate", "enabled")
    list_filter = ("kind", "enabled")
    readonly_fields = (
        "name",
        "slug",
        "kind",
        "config",
        "threshold",
        "online_type",
        "sample_rate",
        "enabled",
        "created_by",
        "created_at",
    )


class ExperimentCaseInline(admin.TabularInline):
    model = ExperimentCase
    fields = ("position", "title", "job", "scored_at", "scoring_error")
    readonly_fields = fields
    extra = 0
    max_num = 0


@admin.register(Experiment)
class ExperimentAdmin(ReadOnly):
    list_display = ("name", "dataset_name", "status", "created_by", "created_at")
    list_filter = ("status",)
    readonly_fields = (
        "name",
        "dataset",
        "dataset_name",
        "status",
        "status_reason",
        "agent_versions",
        "scorers",
        "budget_tokens",
        "budget_cost",
        "priority",
        "concurrency",
        "created_by",
        "created_at",
        "finished_at",
    )
    inlines = [ExperimentCaseInline]


@admin.register(Score)
class ScoreAdmin(ReadOnly):
    list_display = ("job", "scorer_name", "source", "value", "passed", "given_by", "created_at")
    list_filter = ("source", "passed")
    list_select_related = ("given_by",)
    list_defer = ("reason",)
    raw_id_fields = ("job", "subtask", "call")
    readonly_fields = (
        "job",
        "subtask",
        "experiment",
        "scorer",
        "scorer_name",
        "source",
        "value",
        "passed",
        "reason",
        "rating",
        "given_by",
        "call",
        "created_at",
    )
