"""API: datasets and their cases: list, read, write, import and export, and adding jobs.

Reads need the evaluation pages' permissions (agents.roles.READ_PERMISSIONS); each write
names its own, and the action it calls checks it again.
"""

from __future__ import annotations

from django.db.models import Count
from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, parsers, serializers, status
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import datasets
from agents.actions import datasets as actions
from agents.dataset_forms import CaseForm, DatasetForm, newest_completed
from agents.forms import BoardFilterForm
from agents.models import (
    CASE_TAGS_MAX,
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    Case,
    Dataset,
    Job,
    JobStatus,
)
from agents.roles import READ_PERMISSIONS

from ..errors import Conflict, get_or_404
from ..forms import checked, form_data
from ..pagination import InOrder
from ..parsers import BoundedJSONParser

READ = READ_PERMISSIONS["evaluation"]
NDJSON = "application/x-ndjson"
# Media types of an import's body taken as the file itself.
RAW_FORMATS = {"text/csv": "csv", NDJSON: "jsonl", "application/jsonl": "jsonl"}


def _perm(codename: str) -> tuple[str, ...]:
    return (f"agents.{codename}",)


class DatasetSerializer(serializers.ModelSerializer):
    case_count = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Dataset
        fields = ["slug", "name", "description", "case_count", "created_by", "created_at"]
        read_only_fields = fields


class DatasetWriteSerializer(serializers.Serializer):
    """The type checks; DatasetForm then applies the pages' rules."""

    name = serializers.CharField(max_length=100, trim_whitespace=False, allow_blank=True)
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, trim_whitespace=False
    )


class DatasetCaseSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    source_job = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The job the case was taken from, if any."
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "title",
            "description",
            "expected",
            "notes",
            "tags",
            "source_job",
            "created_at",
        ]
        read_only_fields = fields


class CaseWriteSerializer(serializers.Serializer):
    """The type checks; CaseForm then applies the pages' rules (tags: datasets.clean_tags)."""

    text = {"trim_whitespace": False, "allow_blank": True}
    title = serializers.CharField(max_length=200, **text)
    description = serializers.CharField(max_length=datasets.CASE_TEXT_CHARS, **text)
    expected = serializers.CharField(max_length=datasets.CASE_TEXT_CHARS, required=False, **text)
    notes = serializers.CharField(max_length=datasets.CASE_NOTES_CHARS, required=False, **text)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=datasets.TAG_CHARS),
        max_length=CASE_TAGS_MAX,
        required=False,
    )
    del text


class ImportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=datasets.FORMATS)
    data = serializers.CharField(
        trim_whitespace=False, help_text="The file's text: JSONL lines, or CSV with a header row."
    )


class ImportedSerializer(serializers.Serializer):
    imported = serializers.IntegerField(help_text="How many cases were added.")


class AddJobsSerializer(serializers.Serializer):
    """Either jobs by id, or the board's filter (its fields, at least one of them): the
    completed jobs among them are added, the newest JOBS_MAX of a filter."""

    job_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        max_length=datasets.JOBS_MAX,
        required=False,
    )
    q = serializers.CharField(required=False, help_text="Text in the title or description.")
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    priority = serializers.IntegerField(
        required=False, min_value=PRIORITY_HIGHEST, max_value=PRIORITY_LOWEST
    )
    submitter = serializers.CharField(required=False, help_text="A username.")

    def validate(self, attrs: dict) -> dict:
        filtered = any(name in attrs for name in BoardFilterForm.base_fields)
        if "job_ids" in attrs and filtered:
            raise serializers.ValidationError("Give job_ids or a filter, not both.")
        if "job_ids" not in attrs and not filtered:
            raise serializers.ValidationError("Give job_ids, or at least one filter field.")
        return attrs


class AddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    skipped = serializers.IntegerField(
        help_text="Jobs not added: not completed, in the dataset already, or not found."
    )
    more = serializers.BooleanField(
        help_text=f"More jobs matched the filter than the {datasets.JOBS_MAX} taken."
    )
    cases = DatasetCaseSerializer(many=True)


