"""Job templates and schedules in the admin: each change goes through the same actions as
the pages and the API (checked, audited; Django's LogEntry besides), with their forms'
rules. A schedule's runs and the API's idempotency keys are records, browsable only."""

from django import forms
from django.contrib import admin, messages

from .actions import schedules as schedule_actions
from .actions import templates as template_actions
from .admin_base import ListAdmin, RecordAdmin
from .models import IdempotencyKey, JobTemplate, Schedule, ScheduleRun
from .schedule_forms import WRITTEN, ScheduleForm
from .template_forms import JobTemplateForm

STAMPS = ("created_by", "created_at", "updated_at")


class WrittenThroughForm(ListAdmin):
    """Its `form` holds the write rules; one who may only view gets the fields as text."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and not self.has_change_permission(request, obj):
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change=change, **kwargs)


class ReadOnly(RecordAdmin):
    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobTemplate)
class JobTemplateAdmin(WrittenThroughForm):
    form = JobTemplateForm
    list_display = ("name", "title", "priority", "tags", "review_plan", "created_by", "updated_at")
    list_filter = ("review_plan",)
    list_select_related = ("created_by",)
    list_defer = ("description", "agent_versions")
    search_fields = ("name", "title")
    fields = (*JobTemplateForm.Meta.fields, "tags", *STAMPS)
    readonly_fields = STAMPS

    def save_model(self, request, obj: JobTemplate, form, change: bool) -> None:
        if change:
            template_actions.edit_template(obj, form.cleaned_data, user=request.user)
        else:
            created = template_actions.create_template(form.cleaned_data, user=request.user)
            obj.pk, obj.tags = created.pk, created.tags

    def delete_model(self, request, obj: JobTemplate) -> None:
        # The confirmation page lists the schedules (PROTECT) and refuses; this is the race.
        try:
            template_actions.delete_template(obj, user=request.user)
        except template_actions.TemplateInUse as in_use:
            self.message_user(request, f"{obj.name} is not deleted: {in_use}", messages.ERROR)

    def delete_queryset(self, request, queryset) -> None:
        for template in queryset:  # one audited action each
            self.delete_model(request, template)


@admin.register(Schedule)
class ScheduleAdmin(WrittenThroughForm):
    form = ScheduleForm
    list_display = (
        "name",
        "template",
        "cron",
        "interval_s",
        "timezone",
        "enabled",
        "next_run_at",
        "last_run_at",
    )
    list_filter = ("enabled", "on_missed", "on_overlap")
    list_select_related = ("template",)
    search_fields = ("name", "template__name")
    fields = (*WRITTEN, "next_run_at", "last_run_at", *STAMPS)
    readonly_fields = ("next_run_at", "last_run_at", *STAMPS)
    actions = ("pause", "resume")

    def save_model(self, request, obj: Schedule, form, change: bool) -> None:
        fields = form.schedule_fields()
        if change:
            schedule_actions.edit_schedule(obj, fields, user=request.user)
        else:
            obj.pk = schedule_actions.create_schedule(fields, user=request.user).pk

    def delete_model(self, request, obj: Schedule) -> None:
        schedule_actions.delete_schedule(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for schedule in queryset:  # one audited action each
            schedule_actions.delete_schedule(schedule, user=request.user)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = sum(
            schedule_actions.set_schedule_enabled(schedule, enabled, user=request.user)
            for schedule in queryset
        )
        self.message_user(request, f"{'Resumed' if enabled else 'Paused'} {changed} schedules.")

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)


@admin.register(ScheduleRun)
class ScheduleRunAdmin(ReadOnly):
    list_display = ("schedule", "due_at", "outcome", "job", "note", "created_at")
    list_filter = ("outcome", "schedule")
    list_select_related = ("schedule", "job")
    list_defer = ("job__description", "job__result", "job__error")
    ordering = ("-due_at", "-id")
    readonly_fields = ("schedule", "due_at", "outcome", "job", "note", "created_at")


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnly):
    list_display = ("key", "user", "job", "created_at")
    list_select_related = ("user", "job")
    list_defer = ("job__description", "job__result", "job__error")
    list_filter = ("created_at",)
    search_fields = ("key", "user__username")
    ordering = ("-created_at",)
    readonly_fields = ("user", "key", "fingerprint", "job", "created_at")
