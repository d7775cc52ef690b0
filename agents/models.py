"""The durable facts of Baton. PostgreSQL (or SQLite standalone) is the source of truth.

Every status change is a conditional UPDATE (`WHERE status = <expected>`), so a duplicated
or redelivered Celery message can never apply a transition twice.
"""

from __future__ import annotations

import time
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import connection, connections, models, router, transaction
from django.db.models import F, Func, OuterRef, Q, Subquery, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.db.models.sql import UpdateQuery
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from . import events, metrics
from .allocation import PLANNER_SPECIALTIES
from .planning import TYPE_CHARS, normalise_specialties
from .statemerge import replay
from .tags import TAGS_CHARS, tagged

IDEMPOTENCY_KEY_CHARS = 255


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PLANNING = "planning", "Planning"
    WAITING = "waiting", "Waiting"
    WORKING = "working", "Working"
    SYNTHESIZING = "synthesizing", "Synthesizing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class SubtaskStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    WORKING = "working", "Working"
    # Paused before its step until an operator decides (agents.approvals): it holds no
    # worker thread and no limiter slot, and does not count in its agent's load.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class WaitingFor(models.TextChoices):
    """What a waiting job waits for: what resumes it is chosen by this code, never by the
    sentence in `status_reason`, which only tells the operator."""

    AGENT = "agent", "An enabled agent"
    SPECIALIST = "specialist", "An enabled agent that may run its subtasks"
    ORCHESTRATOR = "orchestrator", "An enabled orchestrator to plan it"
    REVIEW = "review", "An operator's review of its plan"


JOB_TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
SUBTASK_IN_FLIGHT = (SubtaskStatus.QUEUED, SubtaskStatus.WORKING)
SUBTASK_TERMINAL = (SubtaskStatus.COMPLETED, SubtaskStatus.FAILED, SubtaskStatus.CANCELLED)
SUBTASK_RETRYABLE = (SubtaskStatus.FAILED, SubtaskStatus.CANCELLED)
# Not finished: its dependents wait for it, and its job is not done.
SUBTASK_OPEN = (*SUBTASK_IN_FLIGHT, SubtaskStatus.WAITING, SubtaskStatus.AWAITING_APPROVAL)


def count_of(rows: models.QuerySet) -> Subquery:
    """COUNT(*) of `rows` as a subquery per outer row (`rows` filters on an OuterRef).

    A join + GROUP BY would aggregate every related row before a LIMIT applies; this reads
    an index for just the rows shown. COUNT with no GROUP BY gives 0, never NULL.
    """
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Subquery(counted, output_field=models.IntegerField())


SPECIALTIES_MAX = 12
SYSTEM_PROMPT_CHARS = 4000


