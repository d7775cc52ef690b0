"""Agents with their live metrics; agent managers register, edit, enable and disable them."""

from __future__ import annotations

from django.forms import model_to_dict
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions
from agents.forms import AgentForm
from agents.models import Agent
from agents.queries import agents_with_metrics

from .. import permissions as perm
from ..forms import checked, form_data
from ..serializers import AGENT_FIELDS, AgentSerializer, AgentWriteSerializer


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
        values = {**model_to_dict(agent, fields=AGENT_FIELDS), **body.validated_data}
        form = AgentForm(data=form_data(_as_form_values(values)), instance=agent)
        agent = actions.edit_agent(agent, checked(form), user=request.user)
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


def _as_form_values(values: dict) -> dict:
    """The form reads specialties comma-separated."""
    return {**values, "specialties": ", ".join(values.get("specialties", []))}
