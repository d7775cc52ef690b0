"""What the API reads and writes. Output serializers describe rows the domain returns;
input serializers check types, and the domain's forms (agents/forms.py) then apply the same
rules as the pages: the fields and limits here are taken from those forms."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents import tags, versions
from agents.forms import AgentForm, JobForm, NewSubtaskForm
from agents.models import (
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    Agent,
    AgentVersion,
    Job,
    JobStatus,
    LLMCall,
    Subtask,
    ToolCall,
)
from agents.planning import TYPE_CHARS

MONEY = {"max_digits": None, "decimal_places": 6, "read_only": True}


class CandidateSerializer(serializers.Serializer):
    agent = serializers.CharField()
    success_rate = serializers.FloatField()
    avg_latency_s = serializers.FloatField()
    load = serializers.IntegerField()
    max_concurrency = serializers.IntegerField(required=False)
    quality = serializers.FloatField(
        required=False, help_text="Its recent mean score for the type, in [0, 1] (if scored)."
    )
    quality_n = serializers.IntegerField(required=False, help_text="How many scores.")
    quality_term = serializers.FloatField(
        required=False, help_text="What quality adds to the score (0 under the prior)."
    )
    prior = serializers.BooleanField(
        required=False, help_text="Too few scores: the neutral prior stands for quality."
    )
    score = serializers.FloatField()


class AllocationSerializer(serializers.Serializer):
    """Why the allocator chose this agent (empty until the subtask is allocated)."""

    type = serializers.CharField(required=False)
    hint = serializers.CharField(required=False, allow_blank=True)
    chosen = serializers.CharField(required=False, allow_null=True)
    by = serializers.ChoiceField(choices=["hint", "score"], required=False)
    hint_ignored = serializers.CharField(
        required=False, help_text="Why the plan's choice of agent was set aside."
    )
    eligible = serializers.IntegerField(
        required=False, help_text="How many agents could take the type."
    )
    candidates = CandidateSerializer(
        many=True, required=False, help_text="The best-scoring eligible agents, best first."
    )

    def to_representation(self, instance: dict) -> dict:
        return super().to_representation(instance) if instance else {}


class SubtaskSerializer(serializers.ModelSerializer):
    agent = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="The agent's slug."
    )
    depends_on = serializers.SerializerMethodField()
    description = serializers.CharField(read_only=True)
    allocation = AllocationSerializer(read_only=True)
    can_retry = serializers.BooleanField(read_only=True)
    cost = serializers.DecimalField(**MONEY)

    class Meta:
        model = Subtask
        fields = [
            "id",
            "job",
            "key",
            "type",
            "description",
            "status",
            "depends_on",
            "assign_hint",
            "agent",
            "agent_version",
            "allocation",
            "result",
            "error",
            "retry_count",
            "max_retries",
            "attempts",
            "next_attempt_at",
            "latency_s",
            "tokens",
            "cost",
            "can_retry",
            "copied_from",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "copied_from": {"help_text": "In a re-run: the subtask whose result was copied."},
            "agent_version": {"help_text": "The agent's version its latest attempt ran with."},
        }

    def get_depends_on(self, sub: Subtask) -> list[str]:
        return [d.key for d in sub.depends_on.all()]


class JobSerializer(serializers.ModelSerializer):
    """A job as the board's card shows it."""

    submitted_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="A username."
    )
    subtasks_done = serializers.IntegerField(read_only=True)
    subtasks_total = serializers.IntegerField(read_only=True)
    agents = serializers.ListField(
        source="agents_involved", child=serializers.CharField(), read_only=True
    )
    controls = serializers.ListField(
        child=serializers.ChoiceField(choices=["cancel", "retry", "review"]),
        read_only=True,
        help_text="The operator actions that apply now.",
    )
    total_cost = serializers.DecimalField(**MONEY)
    tags = serializers.ListField(source="tag_list", child=serializers.CharField(), read_only=True)
    page = serializers.SerializerMethodField(help_text="The job's page in the dashboard.")

    class Meta:
        model = Job
        fields = [
            "id",
            "title",
            "priority",
            "status",
            "status_reason",
            "tags",
            "submitted_by",
            "review_plan",
            "budget_tokens",
            "budget_cost",
            "total_tokens",
            "total_cost",
            "subtasks_done",
            "subtasks_total",
            "agents",
            "controls",
            "created_at",
            "updated_at",
            "finished_at",
            "page",
        ]
        read_only_fields = fields

    def get_page(self, job: Job) -> str:
        return self.context["request"].build_absolute_uri(job.get_absolute_url())


