"""Every model in the admin.

The tables of jobs, subtasks, calls and versions grow with every job, so a changelist joins
the related rows it shows (no query per row), leaves the long texts it does not show on disk,
counts its rows once, and searches through an index on PostgreSQL (migrations 0007-0008).
"""

import re
from collections.abc import Callable

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import connections, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils.text import smart_split, unescape_string_literal

from . import actions, admin_evaluation, approvals  # noqa: F401  (registers its models)
from .admin_base import BatonAdmin, ListAdmin, RecordAdmin, StorableChangeList
from .forms import ToolsField
from .models import (
    Agent,
    AgentVersion,
    Approval,
    ApprovalRule,
    AuditEntry,
    Job,
    LLMCall,
    ModelPrice,
    SharedState,
    SharedStateVersion,
    Subtask,
    ToolCall,
)

JOB_TEXTS = ("description", "result", "error")
SUBTASK_TEXTS = ("payload", "allocation", "result", "error")
# Who runs a step and how often it was taken back: the steps' own, never typed by hand.
STEP_RUN_FIELDS = ("lease_owner", "lease_expires_at", "takebacks", "last_crash")


def search_words(search_term: str) -> list[str]:
    """The words of an admin search, a quoted phrase as one, as ModelAdmin splits them."""
    words = []
    for word in smart_split(search_term):
        if word.startswith(('"', "'")) and word[0] == word[-1]:
            word = unescape_string_literal(word)
        words.append(word)
    return words


class ValuesFilter(admin.SimpleListFilter):
    """A filter offering values from a small table or the code: a DISTINCT over a table
    that grows with every job would read all of it on every page."""

    def values(self) -> list:
        raise NotImplementedError

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(str(value), str(value)) for value in self.values()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(**{self.parameter_name: self.value()})


class PriorityFilter(ValuesFilter):
    title = parameter_name = "priority"

    def values(self) -> list:
        return list(range(10))


class ModelFilter(ValuesFilter):
    """The models agents use or that have a price; older ones are found by search."""

    title = parameter_name = "model"

    def values(self) -> list:
        used = Agent.objects.order_by().values_list("model")
        priced = ModelPrice.objects.order_by().values_list("model")
        return sorted(model for (model,) in used.union(priced))


class TypeFilter(ValuesFilter):
    """The agents' specialties, which are the types plans ask for."""

    title = parameter_name = "type"

    def values(self) -> list:
        specialties = Agent.objects.values_list("specialties", flat=True)
        return sorted({name for names in specialties for name in names})


