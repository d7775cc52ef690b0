"""The write rules for schedules, shared by the pages and the API: a template, and either a
cron expression or an interval, in a time zone, with the policies for missed and overlapping
runs. Its cleaned_data is what agents.actions.schedules takes."""

from __future__ import annotations

from django import forms
from django.conf import settings

from . import crontimes
from .models import Schedule

INTERVAL_MAX_S = 366 * 86400  # a year: longer is cron's job
WRITTEN = (
    "name",
    "template",
    "cron",
    "interval_s",
    "timezone",
    "enabled",
    "on_missed",
    "on_overlap",
)


def default_timezone() -> str:
    try:
        return crontimes.validate_timezone(settings.TIME_ZONE or "UTC")
    except forms.ValidationError:
        return "UTC"


class ScheduleForm(forms.ModelForm):
    cron = forms.CharField(
        required=False,
        max_length=crontimes.CRON_CHARS,
        help_text="Five fields, as cron has: minute hour day-of-month month day-of-week "
        "(0 9 * * 1-5: 09:00 on weekdays). Or leave it empty and give an interval.",
    )
    interval_s = forms.IntegerField(
        label="Interval (seconds)",
        required=False,
        min_value=1,
        max_value=INTERVAL_MAX_S,
        help_text="Every N seconds, instead of a cron expression.",
    )
    timezone = forms.CharField(
        label="Time zone",
        required=False,
        max_length=crontimes.ZONE_CHARS,
        help_text="Where the cron expression's hours are read (Europe/Berlin, UTC...): DST "
        "changes follow the zone.",
    )

    class Meta:
        model = Schedule
        fields = WRITTEN

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.initial.setdefault("timezone", default_timezone())
        self.fields["template"].queryset = self.fields["template"].queryset.order_by("name")

    def clean_cron(self) -> str:
        cron = self.cleaned_data.get("cron") or ""
        return crontimes.validate_cron(cron) if cron.strip() else ""

    def clean_timezone(self) -> str:
        name = self.cleaned_data.get("timezone") or ""
        return crontimes.validate_timezone(name) if name.strip() else default_timezone()

    def clean(self) -> dict:
        cleaned = super().clean()
        if "cron" in self.errors or "interval_s" in self.errors:
            return cleaned
        cron, interval = cleaned.get("cron"), cleaned.get("interval_s")
        if cron and interval:
            self.add_error("cron", "Give a cron expression or an interval, not both.")
        elif not cron and not interval:
            self.add_error("cron", "Give a cron expression or an interval in seconds.")
        return cleaned

    def schedule_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in WRITTEN}