class RawCasesParser(parsers.BaseParser):
    """An import's body as the file itself (CSV or JSONL), bounded as an upload is."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> dict:
        raw = stream.read(datasets.IMPORT_MAX_BYTES + 1) if stream is not None else b""
        kind = (media_type or "").split(";")[0].strip().lower()
        return {"format": RAW_FORMATS.get(kind), "raw": raw}


class CsvParser(RawCasesParser):
    media_type = "text/csv"


class NdjsonParser(RawCasesParser):
    media_type = NDJSON


class JsonlParser(RawCasesParser):
    media_type = "application/jsonl"


def _counted():
    return Dataset.objects.annotate(case_count=Count("cases")).select_related("created_by")


def _dataset(slug: str) -> Dataset:
    return get_or_404(_counted(), "dataset", slug=slug)


def _case(slug: str, case_id: int) -> Case:
    return get_or_404(Case.objects.filter(dataset__slug=slug), "case", pk=case_id)


class DatasetList(generics.ListAPIView):
    required = {"GET": READ, "POST": _perm("add_dataset")}
    serializer_class = DatasetSerializer
    pagination_class = InOrder

    def get_queryset(self):
        return _counted()

    @extend_schema(summary="Datasets, oldest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a dataset (its slug comes from its name)",
        request=DatasetWriteSerializer,
        responses={201: DatasetSerializer},
    )
    def post(self, request: Request) -> Response:
        body = DatasetWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = checked(DatasetForm(data=form_data({"description": "", **body.validated_data})))
        dataset = actions.create_dataset(fields, user=request.user)
        data = DatasetSerializer(_dataset(dataset.slug)).data
        return Response(data, status=status.HTTP_201_CREATED)


class DatasetDetail(APIView):
    required = {
        "GET": READ,
        "PATCH": _perm("change_dataset"),
        "DELETE": _perm("delete_dataset"),
    }

    @extend_schema(summary="A dataset", responses=DatasetSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(DatasetSerializer(_dataset(slug)).data)

    @extend_schema(
        summary="Rename or describe a dataset (its slug stays)",
        request=DatasetWriteSerializer(partial=True),
        responses=DatasetSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        dataset = _dataset(slug)
        body = DatasetWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        values = {"name": dataset.name, "description": dataset.description}
        form = DatasetForm(data=form_data({**values, **body.validated_data}), instance=dataset)
        actions.edit_dataset(dataset, checked(form), user=request.user)
        return Response(DatasetSerializer(_dataset(slug)).data)

    @extend_schema(summary="Delete a dataset and its cases", responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        actions.delete_dataset(_dataset(slug), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _case_fields(values: dict) -> dict:
    """CaseForm's rules over the body's values; the tags, a list, checked on their own."""
    tags = values.pop("tags", [])
    fields = checked(CaseForm(data=form_data({"expected": "", "notes": "", **values, "tags": ""})))
    try:
        fields["tags"] = datasets.clean_tags(tags)
    except ValueError as exc:
        raise ValidationError({"tags": [ErrorDetail(str(exc), "invalid")]}) from None
    return fields


def _room(call):
    try:
        return call()
    except datasets.TooManyCases as full:
        raise Conflict(str(full)) from None


class CaseList(generics.ListAPIView):
    required = {"GET": READ, "POST": _perm("add_case")}
    problems = {"POST": (409,)}
    serializer_class = DatasetCaseSerializer
    pagination_class = InOrder

    def get_queryset(self):
        dataset = get_or_404(Dataset.objects, "dataset", slug=self.kwargs["slug"])
        return Case.objects.filter(dataset=dataset)

    @extend_schema(summary="A dataset's cases, in order")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Add a case",
        request=CaseWriteSerializer,
        responses={201: DatasetCaseSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        dataset = _dataset(slug)
        body = CaseWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = _case_fields(dict(body.validated_data))
        case = _room(lambda: actions.add_case(dataset, fields, user=request.user))
        return Response(DatasetCaseSerializer(case).data, status=status.HTTP_201_CREATED)


class CaseDetail(APIView):
    required = {"GET": READ, "PATCH": _perm("change_case"), "DELETE": _perm("delete_case")}

    @extend_schema(summary="A case", responses=DatasetCaseSerializer)
    def get(self, request: Request, slug: str, case_id: int) -> Response:
        return Response(DatasetCaseSerializer(_case(slug, case_id)).data)

    @extend_schema(
        summary="Edit a case (omitted fields stay)",
        request=CaseWriteSerializer(partial=True),
        responses=DatasetCaseSerializer,
    )
    def patch(self, request: Request, slug: str, case_id: int) -> Response:
        case = _case(slug, case_id)
        body = CaseWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        current = {name: getattr(case, name) for name in ("title", "description", "expected")}
        current |= {"notes": case.notes, "tags": case.tags}
        fields = _case_fields({**current, **body.validated_data})
        actions.edit_case(case, fields, user=request.user)
        return Response(DatasetCaseSerializer(_case(slug, case_id)).data)

    @extend_schema(summary="Delete a case", responses={204: None})
    def delete(self, request: Request, slug: str, case_id: int) -> Response:
        actions.delete_case(_case(slug, case_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _refusal(refused: datasets.ImportRefused) -> ValidationError:
    """Each bad line as an error of the body's data."""
    errors = [
        ErrorDetail(f"Line {line}: {message}" if line else message, "bad_line")
        for line, message in refused.errors
    ]
    if refused.bad_lines > len(refused.errors):
        errors.append(ErrorDetail(f"{refused.bad_lines} bad lines in all.", "bad_line"))
    return ValidationError({"data": errors})