class JobDetailSerializer(JobSerializer):
    subtasks = SubtaskSerializer(many=True, read_only=True, source="plan")
    template = serializers.SlugRelatedField(
        slug_field="name",
        read_only=True,
        allow_null=True,
        help_text="The template it was submitted from, if any.",
    )
    reruns = serializers.SerializerMethodField(help_text="The jobs re-run from this one's steps.")

    class Meta(JobSerializer.Meta):
        fields = [
            *JobSerializer.Meta.fields,
            "description",
            "result",
            "error",
            "planned_at",
            "template",
            "subtasks",
            "rerun_of",
            "rerun_from",
            "reruns",
        ]
        read_only_fields = fields
        extra_kwargs = {"rerun_of": {"help_text": "The job this one re-runs from `rerun_from`."}}

    def get_reruns(self, job: Job) -> list[int]:
        return list(job.reruns.order_by("pk").values_list("pk", flat=True))


TAGS_HELP = (
    f"Up to {tags.MAX_TAGS} words of at most {tags.TAG_CHARS} characters: letters, digits and "
    ". _ : - (lowercased)."
)


class JobCreateSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(
        child=serializers.CharField(max_length=tags.TAG_CHARS),
        max_length=tags.MAX_TAGS,
        required=False,
        help_text=TAGS_HELP,
    )

    class Meta:
        model = Job
        fields = [*JobForm.Meta.fields, "tags"]
        # Blank text is the board form's to refuse, in its own words.
        text = {"allow_blank": True, "trim_whitespace": False}
        extra_kwargs = {"title": text, "description": text}


# The plan review form's limits, as the API checks the types before the form.
SUBTASK_CHARS = {
    name: field.max_length
    for name, field in NewSubtaskForm.base_fields.items()
    if name in ("key", "type", "description")
}


class SubtaskEditSerializer(serializers.Serializer):
    """Plan review: what a planned subtask does and who may do it. Omitted fields stay."""

    description = serializers.CharField(max_length=SUBTASK_CHARS["description"], required=False)
    type = serializers.CharField(max_length=SUBTASK_CHARS["type"], required=False)
    agent = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="An enabled agent's slug, or null to leave the choice to the score.",
    )


class SubtaskAddSerializer(serializers.Serializer):
    key = serializers.CharField(
        max_length=SUBTASK_CHARS["key"], help_text="The subtask's id in the plan."
    )
    type = serializers.CharField(max_length=SUBTASK_CHARS["type"])
    description = serializers.CharField(max_length=SUBTASK_CHARS["description"])
    depends_on = serializers.ListField(
        child=serializers.CharField(max_length=SUBTASK_CHARS["key"]),
        required=False,
        help_text="Keys in the plan.",
    )
    agent = serializers.CharField(allow_null=True, required=False)


class SeriesSerializer(serializers.Serializer):
    latency = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        help_text="Mean latency (s) of successful calls per 5-minute bucket, oldest first.",
    )
    calls = serializers.ListField(child=serializers.IntegerField(), help_text="Calls per bucket.")


AGENT_FIELDS = AgentForm.Meta.fields
TOOLS_HELP = (
    'Tools the agent may call: built-in names (e.g. "read_state") and MCP tools as '
    '"<server slug>/<tool name>".'
)


class AgentSerializer(serializers.ModelSerializer):
    """An agent with its live metrics, as the agents page shows it."""

    specialties = serializers.ListField(child=serializers.CharField())
    tools = serializers.ListField(child=serializers.CharField(), help_text=TOOLS_HELP)
    load = serializers.IntegerField(read_only=True, help_text="Subtasks queued or working.")
    success_rate = serializers.FloatField(read_only=True)
    is_orchestrator = serializers.BooleanField(read_only=True)
    total_cost = serializers.DecimalField(**MONEY)
    series = SeriesSerializer(read_only=True, help_text="The last hour.")

    class Meta:
        model = Agent
        fields = [
            "id",
            *AGENT_FIELDS,
            "version",
            "is_orchestrator",
            "load",
            "completed_count",
            "failed_count",
            "success_rate",
            "avg_latency_s",
            "total_tokens",
            "total_cost",
            "series",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentWriteSerializer(serializers.ModelSerializer):
    """Fields an agent manager sets; checked again by the agents page's form."""

    specialties = serializers.ListField(
        # The page's form reads them comma-separated: a comma cannot be part of a name.
        child=serializers.RegexField(r"^[^,]+$", max_length=TYPE_CHARS),
        help_text='Task types, e.g. ["research"].',
    )
    tools = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, help_text=TOOLS_HELP
    )
    version_note = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="A note on the version an edit of what shapes the agent's work records.",
    )

    class Meta:
        model = Agent
        fields = [*AGENT_FIELDS, "version_note"]
        # Uniqueness and the model's own rules are the form's to check, as on the page.
        extra_kwargs = {"slug": {"validators": []}}


