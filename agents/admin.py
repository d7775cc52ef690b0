from django.contrib import admin
from django.db.models import Count, Q

from . import actions
from .models import (
    SUBTASK_IN_FLIGHT,
    Agent,
    AuditEntry,
    Job,
    LLMCall,
    ModelPrice,
    SharedState,
    SharedStateVersion,
    Subtask,
)


class RecordAdmin(admin.ModelAdmin):
    """For rows the system writes (calls, audit entries): browsable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


METRICS = (
    "completed_count",
    "failed_count",
    "avg_latency_s",
    "latency_samples",
    "total_tokens",
    "total_cost",
    "created_at",
    "updated_at",
)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "model",
        "enabled",
        "load",
        "max_concurrency",
        "success_rate_display",
        "avg_latency_s",
        "total_tokens",
        "total_cost",
    )
    list_filter = ("enabled", "model")
    search_fields = ("name", "slug", "model")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = METRICS
    actions = ("enable", "disable")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(in_flight=Count("subtasks", filter=Q(subtasks__status__in=SUBTASK_IN_FLIGHT)))
        )

    @admin.display(description="load", ordering="in_flight")
    def load(self, obj: Agent) -> int:
        return obj.in_flight

    @admin.display(description="success rate")
    def success_rate_display(self, obj: Agent) -> str:
        return f"{obj.success_rate:.0%}"

    @admin.action(description="Enable selected agents")
    def enable(self, request, queryset) -> None:
        for agent in queryset:
            actions.set_agent_enabled(agent, True, user=request.user)
        self.message_user(request, f"Enabled {len(queryset)} agents.")

    @admin.action(description="Disable selected agents")
    def disable(self, request, queryset) -> None:
        for agent in queryset:
            actions.set_agent_enabled(agent, False, user=request.user)
        self.message_user(request, f"Disabled {len(queryset)} agents.")


class SubtaskInline(admin.TabularInline):
    model = Subtask
    fields = ("key", "type", "agent", "status", "retry_count", "tokens", "cost")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "status",
        "priority",
        "submitted_by",
        "total_tokens",
        "total_cost",
        "created_at",
    )
    list_filter = ("status", "priority", "created_at")
    search_fields = ("title", "description")
    readonly_fields = (
        "status",
        "status_reason",
        "result",
        "error",
        "total_tokens",
        "total_cost",
        "created_at",
        "updated_at",
        "planned_at",
        "claimed_at",
        "finished_at",
        "submitted_by",
    )
    inlines = [SubtaskInline]


class LLMCallInline(admin.TabularInline):
    model = LLMCall
    fields = (
        "purpose",
        "model",
        "http_status",
        "prompt_tokens",
        "completion_tokens",
        "latency_s",
        "cost",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Subtask)
class SubtaskAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "key", "type", "agent", "status", "retry_count", "tokens", "cost")
    list_filter = ("status", "type", "agent")
    search_fields = ("key", "type", "job__title")
    readonly_fields = (
        "job",
        "depends_on",
        "allocation",
        "status",
        "result",
        "error",
        "retry_count",
        "attempts",
        "tokens",
        "cost",
        "latency_s",
        "next_attempt_at",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )
    inlines = [LLMCallInline]


@admin.register(LLMCall)
class LLMCallAdmin(RecordAdmin):
    list_display = (
        "id",
        "purpose",
        "agent",
        "job",
        "model",
        "http_status",
        "prompt_tokens",
        "completion_tokens",
        "latency_s",
        "cost",
        "created_at",
    )
    list_filter = ("purpose", "model", "agent", "http_status")
    search_fields = ("response", "error")


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ("model", "input_per_million", "output_per_million")
    search_fields = ("model",)


class VersionInline(admin.TabularInline):
    model = SharedStateVersion
    fields = ("version", "author", "changes", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(SharedState)
class SharedStateAdmin(admin.ModelAdmin):
    list_display = ("job", "version", "updated_at")
    readonly_fields = ("job", "data", "version", "updated_at")
    search_fields = ("job__title",)
    inlines = [VersionInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    list_display = ("created_at", "actor", "action", "job", "subtask", "agent", "detail")
    list_filter = ("action", "created_at")
    search_fields = ("detail", "actor__username")
    readonly_fields = ("created_at", "actor", "action", "job", "subtask", "agent", "detail")