class DatasetImport(APIView):
    required = {"POST": _perm("add_case")}
    problems = {"POST": (409,)}
    parser_classes = [BoundedJSONParser, CsvParser, NdjsonParser, JsonlParser]

    @extend_schema(
        summary="Import cases from JSONL or CSV: all of them, or none",
        description=(
            'The body is JSON `{"format": "jsonl"|"csv", "data": "…"}`, or the file '
            "itself as `text/csv`, `application/x-ndjson` or `application/jsonl` (up to "
            f"{datasets.IMPORT_MAX_BYTES:,} bytes and {datasets.IMPORT_MAX_CASES:,} cases). "
            "One bad line and nothing is imported: the 422 lists each, by line number."
        ),
        # The two JSONL media types read as text/csv does; listing one text type is enough.
        request={"application/json": ImportSerializer, "text/csv": OpenApiTypes.STR},
        responses={201: ImportedSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        dataset = _dataset(slug)
        if isinstance(request.data, dict) and "raw" in request.data:
            data, fmt = request.data["raw"], request.data["format"]
        else:
            body = ImportSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data["data"].encode("utf-8", "surrogatepass")
            fmt = body.validated_data["format"]
        try:
            cases = _room(lambda: actions.import_cases(dataset, data, fmt, user=request.user))
        except datasets.ImportRefused as refused:
            raise _refusal(refused) from None
        return Response({"imported": len(cases)}, status=status.HTTP_201_CREATED)


class DatasetExport(APIView):
    required = {"GET": READ}

    @extend_schema(
        summary="A dataset's cases as JSONL, one object a line",
        responses={(200, NDJSON): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        dataset = _dataset(slug)
        response = StreamingHttpResponse(datasets.export_jsonl(dataset), content_type=NDJSON)
        response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.jsonl"'
        return response


class DatasetAddJobs(APIView):
    required = {"POST": _perm("add_case")}
    problems = {"POST": (409,)}

    @extend_schema(
        summary="Add completed jobs as cases (by id, or by the board's filter)",
        request=AddJobsSerializer,
        responses={200: AddedSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        dataset = _dataset(slug)
        body = AddJobsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        more = False
        unknown = 0
        if "job_ids" in values:
            jobs = list(Job.objects.filter(pk__in=values["job_ids"]).order_by("pk"))
            unknown = len(set(values["job_ids"])) - len(jobs)
        else:
            jobs, more = newest_completed(values)
        added, skipped = _room(lambda: actions.add_jobs(dataset, jobs, user=request.user))
        body = {"added": len(added), "skipped": skipped + unknown, "more": more, "cases": added}
        return Response(AddedSerializer(body).data)


urlpatterns = [
    path("datasets", DatasetList.as_view(), name="api-datasets"),
    path("datasets/<slug:slug>", DatasetDetail.as_view(), name="api-dataset"),
    path("datasets/<slug:slug>/cases", CaseList.as_view(), name="api-dataset-cases"),
    path("datasets/<slug:slug>/cases/<int:case_id>", CaseDetail.as_view(), name="api-case"),
    path("datasets/<slug:slug>/import", DatasetImport.as_view(), name="api-dataset-import"),
    path("datasets/<slug:slug>/export", DatasetExport.as_view(), name="api-dataset-export"),
    path("datasets/<slug:slug>/add-jobs", DatasetAddJobs.as_view(), name="api-dataset-add-jobs"),
]