class HttpStatusFilter(admin.SimpleListFilter):
    title = "HTTP status"
    parameter_name = "http"
    CLASSES = {
        "2xx": ("success", Q(http_status__range=(200, 299))),
        "429": ("429 rate limited", Q(http_status=429)),
        "4xx": ("other 4xx", Q(http_status__range=(400, 499)) & ~Q(http_status=429)),
        "5xx": ("5xx", Q(http_status__range=(500, 599))),
        "none": ("none (offline, or no answer)", Q(http_status__isnull=True)),
    }

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.CLASSES.items()]

    def queryset(self, request, queryset):
        chosen = self.CLASSES.get(self.value() or "")
        return queryset.filter(chosen[1]) if chosen else queryset


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
class AgentAdmin(ListAdmin):
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
        return super().get_queryset(request).with_load()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "tools":  # checkboxes of the tools there are, not raw JSON
            return ToolsField(label="Tools")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "tools" in form.base_fields:  # not for a user who may only view
            form.base_fields["tools"].offer(obj.tools if obj else [])
        return form

    def save_model(self, request, obj: Agent, form, change: bool) -> None:
        """Through the same actions as the pages and the API (Django's LogEntry besides)."""
        if change:
            actions.edit_agent(obj, form.cleaned_data, user=request.user)
        else:
            obj.pk = actions.register_agent(form.cleaned_data, user=request.user).pk

    def delete_model(self, request, obj: Agent) -> None:
        actions.delete_agent(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for agent in queryset:  # one audited action each
            actions.delete_agent(agent, user=request.user)

    @admin.display(description="load", ordering="load")
    def load(self, obj: Agent) -> int:
        return obj.load

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


@admin.register(AgentVersion)
class AgentVersionAdmin(RecordAdmin):
    """Written by the actions, never edited: restoring one is the agents page's (or the
    API's); a deleted agent takes its versions with it."""

    list_display = ("agent", "number", "author", "note", "created_at")
    list_select_related = ("agent", "author")
    list_defer = ("config",)
    list_filter = ("agent",)
    ordering = ("-pk",)
    readonly_fields = ("agent", "number", "author", "note", "config", "created_at")


class EditedThroughAction:
    """A row changed here goes through its audited action (`edit`), with the fields the
    form changed; one added here is Django's own."""

    edit: Callable

    def save_model(self, request, obj, form, change: bool) -> None:
        if change:
            fields = {name: form.cleaned_data[name] for name in form.changed_data}
            self.edit(obj, fields, user=request.user)
        else:
            super().save_model(request, obj, form, change)


class SubtaskInline(admin.TabularInline):
    model = Subtask
    fields = ("key", "type", "agent", "status", "retry_count", "tokens", "cost")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("agent").defer(*SUBTASK_TEXTS)


@admin.register(Job)
class JobAdmin(EditedThroughAction, ListAdmin):
    edit = staticmethod(actions.edit_job)

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
    list_filter = ("status", PriorityFilter, "created_at")
    list_select_related = ("submitted_by",)
    list_defer = JOB_TEXTS
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
        "rerun_of",  # read only: an editable one would list every job in a select
        "rerun_from",
        "waiting_for",
        *STEP_RUN_FIELDS,
    )
    inlines = [SubtaskInline]

    def get_search_results(self, request, queryset, search_term):
        """Each word in the title or the description, through the trigram indexes."""
        for word in search_words(search_term):
            queryset = queryset.matching(word)
        return queryset, False


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
class SubtaskAdmin(EditedThroughAction, ListAdmin):
    edit = staticmethod(actions.edit_subtask_fields)

    list_display = ("id", "job", "key", "type", "agent", "status", "retry_count", "tokens", "cost")
    list_filter = ("status", TypeFilter, "agent")
    list_select_related = ("job", "agent")
    list_defer = (*SUBTASK_TEXTS, *(f"job__{name}" for name in JOB_TEXTS))
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
        "copied_from",
        "redispatches",
        *STEP_RUN_FIELDS,
    )
    inlines = [LLMCallInline]

    def get_search_results(self, request, queryset, search_term):
        """Each word in the key, the type or the job's title, each matched on its own table
        and the matches put together: an OR across the join would read every subtask."""
        for word in search_words(search_term):
            by_name = Subtask.objects.filter(Q(key__icontains=word) | Q(type__icontains=word))
            by_job = Subtask.objects.filter(job__title__icontains=word)
            matches = by_name.order_by().values("pk").union(by_job.order_by().values("pk"))
            queryset = queryset.filter(pk__in=matches)
        return queryset, False


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
    list_filter = ("purpose", ModelFilter, "agent", HttpStatusFilter)
    list_select_related = ("agent", "job")
    list_defer = ("messages", "response", "error", *(f"job__{name}" for name in JOB_TEXTS))
    search_fields = ("response", "error")
    search_help_text = "Words of the response or the error; the start of a word is enough."

    def get_search_results(self, request, queryset, search_term):
        """On PostgreSQL, words (or their starts) through the full-text index; elsewhere,
        substrings."""
        words = re.findall(r"[^\W_]+", search_term)  # what to_tsvector makes lexemes of
        if connections[queryset.db].vendor != "postgresql" or not words:
            return super().get_search_results(request, queryset, search_term)
        query = " & ".join(f"{word}:*" for word in words)
        # Through the full-text index, whatever the planner would pick (migration 0008).
        matching = RawSQL("SELECT agents_llmcall_matching(%s)", [query])
        return queryset.filter(pk__in=matching), False