def validate_specialties(value: object) -> None:
    """A list of at most SPECIALTIES_MAX names (once normalised) of TYPE_CHARS at most."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValidationError('Give the specialties as a list of names, e.g. ["research"].')
    for name in value:
        if len(name.strip()) > TYPE_CHARS:
            raise ValidationError(
                f"Keep each specialty to {TYPE_CHARS} characters "
                f"({name.strip()[:20]}… has {len(name.strip())})."
            )
    names = normalise_specialties(value)
    if not names:
        raise ValidationError("Give at least one specialty.")
    if len(names) > SPECIALTIES_MAX:
        raise ValidationError(
            f"Give at most {SPECIALTIES_MAX} specialties (this has {len(names)}): "
            "a subtask type names one specialty."
        )


class AgentQuerySet(models.QuerySet):
    def orchestrator(self) -> Agent | None:
        """The enabled planning agent, preferring the one named `orchestrator`."""
        return _orchestrator_of(list(self.filter(enabled=True)))

    def specialists(self) -> list[Agent]:
        """Enabled agents that can take subtasks: an orchestrator only with another specialty
        (as dispatch allows)."""
        return _specialists_of(list(self.filter(enabled=True)))

    def team(self) -> tuple[Agent | None, list[Agent]]:
        """`orchestrator()` and `specialists()` from one read (a planning step needs both)."""
        enabled = list(self.filter(enabled=True))
        return _orchestrator_of(enabled), _specialists_of(enabled)

    def record_outcome(
        self, agent_id: int, *, ok: bool, latency_s: float, tokens: int = 0, cost: Decimal = 0
    ) -> None:
        """Apply one outcome and its usage in a single UPDATE: concurrent ones lose nothing.

        Written as SQL: it runs once per LLM call, and compiling the expression through the
        ORM cost more than the statement itself (bench/RESULTS.md).
        """
        counter = "completed_count" if ok else "failed_count"
        keep = metrics.MOVING_AVERAGE_KEEP
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Agent._meta.db_table} SET {counter} = {counter} + 1, "
                "avg_latency_s = CASE WHEN latency_samples = 0 THEN %s "
                "ELSE avg_latency_s * %s + %s END, "
                "latency_samples = latency_samples + 1, "
                "total_tokens = total_tokens + %s, total_cost = total_cost + %s WHERE id = %s",
                [latency_s, keep, latency_s * (1 - keep), tokens, Decimal(cost), agent_id],
            )
        events.agent_changed(agent_id)

    def with_load(self) -> AgentQuerySet:
        """Agents with `load`, their in-flight subtasks, in the same query."""
        in_flight = Subtask.objects.filter(agent=OuterRef("pk"), status__in=SUBTASK_IN_FLIGHT)
        return self.annotate(load=count_of(in_flight))


def _orchestrator_of(enabled: list[Agent]) -> Agent | None:
    planners = [a for a in enabled if a.is_orchestrator]
    planners.sort(key=lambda a: (a.slug != "orchestrator", a.pk))
    return planners[0] if planners else None


def _specialists_of(enabled: list[Agent]) -> list[Agent]:
    return [a for a in enabled if not a.is_orchestrator or set(a.specialties) - PLANNER_SPECIALTIES]


class Agent(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    # Named as subtask types are (lower case, synonyms folded: agents.planning), so that
    # allocation's `type in specialties` matches; normalised by clean() and save().
    specialties = models.JSONField(
        default=list,
        validators=[validate_specialties],
        help_text=f"Task types this agent handles (at most {SPECIALTIES_MAX}).",
    )
    model = models.CharField(max_length=100, default="gpt-4.1-mini")
    # TextField's max_length only reaches the form: the validator holds it for the model too.
    system_prompt = models.TextField(
        blank=True,
        max_length=SYSTEM_PROMPT_CHARS,
        validators=[MaxLengthValidator(SYSTEM_PROMPT_CHARS)],
    )
    temperature = models.FloatField(
        default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    max_tokens = models.PositiveIntegerField(default=2048, validators=[MinValueValidator(1)])
    max_concurrency = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    # Tools offered to the model: built-in names (agents.tools) and MCP tools granted as
    # "<server slug>/<tool name>" (agents.mcp).
    tools = models.JSONField(default=list, blank=True, help_text="Tools this agent may call.")
    max_tool_steps = models.PositiveSmallIntegerField(
        default=8,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text="Model calls a subtask may make while using tools before it fails.",
    )
    needs_approval = models.BooleanField(
        default=False, help_text="Pause before each of its subtasks until an operator approves."
    )
    # The number of its current AgentVersion (agents.versions records each one).
    version = models.PositiveIntegerField(default=1, editable=False)

    completed_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    avg_latency_s = models.FloatField(default=0.0)
    latency_samples = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if getattr(self, "pinned_version", None) is not None:
            raise ValueError("an agent as it was at a past version is never saved")
        self._normalise_specialties()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self._normalise_specialties()

    def _normalise_specialties(self) -> None:
        if isinstance(self.specialties, list) and all(isinstance(s, str) for s in self.specialties):
            self.specialties = normalise_specialties(self.specialties)

    @property
    def success_rate(self) -> float:
        return metrics.success_rate(self.completed_count, self.failed_count)

    @property
    def is_orchestrator(self) -> bool:
        return not PLANNER_SPECIALTIES.isdisjoint(self.specialties)

    def current_load(self) -> int:
        """In-flight subtasks: derived, never stored (invariant 6)."""
        return self.subtasks.filter(status__in=SUBTASK_IN_FLIGHT).count()


class AgentVersion(models.Model):
    """What shaped an agent's work from one change to the next (agents.versions.snapshot):
    written once, never edited; a restore writes a new version equal to an old one."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agent_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"


def _set_fields(instance: models.Model, fields: dict) -> None:
    """Mirror an UPDATE's plain values on the instance (expressions stay unresolved)."""
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(instance, name, value)


def _update_returning(rows: models.QuerySet, returning: tuple[str, ...], **fields) -> list[tuple]:
    """`rows.update(**fields)` giving `returning` (field names) of exactly the rows it
    changed: UPDATE … RETURNING (PostgreSQL, SQLite ≥ 3.35), which Django's update() lacks.

    A row another transaction moved first is not among them, whatever `rows` read before.
    """
    db = rows._db or router.db_for_write(rows.model)
    query = rows.order_by().query.chain(UpdateQuery)
    query.add_update_values(fields)
    query.clear_select_clause()
    update, params = query.get_compiler(db).as_sql()
    if not update:
        return []
    ops, meta = connections[db].ops, rows.model._meta
    columns = (meta.pk if name == "pk" else meta.get_field(name) for name in returning)
    names = ", ".join(ops.quote_name(field.column) for field in columns)
    with transaction.mark_for_rollback_on_error(using=db), connections[db].cursor() as cursor:
        cursor.execute(f"{update} RETURNING {names}", params)
        return cursor.fetchall()


def _job_defaults(new: str, fields: dict) -> None:
    """What a job's move to `new` also sets unless told: when it finished; a job that stops
    waiting waits for nothing."""
    if new in JOB_TERMINAL:
        fields.setdefault("finished_at", timezone.now())
    if new != JobStatus.WAITING:
        fields.setdefault("waiting_for", "")


