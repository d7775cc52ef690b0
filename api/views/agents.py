"""Agents with their live metrics and their versions; agent managers register, edit, enable
and disable them, and restore a version."""

from __future__ import annotations

from django.forms import model_to_dict
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions, versions
from agents.forms import AgentForm
from agents.models import Agent, AgentVersion
from agents.queries import agents_with_metrics

from .. import permissions as perm
from ..errors import get_or_404
from ..forms import checked, form_data
from ..pagination import NewestNumberFirst
from ..serializers import (
    AGENT_FIELDS,
    AgentSerializer,
    AgentVersionDiffSerializer,
    AgentVersionSerializer,
    AgentWriteSerializer,
)


def _agent(slug: str) -> Agent:
    found = agents_with_metrics(Agent.objects.filter(slug=slug))
    if not found:
        raise NotFound(f"No agent {slug}.")
    return found[0]


class AgentList(APIView):
    required = {"GET": (perm.VIEW_AGENT,), "POST": (perm.ADD_AGENT,)}

    @extend_schema(summary="Agents with their live metrics", responses=AgentSerializer(many=True))
    def get(self, request: Request) -> Response:
        agents = agents_with_metrics(Agent.objects.all())
        return Response(AgentSerializer(agents, many=True).data)

    @extend_schema(
        summary="Register an agent",
        request=AgentWriteSerializer,
        responses={201: AgentSerializer},
    )
    def post(self, request: Request) -> Response:
        body = AgentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        body.validated_data.pop("version_note", None)  # a new agent's version 1 has none
        # What the body leaves out takes the model's defaults, as the page's form shows them.
        values = {**model_to_dict(Agent(), fields=AGENT_FIELDS), **body.validated_data}
        form = AgentForm(data=form_data(_as_form_values(values)))
        agent = actions.register_agent(checked(form), user=request.user)
        data = AgentSerializer(_agent(agent.slug)).data
        return Response(data, status=status.HTTP_201_CREATED)


class AgentDetail(APIView):
    required = {"GET": (perm.VIEW_AGENT,), "PATCH": (perm.CHANGE_AGENT,)}

    @extend_schema(summary="An agent with its live metrics", responses=AgentSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(AgentSerializer(_agent(slug)).data)

    @extend_schema(
        summary="Edit an agent (omitted fields stay)",
        request=AgentWriteSerializer,
        responses=AgentSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        agent = _agent(slug)
        body = AgentWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        note = body.validated_data.pop("version_note", "")
        values = {**model_to_dict(agent, fields=AGENT_FIELDS), **body.validated_data}
        form = AgentForm(data=form_data(_as_form_values(values)), instance=agent)
        agent = actions.edit_agent(agent, checked(form), user=request.user, note=note)
        return Response(AgentSerializer(_agent(agent.slug)).data)


class AgentSwitch(APIView):
    required = {"POST": (perm.CHANGE_AGENT,)}
    enabled: bool

    def post(self, request: Request, slug: str) -> Response:
        agent = _agent(slug)
        actions.set_agent_enabled(agent, self.enabled, user=request.user)
        return Response(AgentSerializer(_agent(slug)).data)


@extend_schema(summary="Enable an agent", request=None, responses=AgentSerializer)
class AgentEnable(AgentSwitch):
    enabled = True


@extend_schema(summary="Disable an agent", request=None, responses=AgentSerializer)
class AgentDisable(AgentSwitch):
    enabled = False


def _versions(slug: str):
    agent = get_or_404(Agent.objects.only("pk"), "agent", slug=slug)
    return AgentVersion.objects.filter(agent_id=agent.pk).select_related("agent", "author")


def _version(slug: str, number: int) -> AgentVersion:
    return get_or_404(_versions(slug), "version", number=number)


class AgentVersions(generics.ListAPIView):
    required = {"GET": (perm.VIEW_AGENT,)}
    serializer_class = AgentVersionSerializer
    pagination_class = NewestNumberFirst

    def get_queryset(self):
        return _versions(self.kwargs["slug"])

    @extend_schema(summary="An agent's versions, newest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class AgentVersionDetail(APIView):
    required = {"GET": (perm.VIEW_AGENT,)}

    @extend_schema(summary="One version of an agent", responses=AgentVersionSerializer)
    def get(self, request: Request, slug: str, number: int) -> Response:
        return Response(AgentVersionSerializer(_version(slug, number)).data)


class AgentVersionDiff(APIView):
    required = {"GET": (perm.VIEW_AGENT,)}

    @extend_schema(
        summary="What differs between two versions of an agent",
        responses=AgentVersionDiffSerializer,
    )
    def get(self, request: Request, slug: str, number: int, other: int) -> Response:
        a, b = _version(slug, number), _version(slug, other)
        changes = []
        for field, old, new in versions.diff(a, b):
            change = {"field": field, "old": old, "new": new}
            if field == "system_prompt":
                change["lines"] = versions.text_diff(old, new)
            changes.append(change)
        body = {"agent": slug, "from_version": number, "to_version": other, "changes": changes}
        return Response(AgentVersionDiffSerializer(body).data)


class AgentVersionRestore(APIView):
    required = {"POST": (perm.CHANGE_AGENT,)}

    @extend_schema(
        summary="Restore a version: a new version equal to it becomes current",
        request=None,
        responses={201: AgentVersionSerializer},
    )
    def post(self, request: Request, slug: str, number: int) -> Response:
        old = _version(slug, number)
        try:
            made = actions.restore_agent_version(old.agent, number, user=request.user)
        except (Agent.DoesNotExist, AgentVersion.DoesNotExist):  # deleted meanwhile
            raise NotFound(f"No version {number}.") from None
        made = _version(slug, made.number)
        return Response(AgentVersionSerializer(made).data, status=status.HTTP_201_CREATED)


def _as_form_values(values: dict) -> dict:
    """The form reads specialties comma-separated."""
    return {**values, "specialties": ", ".join(values.get("specialties", []))}
