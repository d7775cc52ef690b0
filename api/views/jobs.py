"""Jobs and their subtasks: the board, a job's page, and the operator's controls."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import actions, idempotency
from agents.forms import JobForm, NewSubtaskForm, SubtaskForm
from agents.models import Job, Subtask
from agents.queries import board_jobs, job_subtasks

from .. import permissions as perm
from ..errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidQuery,
    SubmissionLimitReached,
    get_or_404,
)
from ..forms import checked, form_data
from ..pagination import NewestFirst
from ..serializers import (
    JobCreateSerializer,
    JobDetailSerializer,
    JobFilterSerializer,
    JobSerializer,
    SubtaskAddSerializer,
    SubtaskEditSerializer,
    SubtaskSerializer,
)

CARD_UNUSED = ("description", "result", "error")
KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, as Stripe-style clients send (a UUID, a hash, a job name and a date...).
KEY_PATTERN = r"^[!-~]{1,255}$"
IDEMPOTENCY = [
    OpenApiParameter(
        KEY_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        pattern=KEY_PATTERN,
        description="Send the same key again (a retry after a timeout) and the same body "
        "within 24 hours: the answer is the job the first request made, with 200 and "
        f"`{REPLAYED_HEADER}: true`, and no second job. The same key with another body is "
        "a 422. Keys are per user; 1 to 255 visible ASCII characters, e.g. a UUID.",
    ),
    OpenApiParameter(
        REPLAYED_HEADER,
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        enum=["true"],
        response=[200],
        description="The job was made by an earlier request with the same Idempotency-Key.",
    ),
]


def _job(job_id: int) -> Job:
    """A job with its progress and its plan, as the job page reads them."""
    job = get_or_404(board_jobs(), "job", pk=job_id)
    # The page shows the start of each result; the API gives the whole of it.
    job.plan = list(job_subtasks(job.pk).defer(None))
    return job


def _detail(request: Request, job_id: int, code: int = status.HTTP_200_OK) -> Response:
    job = _job(job_id)
    return Response(JobDetailSerializer(job, context={"request": request}).data, status=code)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key is not None and not re.fullmatch(KEY_PATTERN, key):
        raise InvalidQuery(
            {KEY_HEADER: ["Give 1 to 255 visible ASCII characters (no spaces), e.g. a UUID."]}
        )
    return key


def submitted(request: Request, create: Callable[[], Job]) -> Response:
    """The answer to a submission: 201 with the job `create()` makes, or, for a request
    repeated with its Idempotency-Key, 200 with the job the first one made."""

    def create_within_limit() -> Job:
        try:
            return create()
        except actions.SubmissionLimit as limit:
            raise SubmissionLimitReached(str(limit), wait=limit.retry_after) from None

    key = _idempotency_key(request)
    if key is None:
        job, replayed = create_within_limit(), False
    else:
        request_print = idempotency.fingerprint(request.method, request.path, request.data)
        try:
            job, replayed = idempotency.submit_once(
                request.user, key, request_print, create_within_limit
            )
        except idempotency.KeyReused as exc:
            raise IdempotencyKeyReused(str(exc)) from None
    response = _detail(request, job.pk, status.HTTP_200_OK if replayed else status.HTTP_201_CREATED)
    if replayed:
        response[REPLAYED_HEADER] = "true"
    response["Location"] = request.build_absolute_uri(reverse("api-job", args=[job.pk]))
    return response


def _subtask(subtask_id: int) -> Subtask:
    subtasks = Subtask.objects.select_related("agent", "job").prefetch_related("depends_on")
    return get_or_404(subtasks, "subtask", pk=subtask_id)


class JobList(generics.ListCreateAPIView):
    required = {"GET": (perm.VIEW_JOB,), "POST": (perm.SUBMIT,)}
    problems = {"POST": (429,)}
    query_problems = ("GET",)
    serializer_class = JobSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        filters = JobFilterSerializer(data=self.request.query_params)
        if not filters.is_valid():
            raise InvalidQuery(filters.errors)
        return board_jobs().defer(*CARD_UNUSED).filtered(**filters.validated_data)

    @extend_schema(
        summary="List jobs, newest first",
        parameters=[JobFilterSerializer],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Submit a job",
        request=JobCreateSerializer,
        parameters=IDEMPOTENCY,
        responses={201: JobDetailSerializer, 200: JobDetailSerializer},
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        body = JobCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = {"priority": Job._meta.get_field("priority").default, **body.validated_data}
        fields = checked(JobForm(data=form_data(values)))
        return submitted(request, lambda: actions.submit_job(**fields, user=request.user))


class JobDetail(APIView):
    required = {"GET": (perm.VIEW_JOB, perm.VIEW_SUBTASK)}

    @extend_schema(summary="A job with its plan", responses=JobDetailSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        return _detail(request, job_id)


class JobControl(APIView):
    """An operator's action on a job: 200 with the job, or 409 if it does not apply now."""

    required = {"POST": (perm.OPERATE,)}
    problems = {"POST": (409,)}

    def act(self, job: Job, user) -> bool:
        raise NotImplementedError

    def refusal(self, job: Job) -> str:
        raise NotImplementedError

    def post(self, request: Request, job_id: int) -> Response:
        job = get_or_404(Job.objects, "job", pk=job_id)
        if not self.act(job, request.user):
            job.refresh_from_db(fields=["status"])
            raise Conflict(self.refusal(job))
        return _detail(request, job_id)