class JobQuerySet(models.QuerySet):
    def move(self, expected: str | tuple[str, ...], new: str, **fields: object) -> list[int]:
        """Bulk `Job.transition`: move the jobs that still say `expected`, announce each one
        this UPDATE moved (a concurrent move of the same jobs announces the others)."""
        expected = (expected,) if isinstance(expected, str) else expected
        _job_defaults(new, fields)
        fields = {"status": new, "updated_at": timezone.now(), **fields}
        moved = sorted(_update_returning(self.filter(status__in=expected), ("pk",), **fields))
        for (pk,) in moved:
            events.job_changed(pk, status=new)
        return [pk for (pk,) in moved]

    def claim(self, status: str, **fields: object) -> int:
        """Take the step of the jobs in `status` that no worker holds (`claimed_at` unset);
        how many were taken. A conditional UPDATE like `move`, on the claim rather than the
        status: of two workers given the same step, one takes it and the other sees 0."""
        fields.setdefault("claimed_at", timezone.now())
        return self.filter(status=status, claimed_at__isnull=True).update(**fields)

    def release(self, status: str, **fields: object) -> int:
        """Give back the step held on the jobs still in `status`, for another worker to claim;
        how many were given back (a job that moved on meanwhile keeps its own state)."""
        return self.filter(status=status, claimed_at__isnull=False).update(
            claimed_at=None, **fields
        )

    def for_board(self) -> JobQuerySet:
        """Jobs with their progress, in one query whatever their number."""
        assigned = Subtask.objects.filter(agent__isnull=False).only("job_id", "agent_id")
        subtasks = Subtask.objects.filter(job=OuterRef("pk"))
        return (
            # An experiment's case names its experiment on the card (a join, no query).
            self.select_related("submitted_by", "experiment_case")
            .prefetch_related(
                models.Prefetch("subtasks", queryset=assigned, to_attr="assigned_subtasks"),
                # Each agent read once, not once per subtask.
                models.Prefetch("assigned_subtasks__agent", queryset=Agent.objects.only("name")),
            )
            .annotate(
                subtasks_done=count_of(subtasks.filter(status=SubtaskStatus.COMPLETED)),
                subtasks_total=count_of(subtasks),
                subtasks_awaiting=count_of(subtasks.filter(status=SubtaskStatus.AWAITING_APPROVAL)),
            )
            .order_by("-created_at", "-pk")
        )

    def matching(self, text: str) -> JobQuerySet:
        """Jobs whose title or description contains `text`, in any case."""
        db = connections[self.db]
        if db.vendor != "postgresql":
            return self.filter(Q(title__icontains=text) | Q(description__icontains=text))
        # Through the trigram indexes, whatever the planner would pick (migration 0008).
        pattern = f"%{db.ops.prep_for_like_query(text)}%"
        return self.filter(pk__in=RawSQL("SELECT agents_job_matching(%s)", [pattern]))

    def filtered(
        self,
        *,
        q: str = "",
        status: str = "",
        priority: int | None = None,
        submitter: str = "",
        tag: str = "",
    ) -> JobQuerySet:
        """The board's filters (the page's BoardFilterForm, the API's query, a bulk action's
        selection): text in the title or description, a status, a priority, a submitter's
        username, a tag; empty ones are left out."""
        jobs = self.matching(q) if q else self
        if status:
            jobs = jobs.filter(status=status)
        if priority is not None:
            jobs = jobs.filter(priority=priority)
        if submitter:
            jobs = jobs.filter(submitted_by__username=submitter)
        if tag:
            jobs = jobs.filter(tagged(tag))
        return jobs

    def status_counts(self) -> dict[str, int]:
        counts = dict(self.order_by().values_list("status").annotate(n=models.Count("pk")))
        return {status: counts.get(status, 0) for status in JobStatus.values}

    def newest_ids(self, status: str, n: int) -> list[int]:
        """The ids of the `n` newest jobs in `status`, newest first."""
        newest = self.filter(status=status).order_by("-created_at", "-pk")
        return list(newest.values_list("pk", flat=True)[:n])

    def newest_per_status(self, n: int) -> tuple[dict[str, list[int]], dict[str, int]]:
        """`newest_ids` for every status, and `status_counts`, in one pass over the rows.

        For a narrowed set (a search): each match is read once. The whole board is cheaper
        status by status, where each `newest_ids` reads a few index entries.
        """
        newest_first = (F("created_at").desc(), F("pk").desc())
        ranked = self.order_by().annotate(
            rank=Window(RowNumber(), partition_by=F("status"), order_by=newest_first),
            of=Window(models.Count("pk"), partition_by=F("status")),
        )
        ids: dict[str, list[int]] = {}
        counts: dict[str, int] = {}
        rows = ranked.filter(rank__lte=n).values_list("status", "rank", "pk", "of")
        for status, _, pk, of in sorted(rows):
            ids.setdefault(status, []).append(pk)
            counts[status] = of
        return ids, counts


PRIORITY_HIGHEST, PRIORITY_LOWEST = 0, 9


