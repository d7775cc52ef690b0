"""Scorers: every reader lists and reads them; Operators create and edit them. The body's
`config` holds the settings of the scorer's kind; the scorer pages' form (agents.scorer_forms)
checks it, as it checks the pages'."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.actions.scorers import ScorerNameTaken, create_scorer, edit_scorer
from agents.models import Scorer
from agents.scorer_forms import CONFIG_FIELDS, ScorerForm

from ..errors import Conflict, get_or_404
from ..forms import form_data

VIEW_SCORER = "agents.view_scorer"
ADD_SCORER = "agents.add_scorer"
CHANGE_SCORER = "agents.change_scorer"
FIELDS = ["name", "kind", "threshold", "online_type", "sample_rate", "enabled"]
CONFIG_HELP = (
    'The settings of the kind: judge {"rubric", "model"}; exact {"case_sensitive"}; contains '
    '{"text", "case_sensitive"}; regex {"pattern"}; json_schema {"schema"}; length {"min", '
    '"max"}. Others are ignored.'
)


class ScorerSerializer(serializers.ModelSerializer):
    config = serializers.JSONField(help_text=CONFIG_HELP)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Scorer
        fields = ["id", "slug", *FIELDS, "config", "created_by", "created_at"]
        read_only_fields = fields


class ScorerWriteSerializer(serializers.ModelSerializer):
    """What an Operator sets; checked again by the scorer pages' form."""

    config = serializers.DictField(required=False, help_text=CONFIG_HELP)

    class Meta:
        model = Scorer
        fields = [*FIELDS, "config"]
        # The form checks the name is free, and says so as the pages do.
        extra_kwargs = {"name": {"validators": []}}


def _form(values: dict, config: dict, instance: Scorer | None = None) -> ScorerForm:
    data = form_data({name: values.get(name) for name in FIELDS})
    for setting, field in CONFIG_FIELDS.items():
        value = config.get(setting)
        if field == "schema":
            data[field] = value  # a JSON value, as the form's JSON field takes it
        elif field == "case_sensitive":
            data[field] = value is True
        else:
            data[field] = "" if value is None else value
    return ScorerForm(data=data, instance=instance)


def _fields(form: ScorerForm) -> dict:
    """The form's scorer fields, or a 422 naming each error where the body put it."""
    if form.is_valid():
        return form.scorer_fields()
    settings = {field: setting for setting, field in CONFIG_FIELDS.items()}
    errors: dict = {}
    for name, field_errors in form.errors.as_data().items():
        details = [
            ErrorDetail(message, error.code or "invalid")
            for error in field_errors
            for message in error
        ]
        if name in settings:
            errors.setdefault("config", {})[settings[name]] = details
        else:
            errors[name] = details
    raise ValidationError(errors)


def _scorer(slug: str) -> Scorer:
    return get_or_404(Scorer.objects.select_related("created_by"), "scorer", slug=slug)


class ScorerList(APIView):
    required = {"GET": (VIEW_SCORER,), "POST": (ADD_SCORER,)}

    @extend_schema(summary="Scorers", responses=ScorerSerializer(many=True))
    def get(self, request: Request) -> Response:
        scorers = Scorer.objects.select_related("created_by")
        return Response(ScorerSerializer(scorers, many=True).data)

    @extend_schema(
        summary="Create a scorer",
        request=ScorerWriteSerializer,
        responses={201: ScorerSerializer},
    )
    def post(self, request: Request) -> Response:
        body = ScorerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        defaults = {name: Scorer._meta.get_field(name).get_default() for name in FIELDS}
        values = {**defaults, **body.validated_data}
        form = _form(values, values.get("config") or {})
        try:
            scorer = create_scorer(_fields(form), user=request.user)
        except ScorerNameTaken as exc:
            raise Conflict(str(exc)) from None
        data = ScorerSerializer(_scorer(scorer.slug)).data
        return Response(data, status=status.HTTP_201_CREATED)


class ScorerDetail(APIView):
    required = {"GET": (VIEW_SCORER,), "PATCH": (CHANGE_SCORER,)}

    @extend_schema(summary="A scorer", responses=ScorerSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(ScorerSerializer(_scorer(slug)).data)

    @extend_schema(
        summary="Edit a scorer (omitted fields stay; config's settings are merged)",
        request=ScorerWriteSerializer,
        responses=ScorerSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        scorer = _scorer(slug)
        body = ScorerWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        given = dict(body.validated_data)
        config = given.pop("config", None) or {}
        values = {**{name: getattr(scorer, name) for name in FIELDS}, **given}
        # A new kind reads only the settings given now; the same kind keeps the others.
        kept = scorer.config if values["kind"] == scorer.kind else {}
        form = _form(values, {**(kept or {}), **config}, instance=scorer)
        try:
            edit_scorer(scorer, _fields(form), user=request.user)
        except ScorerNameTaken as exc:
            raise Conflict(str(exc)) from None
        return Response(ScorerSerializer(_scorer(slug)).data)


urlpatterns: list = [
    path("scorers", ScorerList.as_view(), name="api-scorers"),
    path("scorers/<slug:slug>", ScorerDetail.as_view(), name="api-scorer"),
]