@extend_schema(summary="Cancel a job", request=None, responses=JobDetailSerializer)
class JobCancel(JobControl):
    def act(self, job: Job, user) -> bool:
        return actions.cancel_job(job, user=user)

    def refusal(self, job: Job) -> str:
        return f"Job #{job.pk} is {job.status}: there is nothing to cancel."


@extend_schema(
    summary="Resume a failed or cancelled job", request=None, responses=JobDetailSerializer
)
class JobRetry(JobControl):
    def act(self, job: Job, user) -> bool:
        return actions.retry_job(job, user=user)

    def refusal(self, job: Job) -> str:
        return f"Job #{job.pk} is {job.status}: only a failed or cancelled job resumes."


@extend_schema(summary="Approve a reviewed plan", request=None, responses=JobDetailSerializer)
class JobApprove(JobControl):
    def act(self, job: Job, user) -> bool:
        return actions.approve_plan(job, user=user)

    def refusal(self, job: Job) -> str:
        if job.awaiting_review:
            return f"Job #{job.pk}'s plan has no subtasks: add one before approving."
        return f"Job #{job.pk} is {job.status}: its plan is not awaiting review."


def _under_review(job: Job) -> None:
    if not job.awaiting_review:
        raise Conflict(f"Job #{job.pk} is {job.status}: its plan can no longer change.")


class SubtaskAdd(APIView):
    required = {"POST": (perm.OPERATE,)}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Add a subtask to a plan under review",
        request=SubtaskAddSerializer,
        responses={201: SubtaskSerializer},
    )
    def post(self, request: Request, job_id: int) -> Response:
        job = get_or_404(Job.objects, "job", pk=job_id)
        body = SubtaskAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _under_review(job)
        fields = checked(NewSubtaskForm(data=form_data(body.validated_data), job=job))
        sub = actions.add_subtask(job, **fields, user=request.user)
        if sub is None:  # approved or cancelled meanwhile, or the plan filled up
            job.refresh_from_db()
            _under_review(job)
            raise Conflict(f"Job #{job.pk}'s plan is full.")
        return Response(SubtaskSerializer(_subtask(sub.pk)).data, status=status.HTTP_201_CREATED)


class SubtaskDetail(APIView):
    required = {
        "GET": (perm.VIEW_SUBTASK,),
        "PATCH": (perm.OPERATE,),
        "DELETE": (perm.OPERATE,),
    }
    problems = {"PATCH": (409,), "DELETE": (409,)}

    @extend_schema(summary="A subtask", responses=SubtaskSerializer)
    def get(self, request: Request, subtask_id: int) -> Response:
        return Response(SubtaskSerializer(_subtask(subtask_id)).data)

    @extend_schema(
        summary="Edit a subtask of a plan under review",
        request=SubtaskEditSerializer,
        responses=SubtaskSerializer,
    )
    def patch(self, request: Request, subtask_id: int) -> Response:
        sub = _subtask(subtask_id)
        body = SubtaskEditSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _under_review(sub.job)
        current = {"description": sub.description, "type": sub.type, "agent": sub.assign_hint}
        fields = checked(SubtaskForm(data=form_data({**current, **body.validated_data})))
        if not actions.edit_subtask(sub, **fields, user=request.user):
            raise Conflict(f"Job #{sub.job_id}'s plan can no longer change.")
        return Response(SubtaskSerializer(_subtask(subtask_id)).data)

    @extend_schema(summary="Delete a subtask of a plan under review", responses={204: None})
    def delete(self, request: Request, subtask_id: int) -> Response:
        sub = _subtask(subtask_id)
        _under_review(sub.job)
        if not actions.delete_subtask(sub, user=request.user):
            raise Conflict(f"Job #{sub.job_id}'s plan can no longer change.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubtaskRetry(APIView):
    required = {"POST": (perm.OPERATE,)}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Run a failed subtask again, and what failed because of it",
        request=None,
        responses=SubtaskSerializer,
    )
    def post(self, request: Request, subtask_id: int) -> Response:
        sub = _subtask(subtask_id)
        if not actions.retry_subtask(sub, user=request.user):
            raise Conflict(f"Subtask {sub.key} is {sub.status}: it cannot be retried now.")
        return Response(SubtaskSerializer(_subtask(subtask_id)).data)