class Job(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=20000)
    priority = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(PRIORITY_HIGHEST), MaxValueValidator(PRIORITY_LOWEST)],
        help_text="0 is the highest priority, 9 the lowest.",
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    status_reason = models.CharField(max_length=300, blank=True)
    # Set with the status when the job waits ("" otherwise): see WaitingFor.
    waiting_for = models.CharField(max_length=16, choices=WaitingFor.choices, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    total_tokens = models.PositiveBigIntegerField(default=0)
    total_cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    budget_tokens = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="No new LLM call starts once this many tokens are spent."
    )
    budget_cost = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="No new LLM call starts once this much money (USD) is spent.",
    )
    review_plan = models.BooleanField(
        default=False, help_text="Stop after planning until an operator approves the plan."
    )
    # One per submitted form: a second POST of the same form finds the first job.
    submit_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    # Set by the worker that took the planning or synthesis step.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The step's lease (agents.leases): its holder renews it while the step runs, and the
    # reconciler takes back a step whose lease expired.
    lease_owner = models.CharField(max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Its planning or synthesis step taken back from a lost or crashed worker (bounded by
    # STEP_MAX_TAKEBACKS), and the last exception such a step raised, if any.
    takebacks = models.PositiveSmallIntegerField(default=0)
    last_crash = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A re-run from one of another job's subtasks (agents.rerun): what it came from.
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    rerun_from = models.CharField(max_length=64, blank=True, help_text="The subtask's key.")
    # Agent versions this job runs with ({slug: number}: an experiment's or a re-run's
    # choice); an agent not named runs its current version (agents.versions.pinned).
    agent_versions = models.JSONField(default=dict, blank=True)
    # Space-separated, normalised by agents.tags; filter with tags.tagged().
    tags = models.CharField(max_length=TAGS_CHARS, blank=True)
    template = models.ForeignKey(
        "JobTemplate", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["-created_at"], name="job_created"),
            # Jobs that ended in a range (the overview). Nothing indexes total_cost: the job's
            # row is updated at every call, and an indexed column would end its HOT updates.
            models.Index(fields=["status", "finished_at"], name="job_status_finished"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("dash-job-detail", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in JOB_TERMINAL

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()

    def transition(self, expected: str | tuple[str, ...], new: str, **fields: object) -> bool:
        """Move to `new` only if the row still says `expected`; False if another got there.

        The only way a job's status changes (bulk moves: `JobQuerySet.move`); the move is
        announced to live pages once the transaction commits.
        """
        expected = (expected,) if isinstance(expected, str) else expected
        _job_defaults(new, fields)
        updated = Job.objects.filter(pk=self.pk, status__in=expected).update(
            status=new, updated_at=timezone.now(), **fields
        )
        if updated:
            self.status = new
            _set_fields(self, fields)
            events.job_changed(self.pk, status=new)
        return bool(updated)

    def claim(self, status: str, **fields: object) -> bool:
        """Take this job's step (its synthesis) if it is still in `status` and unclaimed;
        False if another worker got there first (`JobQuerySet.claim`)."""
        fields.setdefault("claimed_at", timezone.now())
        claimed = Job.objects.filter(pk=self.pk).claim(status, **fields)
        if claimed:
            _set_fields(self, fields)
        return bool(claimed)

    def release(self, status: str, **fields: object) -> bool:
        """Give back this job's step while it is still in `status`, for a later claim."""
        released = Job.objects.filter(pk=self.pk).release(status, **fields)
        if released:
            _set_fields(self, {"claimed_at": None, **fields})
        return bool(released)

    @property
    def agents_involved(self) -> list[str]:
        """Needs for_board()."""
        return sorted({s.agent.name for s in getattr(self, "assigned_subtasks", [])})

    @property
    def has_budget(self) -> bool:
        return self.budget_tokens is not None or self.budget_cost is not None

    def over_budget(self) -> bool:
        """True once the spent tokens or money reach a budget the job carries."""
        if self.budget_tokens is not None and self.total_tokens >= self.budget_tokens:
            return True
        return self.budget_cost is not None and self.total_cost >= self.budget_cost

    @property
    def budget_left(self) -> str:
        parts = []
        if self.budget_tokens is not None:
            parts.append(f"{max(self.budget_tokens - self.total_tokens, 0)} tokens")
        if self.budget_cost is not None:
            parts.append(f"${max(self.budget_cost - self.total_cost, 0):.4f}")
        return " · ".join(parts)

    @property
    def elapsed_s(self) -> float:
        return ((self.finished_at or timezone.now()) - self.created_at).total_seconds()

    @property
    def can_cancel(self) -> bool:
        return not self.is_terminal

    @property
    def can_retry(self) -> bool:
        """It resumes from its first unfinished step: planning, the open subtasks or synthesis."""
        return self.status in (JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def awaiting_review(self) -> bool:
        """Planned and stopped until an operator edits and approves the plan."""
        return self.status == JobStatus.WAITING and self.review_plan and self.planned_at is not None

    @property
    def controls(self) -> list[str]:
        """The operator actions that apply now, whoever looks: the live header carries them."""
        applies = {
            "cancel": self.can_cancel,
            "retry": self.can_retry,
            "review": self.awaiting_review,
        }
        return [name for name, allowed in applies.items() if allowed]


class SubtaskQuerySet(models.QuerySet):
    def move(self, expected: str | tuple[str, ...], new: str, **fields: object) -> list[int]:
        """Bulk `Subtask.transition`: move those that still say `expected`, announce each one
        this UPDATE moved (a concurrent move of the same subtasks announces the others)."""
        expected = (expected,) if isinstance(expected, str) else expected
        if new in SUBTASK_TERMINAL:
            fields.setdefault("finished_at", timezone.now())
        fields = {"status": new, "updated_at": timezone.now(), **fields}
        moved = sorted(_update_returning(self.filter(status__in=expected), ("pk", "job"), **fields))
        for pk, job_id in moved:
            events.subtask_changed(pk, job_id, status=new)
        return [pk for pk, _ in moved]


SUBTASK_DESCRIPTION_CHARS = 4000  # what an operator may write for a step (its payload's)


class Subtask(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="subtasks")
    key = models.CharField(max_length=64, help_text="The plan's id for this subtask.")
    type = models.CharField(max_length=50)
    payload = models.JSONField(default=dict)
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, related_name="dependents", blank=True
    )
    assign_hint = models.CharField(max_length=50, blank=True)
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="subtasks"
    )
    allocation = models.JSONField(default=dict, blank=True, help_text="Why this agent.")
    status = models.CharField(
        max_length=20, choices=SubtaskStatus.choices, default=SubtaskStatus.WAITING
    )
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    retry_count = models.PositiveSmallIntegerField(default=0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    redispatches = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The agent's version its latest attempt ran with (set by the claim).
    agent_version = models.PositiveIntegerField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=5)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running attempt's lease (agents.leases), as on Job.
    lease_owner = models.CharField(max_length=120, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # As on Job: attempts taken back from a lost or crashed worker, and the last exception.
    takebacks = models.PositiveSmallIntegerField(default=0)
    last_crash = models.TextField(blank=True)
    # In a re-run, a subtask upstream of the re-run one: its result copied from this one,
    # with no provider call.
    copied_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )

    objects = SubtaskQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "key"], name="subtask_key_unique_per_job")
        ]
        indexes = [
            models.Index(fields=["status", "priority", "job"], name="subtask_queue"),
            models.Index(fields=["agent", "status"], name="subtask_agent_status"),
            models.Index(fields=["job", "status"], name="subtask_job_status"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.type}) of job #{self.job_id}"

    @property
    def description(self) -> str:
        return str(self.payload.get("description", "")) if isinstance(self.payload, dict) else ""

    @property
    def can_retry(self) -> bool:
        """Failed or cancelled, in a planned job that has not completed (reads `self.job`)."""
        if self.status not in SUBTASK_RETRYABLE:
            return False
        return self.job.status != JobStatus.COMPLETED and self.job.planned_at is not None

    def transition(
        self,
        expected: str | tuple[str, ...],
        new: str,
        *,
        attempt: int | None = None,
        **fields: object,
    ) -> bool:
        """Conditional status update; False means another process already moved it.

        `attempt` also requires that no later claim has taken the subtask over since. The only
        way a subtask's status changes (bulk moves: `SubtaskQuerySet.move`), announced on commit.
        """
        expected = (expected,) if isinstance(expected, str) else expected
        if new in SUBTASK_TERMINAL:
            fields.setdefault("finished_at", timezone.now())
        rows = Subtask.objects.filter(pk=self.pk, status__in=expected)
        if attempt is not None:
            rows = rows.filter(attempts=attempt)
        updated = rows.update(status=new, updated_at=timezone.now(), **fields)
        if updated:
            self.status = new
            _set_fields(self, fields)
            events.subtask_changed(self.pk, self.job_id, status=new)
        return bool(updated)


