"""Steps awaiting an operator's approval, and the decisions on them (agents.approvals)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import approvals
from agents.models import Approval, SubtaskStatus

from .. import permissions as perm
from ..errors import Conflict, InvalidQuery, get_or_404
from ..pagination import NewestFirst
from ..parsers import parsed
from ..serializers import ID_MAX

# What would be sent is a model call's messages: readable by whoever reads call traces.
READ = (perm.VIEW_JOB, perm.VIEW_SUBTASK, perm.VIEW_CALL)


class ApprovalSerializer(serializers.ModelSerializer):
    subtask_key = serializers.CharField(source="subtask.key", read_only=True)
    tool = serializers.SerializerMethodField(help_text="The tool's name, for a tool call.")
    proposed = serializers.JSONField(
        read_only=True,
        help_text="What would be sent: the model call's messages, or the tool's arguments.",
    )
    edited = serializers.JSONField(read_only=True, allow_null=True)
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    pending = serializers.SerializerMethodField(
        help_text="Not decided yet, and its subtask awaits it: it can be decided now."
    )

    class Meta:
        model = Approval
        fields = [
            "id",
            "job",
            "subtask",
            "subtask_key",
            "tool_call",
            "tool",
            "why",
            "proposed",
            "pending",
            "decision",
            "edited",
            "feedback",
            "decided_by",
            "decided_at",
            "timed_out",
            "expires_at",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_tool(self, approval: Approval) -> str | None:
        return approval.tool_call.name if approval.tool_call_id else None

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_pending(self, approval: Approval) -> bool:
        return approval.pending and approval.subtask.status == SubtaskStatus.AWAITING_APPROVAL


class ApprovalFilterSerializer(serializers.Serializer):
    pending = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: only those that can be decided now; false: only decided ones.",
    )
    job = serializers.IntegerField(
        required=False, min_value=1, max_value=ID_MAX, help_text="A job's id."
    )


class DecisionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(approvals.ACTIONS))
    feedback = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=approvals.FEEDBACK_CHARS,
        help_text="Why: required to reject; it goes back to the agent.",
    )
    content = serializers.CharField(
        required=False,
        help_text="To edit a model call: the new text of its last user message.",
    )
    messages = serializers.JSONField(
        required=False,
        help_text="To edit a model call: all the messages to send instead (or `content`).",
    )
    arguments = serializers.JSONField(
        required=False, help_text="To edit a tool call: its arguments, a JSON object."
    )


def _approvals():
    return Approval.objects.select_related("subtask", "tool_call", "decided_by")


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [ErrorDetail(message, "invalid")]})


class ApprovalList(generics.ListAPIView):
    required = {"GET": READ}
    query_problems = ("GET",)
    serializer_class = ApprovalSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        filters = ApprovalFilterSerializer(data=self.request.query_params)
        if not filters.is_valid():
            raise InvalidQuery(filters.errors)
        chosen = filters.validated_data
        rows = _approvals()
        if chosen.get("pending") is True:
            rows = rows.filter(
                decision=Approval.Decision.PENDING,
                subtask__status=SubtaskStatus.AWAITING_APPROVAL,
            )
        elif chosen.get("pending") is False:
            rows = rows.exclude(decision=Approval.Decision.PENDING)
        if chosen.get("job"):
            rows = rows.filter(job_id=chosen["job"])
        return rows

    @extend_schema(summary="List approvals, newest first", parameters=[ApprovalFilterSerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class ApprovalDetail(APIView):
    required = {"GET": READ}

    @extend_schema(
        summary="An approval: what would be sent, and any decision", responses=ApprovalSerializer
    )
    def get(self, request: Request, approval_id: int) -> Response:
        approval = get_or_404(_approvals(), "approval", pk=approval_id)
        return Response(ApprovalSerializer(approval).data)


class ApprovalDecide(APIView):
    required = {"POST": (perm.OPERATE,)}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Approve, edit and approve, or reject (with a reason) a step awaiting approval",
        request=DecisionSerializer,
        responses=ApprovalSerializer,
    )
    def post(self, request: Request, approval_id: int) -> Response:
        approval = get_or_404(_approvals(), "approval", pk=approval_id)
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        edited = None
        if data["action"] == "edit":
            edited = self._edited(approval, data)
        try:
            approvals.decide(
                approval,
                request.user,
                data["action"],
                edited=edited,
                feedback=data.get("feedback", ""),
            )
        except approvals.InvalidDecision as exc:
            field = {"edited": "arguments" if approval.tool_call_id else "content"}.get(
                exc.field, exc.field
            )
            raise _invalid(field, str(exc)) from None
        except approvals.ApprovalError as exc:
            raise Conflict(str(exc)) from None
        return Response(
            ApprovalSerializer(get_or_404(_approvals(), "approval", pk=approval_id)).data
        )

    @staticmethod
    def _edited(approval: Approval, data: dict) -> object:
        if approval.tool_call_id:
            if "arguments" not in data:
                raise _invalid("arguments", "Give the tool's new arguments to edit a tool call.")
            arguments = data["arguments"]
            if isinstance(arguments, str):  # JSON text, as a form would send it
                arguments = parsed(arguments, "arguments")
            return arguments
        if "messages" in data:
            return data["messages"]
        if "content" not in data:
            raise _invalid("content", "Give the new text (content) or messages to edit a step.")
        return approvals.with_last_user_text(approval.proposed, data["content"])
