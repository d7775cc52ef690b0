"""API: experiments (start, list, read with their summary, cancel, their cases, export,
compare two) and a job's scores (read, and a person's 1–5 rating).

Reads need the evaluation pages' permissions (agents.roles.READ_PERMISSIONS); each write
names its own, and the action it calls checks it again.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import NoReverseMatch, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import experiment_reports, experiments
from agents.actions import experiments as actions
from agents.actions import scores as score_actions
from agents.experiment_forms import ExperimentForm
from agents.models import (
    Experiment,
    ExperimentCase,
    Job,
    Score,
)
from agents.roles import READ_PERMISSIONS

from ..errors import Conflict, InvalidQuery, get_or_404
from ..forms import checked, form_data
from ..pagination import Cursor, NewestFirst

READ = READ_PERMISSIONS["evaluation"]
START = ("agents.add_experiment",)
CHANGE = ("agents.change_experiment",)
RATE = ("agents.add_score",)
CSV = "text/csv"
NDJSON = "application/x-ndjson"
NOT_STARTED = "not started"


class ByPosition(Cursor):
    ordering = ("position",)


def _page_url(request: Request, experiment: Experiment) -> str | None:
    try:
        return request.build_absolute_uri(experiment.get_absolute_url())
    except NoReverseMatch:  # a deployment without the pages
        return None


class ExperimentSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    scorers = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    agent_versions = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="The versions chosen per agent ({slug: number}); others ran their current.",
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    url = serializers.SerializerMethodField(help_text="Its page.")

    class Meta:
        model = Experiment
        fields = [
            "id",
            "name",
            "dataset",
            "dataset_name",
            "status",
            "status_reason",
            "agent_versions",
            "scorers",
            "budget_tokens",
            "budget_cost",
            "concurrency",
            "priority",
            "created_by",
            "created_at",
            "finished_at",
            "url",
        ]
        read_only_fields = fields

    def get_url(self, experiment: Experiment) -> str | None:
        request = self.context.get("request")
        return _page_url(request, experiment) if request else None


class ScorerSummarySerializer(serializers.Serializer):
    scorer = serializers.CharField(
        allow_null=True, help_text="The scorer's slug; null for people's ratings."
    )
    name = serializers.CharField()
    n = serializers.IntegerField(help_text="Cases it scored.")
    mean = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="95 % interval of the mean.")
    ci_high = serializers.FloatField(allow_null=True)
    pass_rate = serializers.FloatField(allow_null=True, help_text="Share at or above threshold.")
    threshold = serializers.FloatField()


class FailureSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    title = serializers.CharField()
    error = serializers.CharField()


class SummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Cases whose job ended.")
    running = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Cases whose job failed or was cancelled.")
    scored = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    latency_p50 = serializers.FloatField(allow_null=True, help_text="Seconds, completed jobs.")
    latency_p95 = serializers.FloatField(allow_null=True)
    scorers = ScorerSummarySerializer(many=True)
    failures = FailureSerializer(many=True)


class ExperimentDetailSerializer(ExperimentSerializer):
    summary = SummarySerializer(read_only=True)

    class Meta(ExperimentSerializer.Meta):
        fields = [*ExperimentSerializer.Meta.fields, "summary"]
        read_only_fields = fields


class ExperimentCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(help_text="The dataset's slug.")
    name = serializers.CharField(required=False, allow_blank=True)
    scorers = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        max_length=50,
        help_text="Scorers' slugs; none: every enabled scorer.",
    )
    agent_versions = serializers.DictField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text='Versions chosen per agent, {"reviewer": 2}; others run their current.',
    )
    budget_tokens = serializers.IntegerField(required=False, allow_null=True)
    budget_cost = serializers.DecimalField(
        max_digits=12, decimal_places=4, required=False, allow_null=True
    )
    concurrency = serializers.IntegerField(required=False, help_text="Cases at once, 1–50.")

    def validate_agent_versions(self, value: dict) -> dict:
        if len(value) > 100:
            raise serializers.ValidationError("Choose at most 100 agents' versions.")
        return value


class ScoreBriefSerializer(serializers.Serializer):
    value = serializers.FloatField()
    passed = serializers.BooleanField(allow_null=True)
    reason = serializers.CharField()
    source = serializers.CharField()


class CaseSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    expected = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    job = serializers.IntegerField(allow_null=True, source="job_id")
    status = serializers.CharField(help_text=f"The job's status, or `{NOT_STARTED}`.")
    output = serializers.CharField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=6)
    latency_s = serializers.FloatField(allow_null=True)
    scored_at = serializers.DateTimeField(allow_null=True)
    being_scored = serializers.BooleanField()
    scoring_error = serializers.CharField()
    scores = serializers.DictField(child=ScoreBriefSerializer(), help_text="By scorer name.")


class ComparedScorerSerializer(serializers.Serializer):
    name = serializers.CharField()
    wins = serializers.IntegerField(help_text="Cases B scored higher than A.")
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    mean_a = serializers.FloatField(allow_null=True)
    mean_b = serializers.FloatField(allow_null=True)
    diff = serializers.FloatField(allow_null=True, help_text="mean B − mean A.")
    diff_low = serializers.FloatField(allow_null=True, help_text="95 % interval.")
    diff_high = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="The interval leaves out zero.")


class ComparedCaseSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    title = serializers.CharField()
    job_a = serializers.IntegerField(allow_null=True)
    job_b = serializers.IntegerField(allow_null=True)
    scores_a = serializers.DictField(child=serializers.FloatField())
    scores_b = serializers.DictField(child=serializers.FloatField())


class VersionChangeSerializer(serializers.Serializer):
    agent = serializers.CharField()
    a = serializers.IntegerField(allow_null=True)
    b = serializers.IntegerField(allow_null=True)


class ComparisonSerializer(serializers.Serializer):
    a = ExperimentSerializer()
    b = ExperimentSerializer()
    scorers = ComparedScorerSerializer(many=True)
    cases = ComparedCaseSerializer(many=True)
    versions = VersionChangeSerializer(many=True, help_text="Agent versions that differ.")


class ScoreSerializer(serializers.ModelSerializer):
    scorer = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    given_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Score
        fields = [
            "id",
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
        ]
        read_only_fields = fields


class RatingSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, help_text="1 bad … 5 excellent.")
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=score_actions.COMMENT_CHARS
    )


class ExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "jsonl"], default="csv")


def _experiments():
    return Experiment.objects.select_related("dataset", "created_by").prefetch_related("scorers")


def _experiment(experiment_id: int) -> Experiment:
    return get_or_404(_experiments(), "experiment", pk=experiment_id)


def _summary(experiment: Experiment) -> dict:
    found = experiment_reports.summary(experiment)
    return {
        **found,
        "scorers": [
            {**row, "scorer": row["scorer"].slug if row["scorer"] else None}
            for row in found["scorers"]
        ],
        "failures": [
            {"position": f["case"].position, "title": f["case"].title, "error": f["error"]}
            for f in found["failures"]
        ],
    }


def _detail(request: Request, experiment_id: int, code: int = status.HTTP_200_OK) -> Response:
    experiment = _experiment(experiment_id)
    experiment.summary = _summary(experiment)
    body = ExperimentDetailSerializer(experiment, context={"request": request}).data
    return Response(body, status=code)


class ExperimentList(generics.ListAPIView):
    required = {"GET": READ, "POST": START}
    serializer_class = ExperimentSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return _experiments()

    @extend_schema(summary="List experiments, newest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Run a dataset against the agents' current versions or chosen ones",
        request=ExperimentCreateSerializer,
        responses={201: ExperimentDetailSerializer},
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        body = ExperimentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        pins = values.pop("agent_versions", {})
        values["versions"] = experiments.format_versions(pins)
        try:
            fields = checked(ExperimentForm(data=_form_values(values)))
        except ValidationError as invalid:  # the body names the versions agent_versions
            detail = dict(invalid.detail)
            if "versions" in detail:
                detail["agent_versions"] = detail.pop("versions")
            raise ValidationError(detail) from None
        try:
            experiment = actions.start_experiment(user=request.user, **fields)
        except actions.ExperimentRefused as refused:
            raise Conflict(str(refused)) from None
        response = _detail(request, experiment.pk, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(
            f"{request.path.rstrip('/')}/{experiment.pk}"
        )
        return response


def _form_values(values: dict) -> dict:
    """JSON as the form reads it: null is an empty field, the scorers a list of slugs."""
    return {**form_data(values), "scorers": [str(s) for s in values.get("scorers", [])]}


class ExperimentDetail(APIView):
    required = {"GET": READ}

    @extend_schema(
        summary="An experiment with its summary: progress, spend, latency, each scorer's "
        "mean with its 95 % interval and pass rate, and its failures",
        responses=ExperimentDetailSerializer,
    )
    def get(self, request: Request, experiment_id: int) -> Response:
        return _detail(request, experiment_id)


class ExperimentCancel(APIView):
    required = {"POST": CHANGE}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Cancel a running experiment and its running cases",
        request=None,
        responses=ExperimentDetailSerializer,
    )
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = _experiment(experiment_id)
        if not actions.cancel_experiment(experiment, user=request.user):
            raise Conflict(f"Experiment #{experiment.pk} is {experiment.status}: it has ended.")
        return _detail(request, experiment_id)


def _case_row(case: ExperimentCase, scores: dict) -> dict:
    job = case.job
    given = scores.get(case.job_id, {})
    return {
        "position": case.position,
        "title": case.title,
        "description": case.description,
        "expected": case.expected,
        "tags": case.tags,
        "job_id": case.job_id,
        "status": job.status if job else NOT_STARTED,
        "output": job.result if job else "",
        "tokens": job.total_tokens if job else 0,
        "cost": job.total_cost if job else 0,
        "latency_s": experiment_reports.elapsed(job),
        "scored_at": case.scored_at,
        "being_scored": case.being_scored,
        "scoring_error": case.scoring_error,
        "scores": {
            name: {
                "value": s.value,
                "passed": s.passed,
                "reason": s.reason,
                "source": s.source,
            }
            for name, s in given.items()
        },
    }


class ExperimentCases(generics.ListAPIView):
    required = {"GET": READ}
    serializer_class = CaseSerializer
    pagination_class = ByPosition

    def get_queryset(self):
        cases = ExperimentCase.objects.filter(experiment_id=self.kwargs.get("experiment_id"))
        return cases.select_related("job")

    @extend_schema(summary="An experiment's cases in order, each with its job's output and scores")
    def get(self, request: Request, experiment_id: int) -> Response:
        experiment = _experiment(experiment_id)
        page = experiment_reports.unmarked(self.paginate_queryset(self.get_queryset()))
        scores = experiment_reports.scores_of(page, list(experiment.scorers.all()))
        rows = [_case_row(case, scores) for case in page]
        return self.get_paginated_response(CaseSerializer(rows, many=True).data)


class ExperimentExport(APIView):
    required = {"GET": READ}
    query_problems = ("GET",)

    @extend_schema(
        summary="An experiment's cases as CSV or JSON Lines: output, spend, latency, and "
        "each scorer's score and reason",
        parameters=[ExportQuerySerializer],
        responses={
            (200, CSV): OpenApiResponse(OpenApiTypes.STR),
            (200, NDJSON): OpenApiResponse(OpenApiTypes.STR),
        },
    )
    def get(self, request: Request, experiment_id: int) -> HttpResponse:
        query = ExportQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise InvalidQuery(query.errors)
        experiment = _experiment(experiment_id)
        rows = experiment_reports.export_rows(experiment)
        if query.validated_data["format"] == "jsonl":
            body, media, suffix = experiment_reports.export_jsonl(rows), NDJSON, "jsonl"
        else:
            body, media, suffix = experiment_reports.export_csv(rows), CSV, "csv"
        response = HttpResponse(body, content_type=f"{media}; charset=utf-8")
        name = f"experiment-{experiment.pk}.{suffix}"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ExperimentCompare(APIView):
    required = {"GET": READ}

    @extend_schema(
        summary="Compare experiment B with A, case by case: per scorer B's wins, losses and "
        "ties, the difference of the means with its 95 % interval, and the agent versions "
        "that differ",
        responses=ComparisonSerializer,
    )
    def get(self, request: Request, experiment_id: int, other: int) -> Response:
        a, b = _experiment(experiment_id), _experiment(other)
        found = experiment_reports.compare(a, b)
        body = {
            "a": a,
            "b": b,
            "scorers": found["scorers"],
            "versions": found["versions"],
            "cases": [
                {
                    "position": row["position"],
                    "title": row["title"],
                    "job_a": row["a"].job_id if row["a"] else None,
                    "job_b": row["b"].job_id if row["b"] else None,
                    "scores_a": row["scores_a"],
                    "scores_b": row["scores_b"],
                }
                for row in found["cases"]
            ],
        }
        return Response(ComparisonSerializer(body, context={"request": request}).data)


class JobScores(APIView):
    required = {"GET": READ, "POST": RATE}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="A job's scores: its scorers', online ones and people's ratings",
        responses=ScoreSerializer(many=True),
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = get_or_404(Job.objects.only("pk"), "job", pk=job_id)
        scores = Score.objects.filter(job=job).select_related("scorer", "given_by")
        return Response(ScoreSerializer(scores, many=True).data)

    @extend_schema(
        summary="Rate a job's output 1–5 with a comment (replaces your earlier rating)",
        request=RatingSerializer,
        responses={201: ScoreSerializer},
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = get_or_404(Job.objects, "job", pk=job_id)
        body = RatingSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            score = score_actions.rate(
                job,
                request.user,
                body.validated_data["rating"],
                body.validated_data.get("comment", ""),
            )
        except score_actions.RatingRefused as refused:
            raise Conflict(str(refused)) from None
        score = Score.objects.select_related("scorer", "given_by").get(pk=score.pk)
        return Response(ScoreSerializer(score).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("experiments", ExperimentList.as_view(), name="api-experiments"),
    path("experiments/<int:experiment_id>", ExperimentDetail.as_view(), name="api-experiment"),
    path(
        "experiments/<int:experiment_id>/cancel",
        ExperimentCancel.as_view(),
        name="api-experiment-cancel",
    ),
    path(
        "experiments/<int:experiment_id>/cases",
        ExperimentCases.as_view(),
        name="api-experiment-cases",
    ),
    path(
        "experiments/<int:experiment_id>/export",
        ExperimentExport.as_view(),
        name="api-experiment-export",
    ),
    path(
        "experiments/<int:experiment_id>/compare/<int:other>",
        ExperimentCompare.as_view(),
        name="api-experiment-compare",
    ),
    path("jobs/<int:job_id>/scores", JobScores.as_view(), name="api-job-scores"),
]