class ModelPrice(models.Model):
    model = models.CharField(max_length=100, unique=True)
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        _price_cache.forget()

    def delete(self, *args, **kwargs):
        deleted = super().delete(*args, **kwargs)
        _price_cache.forget()
        return deleted

    @classmethod
    def prices_of(cls, model: str) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens, or None for a model with no price."""
        return _price_cache.get().get(model)

    @classmethod
    def cost_of(cls, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        prices = _price_cache.get()
        if model not in prices:
            return Decimal(0)
        prompt_price, completion_price = prices[model]
        return (prompt_price * prompt_tokens + completion_price * completion_tokens) / 1_000_000


class _PriceCache:
    """Prices change rarely (admin edits): read them at most every few seconds per process."""

    ttl_s = 5.0

    def __init__(self) -> None:
        self._prices: dict[str, tuple[Decimal, Decimal]] = {}
        self._read_at = float("-inf")

    def get(self) -> dict[str, tuple[Decimal, Decimal]]:
        now = time.monotonic()
        if now - self._read_at > self.ttl_s:
            rows = ModelPrice.objects.values_list(
                "model", "input_per_million", "output_per_million"
            )
            self._prices = {model: (i, o) for model, i, o in rows}
            self._read_at = now
        return self._prices

    def forget(self) -> None:
        """A price was saved in this process: it applies at once here (standalone, the
        worker too), not a TTL later; again on commit, for threads that read before it."""
        self._read_at = float("-inf")
        transaction.on_commit(self._forget_now)

    def _forget_now(self) -> None:
        self._read_at = float("-inf")


_price_cache = _PriceCache()


class LLMCall(models.Model):
    class Reuse(models.IntegerChoices):
        NONE = 0, "Its own attempt's"
        ADOPTED = 1, "Adopted by a later attempt"
        COUNTED = 2, "Counted by its attempt, which lost the step"

    class Purpose(models.TextChoices):
        PLAN = "plan", "Plan"
        SUBTASK = "subtask", "Subtask"
        SYNTHESIS = "synthesis", "Synthesis"
        JUDGE = "judge", "Judge"

    agent = models.ForeignKey(Agent, null=True, on_delete=models.SET_NULL, related_name="calls")
    # The agent's version the call ran with.
    agent_version = models.PositiveIntegerField(null=True, blank=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="calls")
    subtask = models.ForeignKey(
        Subtask, null=True, blank=True, on_delete=models.CASCADE, related_name="calls"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    model = models.CharField(max_length=100)
    messages = models.JSONField(default=list)
    response = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_s = models.FloatField(default=0.0)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    # The answer's `tool_calls` (finish_reason "tool_calls"): what the model asked to run.
    tool_calls = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    # Who counts this call's usage when its step changed hands (agents.calls.adopt_recorded):
    # a later attempt that finished from its answer (its worker died after the provider
    # answered), or the attempt that made it, having lost the step. Never both.
    adopted = models.PositiveSmallIntegerField(default=0, choices=Reuse.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["agent", "created_at"], name="llmcall_agent_created"),
            models.Index(fields=["created_at"], name="llmcall_created"),
            models.Index(fields=["model"], name="llmcall_model"),
            models.Index(fields=["http_status"], name="llmcall_http_status"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} call {self.pk} ({self.model})"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def ok(self) -> bool:
        return not self.error


class SharedState(models.Model):
    """A job's blackboard. Writes are compare-and-set on `version` (see agents.state)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="state")
    data = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=0)
    # JSON bytes of the changes written since the last version that holds a snapshot.
    chain_bytes = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"state of job #{self.job_id} v{self.version}"