@admin.register(ToolCall)
class ToolCallAdmin(RecordAdmin):
    list_display = ("id", "name", "status", "agent", "subtask", "job", "latency_s", "created_at")
    list_filter = ("status", "agent")
    list_select_related = ("agent", "subtask", "job")
    list_defer = (
        "arguments",
        "result",
        *(f"subtask__{name}" for name in SUBTASK_TEXTS),
        *(f"job__{name}" for name in JOB_TEXTS),
    )
    search_fields = ("name",)


@admin.register(ModelPrice)
class ModelPriceAdmin(BatonAdmin):
    list_display = ("model", "input_per_million", "output_per_million")
    search_fields = ("model",)


class VersionInline(admin.TabularInline):
    model = SharedStateVersion
    fields = ("version", "author", "changes", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("snapshot")


@admin.register(SharedState)
class SharedStateAdmin(ListAdmin):
    list_display = ("job", "version", "updated_at")
    list_select_related = ("job",)
    list_defer = ("data", *(f"job__{name}" for name in JOB_TEXTS))
    readonly_fields = ("job", "data", "version", "chain_bytes", "updated_at")
    search_fields = ("job__title",)
    inlines = [VersionInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SharedStateVersion)
class SharedStateVersionAdmin(RecordAdmin):
    list_display = ("state", "version", "author", "created_at")
    list_select_related = ("state",)
    list_defer = ("snapshot", "changes", "state__data")
    ordering = ("-pk",)
    # `data`: the whole state as of the version, rebuilt from the snapshot before it.
    readonly_fields = ("state", "version", "author", "changes", "data", "created_at")
    fields = readonly_fields


@admin.register(AuditEntry)
class AuditEntryAdmin(RecordAdmin):
    list_display = ("created_at", "actor", "action", "job", "subtask", "agent", "detail")
    list_filter = ("action", "created_at")
    list_select_related = ("actor", "job", "subtask", "agent")
    list_defer = (
        *(f"job__{name}" for name in JOB_TEXTS),
        *(f"subtask__{name}" for name in SUBTASK_TEXTS),
    )
    search_fields = ("detail", "actor__username")
    readonly_fields = ("created_at", "actor", "action", "job", "subtask", "agent", "detail")


from . import admin_mcp  # noqa: E402, F401  (MCP servers, registered there)


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(BatonAdmin):
    list_display = ("kind", "name", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)

    def save_model(self, request, obj: ApprovalRule, form, change: bool) -> None:
        """Through approvals' add_rule and remove_rule, as on the pages: audited, and every
        process forgets the rules it held. A changed rule is the old one removed and the new
        one added."""
        if change and not form.has_changed():
            return
        with transaction.atomic():
            if change:
                approvals.remove_rule(ApprovalRule.objects.get(pk=obj.pk), user=request.user)
            obj.pk = approvals.add_rule(obj.kind, obj.name, user=request.user).pk

    def delete_model(self, request, obj: ApprovalRule) -> None:
        approvals.remove_rule(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for rule in queryset:
            self.delete_model(request, rule)


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    """Decided on the dashboard or over the API, where the decision moves its step on."""

    list_display = ("created_at", "job", "subtask", "tool_call", "why", "decision", "decided_by")
    list_filter = ("decision", "timed_out")
    list_select_related = ("job", "subtask", "tool_call", "decided_by")
    list_defer = (
        "proposed",
        "edited",
        *(f"job__{name}" for name in JOB_TEXTS),
        *(f"subtask__{name}" for name in SUBTASK_TEXTS),
    )
    readonly_fields = (
        "job",
        "subtask",
        "tool_call",
        "why",
        "proposed",
        "decision",
        "edited",
        "feedback",
        "decided_by",
        "decided_at",
        "expires_at",
        "timed_out",
        "created_at",
    )
    fields = readonly_fields


class StorableUserAdmin(UserAdmin):
    def get_changelist(self, request, **kwargs):
        return StorableChangeList


class StorableGroupAdmin(GroupAdmin):
    def get_changelist(self, request, **kwargs):
        return StorableChangeList


# Django's own user and group lists, filtered on a NUL, were PostgreSQL's DataError too.
for model, model_admin in ((User, StorableUserAdmin), (Group, StorableGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)

from . import admin_recurring  # noqa: E402, F401  (templates, schedules, runs, idempotency keys)