class ToolCallSerializer(serializers.ModelSerializer):
    """One tool call a model asked for, and what came of it."""

    class Meta:
        model = ToolCall
        fields = [
            "id",
            "call_id",
            "name",
            "arguments",
            "status",
            "result",
            "error",
            "latency_s",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class CallSerializer(serializers.ModelSerializer):
    """One LLM call: its prompt, answer, usage and cost, and the tool calls it asked for."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    subtask = serializers.SlugRelatedField(
        slug_field="key", read_only=True, allow_null=True, help_text="The subtask's key."
    )
    messages = serializers.JSONField(read_only=True, help_text="The chat messages sent.")
    total_tokens = serializers.IntegerField(read_only=True)
    cost = serializers.DecimalField(**MONEY)
    tool_calls = serializers.ListField(
        child=serializers.DictField(),
        read_only=True,
        help_text="The tool calls the answer asked for, as the model wrote them.",
    )
    tool_runs = ToolCallSerializer(
        many=True, read_only=True, help_text="Those tool calls as run: result or error, latency."
    )

    class Meta:
        model = LLMCall
        fields = [
            "id",
            "purpose",
            "agent",
            "agent_version",
            "subtask",
            "model",
            "messages",
            "response",
            "finish_reason",
            "http_status",
            "error",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "latency_s",
            "cost",
            "tool_calls",
            "tool_runs",
            "created_at",
        ]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.OBJECT)
class AgentVersionSerializer(serializers.ModelSerializer):
    """One version of what shapes an agent's work."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    label = serializers.SerializerMethodField(help_text='As the pages name it: "Reviewer v7".')
    author = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Who made the change."
    )
    config = serializers.DictField(
        read_only=True,
        help_text="The versioned fields: model, system_prompt, specialties, tools, "
        "needs_approval, temperature, max_tokens, max_tool_steps.",
    )
    current = serializers.SerializerMethodField(help_text="Whether the agent runs with it now.")

    class Meta:
        model = AgentVersion
        fields = ["agent", "number", "label", "current", "author", "created_at", "note", "config"]
        read_only_fields = fields

    def get_label(self, version: AgentVersion) -> str:
        return versions.label(version.agent.name, version.number)

    def get_current(self, version: AgentVersion) -> bool:
        return version.agent.version == version.number


class AgentVersionChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)
    lines = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='For system_prompt: a line diff ("-removed", "+added", " context").',
    )


class AgentVersionDiffSerializer(serializers.Serializer):
    agent = serializers.CharField()
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    changes = AgentVersionChangeSerializer(many=True)


class StateDataField(serializers.JSONField):
    """The blackboard: a JSON object."""


class StateSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    data = StateDataField()
    updated_at = serializers.DateTimeField(allow_null=True)


class StateVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    author = serializers.CharField()
    created_at = serializers.DateTimeField()
    changes = StateDataField(help_text="What the writer changed: top-level keys merged.")


class StateVersionDetailSerializer(StateVersionSerializer):
    data = StateDataField(help_text="The whole state as of this version.")


class StateChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Dotted path, e.g. `results.research`.")
    change = serializers.ChoiceField(choices=["added", "removed", "changed"])
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class StateDiffSerializer(serializers.Serializer):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    changes = StateChangeSerializer(many=True)


class SpendRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True, help_text="The agent's slug, or the model.")
    calls = serializers.IntegerField()
    failed_calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=None, decimal_places=6)


class SpendSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    by_agent = SpendRowSerializer(many=True)
    by_model = SpendRowSerializer(many=True)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())
    token = serializers.CharField(allow_null=True, help_text="The token's name, if one is used.")


# The largest id a filter takes: the range of the databases' 64-bit integer keys.
ID_MAX = 2**63 - 1
# Versions are PositiveIntegerField: 32 bits on PostgreSQL.
VERSION_MAX = 2**31 - 1


class JobFilterSerializer(serializers.Serializer):
    """The board's filters."""

    q = serializers.CharField(required=False, help_text="Text in the title or description.")
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    priority = serializers.IntegerField(
        min_value=PRIORITY_HIGHEST, max_value=PRIORITY_LOWEST, required=False
    )
    submitter = serializers.CharField(required=False, help_text="A username.")
    tag = serializers.CharField(
        required=False, max_length=tags.TAG_CHARS, help_text="Jobs carrying this tag."
    )

    def validate_tag(self, value: str) -> str:
        return value.strip().lower()


class SpendQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Default: 24 hours before until.")
    until = serializers.DateTimeField(required=False, help_text="Default: now.")

    def validate(self, attrs: dict) -> dict:
        if "since" in attrs and "until" in attrs and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"since": "since must be before until."})
        return attrs


class DiffQuerySerializer(serializers.Serializer):
    def get_fields(self) -> dict:
        # `from` is a Python keyword: the field is declared here rather than as an attribute.
        return {
            "from": serializers.IntegerField(
                min_value=0,
                max_value=VERSION_MAX,
                required=False,
                help_text="Default: the version before `to`; 0 is the empty state.",
            ),
            "to": serializers.IntegerField(
                min_value=0,
                max_value=VERSION_MAX,
                required=False,
                help_text="Default: the latest version.",
            ),
        }