class SharedStateVersion(models.Model):
    """One write: its author and its changes (what `agents.state.merge` applied to the
    version before). The whole state is kept only now and then (`snapshot`): any version
    is rebuilt from the snapshot before it, so the history grows with what was written,
    not with the state's size times its versions."""

    state = models.ForeignKey(SharedState, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    changes = models.JSONField(default=dict)
    snapshot = models.JSONField(null=True, blank=True)
    author = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["state", "version"]
        constraints = [
            models.UniqueConstraint(fields=["state", "version"], name="state_version_unique")
        ]
        indexes = [
            # The snapshot a rebuild starts from, found without walking the versions after it.
            models.Index(
                fields=["state", "version"],
                condition=Q(snapshot__isnull=False),
                name="state_version_snapshot",
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} by {self.author}"

    @cached_property
    def data(self) -> dict:
        """The whole state as of this version, rebuilt (two queries: for one version; a page
        of them is `agents.state.history`)."""
        return replay(SharedStateVersion.objects.filter(state_id=self.state_id), upto=self.version)


class AuditEntry(models.Model):
    """Who did what: operator actions, and the reconciler's re-dispatches."""

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=40)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="audit"
    )
    subtask = models.ForeignKey(Subtask, null=True, blank=True, on_delete=models.CASCADE)
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="audit"
    )
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["action", "-created_at"], name="audit_action_created"),
            models.Index(fields=["-created_at", "-id"], name="audit_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'} {self.action}"


class MCPServer(models.Model):
    """A Model Context Protocol server (streamable HTTP) whose tools agents may be granted.

    Its secret is named, never stored: `auth_env` is the environment variable whose value
    is sent as a bearer token.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    url = models.URLField(max_length=500, help_text="The streamable HTTP endpoint, e.g. …/mcp")
    auth_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding its bearer token (not the token).",
    )
    enabled = models.BooleanField(default=True)
    # The server's tool list as last fetched: [{"name", "description", "input_schema"}].
    tools = models.JSONField(default=list, blank=True)
    tools_fetched_at = models.DateTimeField(null=True, blank=True)
    fetch_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """A URL changed drops the token variable the server had: a token goes only where it
        was named for (agents.mcp also holds it to MCP_TOKEN_ORIGINS at every request). A
        variable named anew in the same change is kept."""
        fields = kwargs.get("update_fields")
        if self.pk and self.auth_env and (fields is None or "url" in fields):
            before = MCPServer.objects.filter(pk=self.pk).values("url", "auth_env").first()
            if before and before["url"] != self.url and before["auth_env"] == self.auth_env:
                self.auth_env = ""
                if fields is not None:
                    kwargs["update_fields"] = {*fields, "auth_env"}
        super().save(*args, **kwargs)


class ToolCall(models.Model):
    """One tool call a model asked for in a subtask, and what came of it."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DONE = "done", "Done"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tool_calls")
    subtask = models.ForeignKey(Subtask, on_delete=models.CASCADE, related_name="tool_calls")
    llm_call = models.ForeignKey(
        LLMCall, null=True, blank=True, on_delete=models.CASCADE, related_name="tool_runs"
    )
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL)
    call_id = models.CharField(max_length=100, blank=True, help_text="The model's id for it.")
    name = models.CharField(max_length=200)
    arguments = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    latency_s = models.FloatField(null=True, blank=True)
    # Runs started: more than one means a worker was lost while it ran (STEP_MAX_TAKEBACKS).
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["subtask", "id"], name="toolcall_subtask"),
            # Failed tool runs in a range (the overview's errors by kind).
            models.Index(
                fields=["finished_at"],
                name="toolcall_error_finished",
                condition=Q(status="done") & ~Q(error=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} for {self.subtask_id}"

    @property
    def ok(self) -> bool:
        return self.status == self.Status.DONE and not self.error

    def transition(self, expected: str | tuple[str, ...], new: str, **fields: object) -> bool:
        """Move to `new` only if the row still says `expected`; False if another got there
        (a decision never reopens a call that ran). The only way a tool call's status
        changes; its callers announce it with their subtask or job."""
        expected = (expected,) if isinstance(expected, str) else expected
        updated = ToolCall.objects.filter(pk=self.pk, status__in=expected).update(
            status=new, **fields
        )
        if updated:
            self.status = new
            _set_fields(self, fields)
        return bool(updated)


class ApprovalRule(models.Model):
    """Subtasks of a type, or calls of a tool, that wait for an operator's approval (agents
    are marked on their own row: `Agent.needs_approval`)."""

    class Kind(models.TextChoices):
        TYPE = "type", "Subtask type"
        TOOL = "tool", "Tool"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="approval_rule_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name} needs approval"


class Approval(models.Model):
    """One pause for an operator: a subtask's model call (no `tool_call`) or a tool call,
    showing exactly what would be sent, and the decision taken on it."""

    class Decision(models.TextChoices):
        PENDING = "", "Pending"
        APPROVED = "approved", "Approved"
        EDITED = "edited", "Edited and approved"
        REJECTED = "rejected", "Rejected"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="approvals")
    subtask = models.ForeignKey(Subtask, on_delete=models.CASCADE, related_name="approvals")
    tool_call = models.OneToOneField(
        ToolCall, null=True, blank=True, on_delete=models.CASCADE, related_name="approval"
    )
    why = models.CharField(max_length=200, help_text="The rule that asked for approval.")
    # What would be sent: the model call's messages, or the tool call's arguments.
    proposed = models.JSONField(default=list)
    decision = models.CharField(
        max_length=10, choices=Decision.choices, default=Decision.PENDING, blank=True
    )
    edited = models.JSONField(null=True, blank=True)
    feedback = models.TextField(blank=True, max_length=4000)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # With a timeout (APPROVAL_TIMEOUT_S), the default action (APPROVAL_TIMEOUT_ACTION) is
    # taken at this time by the reconciler, and says so.
    expires_at = models.DateTimeField(null=True, blank=True)
    timed_out = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(decision=""), name="approval_pending")
        ]

    def __str__(self) -> str:
        return f"approval {self.pk} of subtask {self.subtask_id}"

    @property
    def pending(self) -> bool:
        return self.decision == self.Decision.PENDING


class OutboxEvent(models.Model):
    """An announcement someone consumes (a subscribed webhook, an open event stream), written
    in the transaction of the move that made it and deleted once relayed (agents.outbox):
    a process killed between its commit and its relay loses nothing."""

    event_id = models.CharField(max_length=32)  # the announcement's id, the same if relayed twice
    event = models.CharField(max_length=40)
    job_id = models.BigIntegerField()  # no foreign key: the event outlives nothing it names
    data = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"


# --- Evaluation: datasets, scorers, experiments and scores (agents.datasets, agents.scoring,
# agents.experiments, agents.quality). ---

CASE_TEXT_CHARS = 20000
CASE_NOTES_CHARS = 4000
CASE_TAGS_MAX = 20
# Experiment jobs run below every priority an operator may give (dispatch takes the lowest
# number first), so they never hold back what is submitted meanwhile.
EXPERIMENT_PRIORITY = PRIORITY_LOWEST + 1


class Dataset(models.Model):
    """Named cases to run an experiment on."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dash-dataset", args=[self.slug])


class Case(models.Model):
    """One input (as a job's title and description), what a good answer holds, and tags."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="cases")
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=CASE_TEXT_CHARS)
    expected = models.TextField(
        blank=True, max_length=CASE_TEXT_CHARS, help_text="The expected output, if any."
    )
    notes = models.TextField(
        blank=True, max_length=CASE_NOTES_CHARS, help_text="Reference notes for a judge."
    )
    tags = models.JSONField(default=list, blank=True)
    # The finished job it was taken from, if any: a job is added to a dataset once.
    source_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "source_job"],
                condition=Q(source_job__isnull=False),
                name="case_job_once_per_dataset",
            )
        ]

    def __str__(self) -> str:
        return self.title


class Scorer(models.Model):
    """How an output is scored, in [0, 1]: an LLM judge, a code check, or a person."""

    class Kind(models.TextChoices):
        JUDGE = "judge", "LLM judge"
        EXACT = "exact", "Exact match"
        CONTAINS = "contains", "Contains"
        REGEX = "regex", "Regular expression"
        JSON_SCHEMA = "json_schema", "Valid JSON (schema)"
        LENGTH = "length", "Length bounds"

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # judge: {"rubric", "model"}; contains: {"text", "case_sensitive"}; regex: {"pattern"};
    # json_schema: {"schema"}; length: {"min", "max"}; exact: {"case_sensitive"}.
    config = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A score at or above this passes.",
    )
    # Online scoring: completed live subtasks of this type are scored at this rate.
    online_type = models.CharField(max_length=50, blank=True)
    sample_rate = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"  # its budget ran out
    CANCELLED = "cancelled", "Cancelled"


class Experiment(models.Model):
    """A dataset run against one configuration of the agents, each case as a job."""

    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    dataset_name = models.CharField(max_length=100)
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING
    )
    status_reason = models.CharField(max_length=300, blank=True)
    # Versions chosen per agent ({slug: number}); an agent not named runs its current one.
    agent_versions = models.JSONField(default=dict, blank=True)
    scorers = models.ManyToManyField(Scorer, blank=True, related_name="experiments")
    budget_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    budget_cost = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
    )
    priority = models.PositiveSmallIntegerField(default=EXPERIMENT_PRIORITY)
    # Cases in flight at once: the rest wait their turn, not in the broker's queue.
    concurrency = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="experiment_status")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("dash-experiment", args=[self.pk])


class ExperimentCase(models.Model):
    """The copy of a case an experiment ran (editing the dataset never changes it), and the
    job that ran it."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField()
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=CASE_TEXT_CHARS)
    expected = models.TextField(blank=True, max_length=CASE_TEXT_CHARS)
    notes = models.TextField(blank=True, max_length=CASE_NOTES_CHARS)
    tags = models.JSONField(default=list, blank=True)
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiment_case"
    )
    # Set once every scorer of the experiment has scored the job (or the job never ran).
    scored_at = models.DateTimeField(null=True, blank=True)
    # Why a scorer could not score it (its judge's answer unusable, its call failed).
    scoring_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "position"], name="experiment_case_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}#{self.position} {self.title}"


class Score(models.Model):
    """One score of a job's output (or, online, of a subtask's), with who or what gave it."""

    class Source(models.TextChoices):
        JUDGE = "judge", "LLM judge"
        CODE = "code", "Code"
        HUMAN = "human", "Human"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="scores")
    # Online scoring scores one subtask's result; experiments and people score the job's.
    subtask = models.ForeignKey(
        Subtask, null=True, blank=True, on_delete=models.CASCADE, related_name="scores"
    )
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.CASCADE, related_name="scores"
    )
    scorer = models.ForeignKey(
        Scorer, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores"
    )
    scorer_name = models.CharField(max_length=100)
    source = models.CharField(max_length=8, choices=Source.choices)
    value = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    passed = models.BooleanField(null=True, blank=True)
    reason = models.TextField(blank=True, max_length=2000)
    # A person's rating, 1–5 (value is (rating − 1) / 4), and who gave it.
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The judge's own model call (its cost and trace).
    call = models.ForeignKey(
        LLMCall, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A scorer scores a job's output once, and a subtask's once; a person rates a
            # job once (a new rating replaces the old).
            models.UniqueConstraint(
                fields=["job", "scorer"],
                condition=Q(subtask__isnull=True, scorer__isnull=False),
                name="score_job_scorer_once",
            ),
            models.UniqueConstraint(
                fields=["subtask", "scorer"],
                condition=Q(subtask__isnull=False, scorer__isnull=False),
                name="score_subtask_scorer_once",
            ),
            models.UniqueConstraint(
                fields=["job", "given_by"],
                condition=Q(source="human"),
                name="score_human_once_per_job",
            ),
        ]
        indexes = [models.Index(fields=["experiment", "scorer"], name="score_experiment")]

    def __str__(self) -> str:
        return f"{self.scorer_name} {self.value:.2f} on job #{self.job_id}"


class QualitySample(models.Model):
    """A score credited to the agent whose work it scored, under the subtask's type: the
    allocator's quality term is the recent mean of these (agents.quality)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="quality_samples")
    agent_version = models.PositiveIntegerField(null=True, blank=True)
    specialty = models.CharField(max_length=50)
    value = models.FloatField()
    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="samples")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at", "agent", "specialty"], name="quality_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}/{self.specialty} {self.value:.2f}"


# Defined beside the code that reads the header; imported here so Django registers it.
from .credentials import ApiToken  # noqa: E402, F401


class JobTemplate(models.Model):
    """A saved job, submitted in one click, by the API, the CLI or a schedule. Its title and
    description may hold placeholders ({date}, {time}…) filled at submit time
    (agents.job_templates)."""

    name = models.SlugField(max_length=60, unique=True, help_text="How the CLI names it.")
    title = models.CharField(max_length=200)
    description = models.TextField(max_length=20000)
    priority = models.PositiveSmallIntegerField(default=5)
    budget_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    budget_cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    review_plan = models.BooleanField(default=False)
    tags = models.CharField(max_length=TAGS_CHARS, blank=True)
    agent_versions = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()


class MissedRuns(models.TextChoices):
    """What a schedule does with due times that passed while no worker ran."""

    RUN_ONCE = "run_once", "Run once for all of them"
    SKIP = "skip", "Skip them"


class Overlap(models.TextChoices):
    """What a schedule does when a run is due and its previous run is still going."""

    SKIP = "skip", "Skip the new run"
    RUN = "run", "Run anyway"
    CANCEL_PREVIOUS = "cancel_previous", "Cancel the previous run"


class Schedule(models.Model):
    """A template submitted on a cron expression (in a time zone) or every `interval_s`.

    `next_run_at` is the claim: a worker takes a due time by moving it on with a conditional
    UPDATE, in the transaction that creates the run (agents.schedules)."""

    name = models.CharField(max_length=100, unique=True)
    template = models.ForeignKey(JobTemplate, on_delete=models.PROTECT, related_name="schedules")
    cron = models.CharField(max_length=100, blank=True, help_text="Five fields, as cron has.")
    interval_s = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Or every N seconds."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    on_missed = models.CharField(
        max_length=16, choices=MissedRuns.choices, default=MissedRuns.RUN_ONCE
    )
    on_overlap = models.CharField(max_length=16, choices=Overlap.choices, default=Overlap.SKIP)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval_s__isnull=False))
                | (~Q(cron="") & Q(interval_s__isnull=True)),
                name="schedule_cron_or_interval",
            ),
        ]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return self.name


class RunOutcome(models.TextChoices):
    STARTED = "started", "Started"
    SKIPPED_OVERLAP = "skipped_overlap", "Skipped: the previous run was still going"
    SKIPPED_MISSED = "skipped_missed", "Skipped: missed while no worker ran"
    FAILED = "failed", "Could not start"


class ScheduleRun(models.Model):
    """One due time of a schedule, and what came of it: at most one per due time."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    due_at = models.DateTimeField()
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_run"
    )
    outcome = models.CharField(max_length=20, choices=RunOutcome.choices)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"], name="schedule_run_once"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.due_at:%Y-%m-%d %H:%M:%S}: {self.outcome}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key`: the first request with it made `job`; the same key with
    the same request (`fingerprint`) within IDEMPOTENCY_KEY_TTL_S gets that job again. The
    unique constraint, not a read, decides which of concurrent requests creates it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=IDEMPOTENCY_KEY_CHARS)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the request.")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


from .stats_models import *  # noqa: E402, F403  (the overview's buckets, registered here)
