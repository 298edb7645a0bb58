"""The WorkloadPlacement API (placement.runplacement.io/v1alpha1) as pydantic models.

These models are the single source of truth: the CRD schema is generated from them
(`placement.runtime.crd`), and the handlers parse every body with them. Descriptions become
`kubectl explain` text, so each field says what it means and what the operator does with it.
Every cross-field rule lives twice, side by side: a pydantic validator (for the operator, tests
and `placement explain`) and a CEL rule under `x-kubernetes-validations` (for the API server).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from placement.core.durations import Duration, check_duration_bounds, duration_bounds_cel
from placement.core.reasons import ConditionType, Reason

GROUP = "placement.runplacement.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WorkloadPlacement"
PLURAL = "workloadplacements"
SINGULAR = "workloadplacement"
SHORT_NAMES = ("wp",)

HISTORY_LIMIT = 10
MAX_CONDITIONS = 16
MAX_MESSAGE_LENGTH = 2048
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# Kubernetes name rules (RE2-compatible, also valid in Python).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_ZONE_PATTERN = r"^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+)*$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
# A label or annotation key (a qualified name): an optional DNS-subdomain prefix and '/',
# then up to 63 characters, alphanumeric at both ends.
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QUALIFIED_NAME_MAX_LENGTH = 253 + 1 + 63
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A person's or team's name: empty (no owner), or trimmed, without control or format
# characters (zero-width spaces, right-to-left marks) that make two owners look alike.
# \p{..} classes: RE2 (the API server) and Rust's regex (pydantic) both have them.
OWNER_PATTERN = r"^([^\p{Cc}\p{Cf}\p{Z}]([^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*[^\p{Cc}\p{Cf}\p{Z}])?)?$"
# PromQL without a `#` comment outside its string literals: the scoping rewrite and the
# batched split work on the expression, and a trailing comment made it always fail later.
PROMQL_PATTERN = r"""^([^#"'`]|"([^"\\]|\\.)*"|'([^'\\]|\\.)*'|`[^`]*`)*$"""
PROMQL_NOT_BLANK_CEL: JsonDict = {
    "x-kubernetes-validations": [
        {"rule": r"self.matches(r'[^\s\p{Z}]')", "message": "must not be blank"}
    ]
}
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
ClockTime = Annotated[str, StringConstraints(pattern=CLOCK_PATTERN, max_length=5)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


PromQL = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096, pattern=PROMQL_PATTERN),
    AfterValidator(_not_blank),
]
QualifiedName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=QUALIFIED_NAME_MAX_LENGTH, pattern=QUALIFIED_NAME_PATTERN
    ),
]
Message = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)]
ShortText = Annotated[str, StringConstraints(max_length=253)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]

# Upper bounds on money and efficiency: far above any real price, low enough that the formula
# (replicas up to 2^31, times 24 hours) stays a finite number. Found by fuzzing: a price of
# 9e307 passed `> 0` and made the savings NaN, which no status patch can carry.
MAX_HOURLY_PRICE = 1e9
# A millionth of the currency an hour: below it a price is a typo, and 5e-324 made the
# savings formula's terms denormal.
MIN_HOURLY_PRICE = 1e-6
# More pods than one cluster runs at once (Kubernetes tests 150,000 pods per cluster).
MAX_PARALLEL_PODS = 100_000
MAX_AMOUNT = 1e12
MIN_EFFICIENCY = 1e-6
MAX_EFFICIENCY = 1e6


def _at_least_cel(minimum: float) -> JsonDict:
    # The API server checks `minimum` on an integer value against int64(minimum): 1e-06
    # becomes 0 and `batchEfficiency: 0` passed (tests/data/invalid/). CEL compares as double.
    return {
        "x-kubernetes-validations": [
            {"rule": f"self >= {minimum:f}", "message": f"must be at least {minimum:g}"}
        ]
    }


MIN_EFFICIENCY_CEL = _at_least_cel(MIN_EFFICIENCY)
MIN_HOURLY_PRICE_CEL = _at_least_cel(MIN_HOURLY_PRICE)

# Durations a person would write: a wait of more than a week, a retry window of more than a
# day or a lookback of more than 30 days (Prometheus grew to 650 MB on `lookback: 3650d`) is
# a typo or a misuse; a lookback under a minute has no sample in most scrape intervals.
ACCEPTABLE_DELAY_BOUNDS = (timedelta(0), timedelta(days=7))
RETRY_WINDOW_BOUNDS = (timedelta(0), timedelta(days=1))
LOOKBACK_BOUNDS = (timedelta(minutes=1), timedelta(days=30))
HISTORY_BOUNDS = (timedelta(days=1), timedelta(days=35))
SCALE_UP_TIME_BOUNDS = (timedelta(seconds=1), timedelta(hours=6))
EVALUATION_INTERVAL_BOUNDS = (timedelta(seconds=1), timedelta(days=1))

# The largest jobTemplate, serialized as JSON, the operator acts on. The CRD bounds every
# field it declares; the Job and pod fields it passes through unknown are bounded here.
MAX_JOB_TEMPLATE_BYTES = 128 * 1024
# Budgets, in characters, for fields the template declares, checked together by CEL: bounds
# per field alone multiply (32 containers x 128 variables x 4096 characters is 16 MB).
# `placement.runtime.crd.worst_case_json_bytes` reads them back from the messages: with them the
# largest spec the CRD declares is 81,882 bytes of JSON in ASCII, 232,230 at 4 bytes a
# character (tests/unit/test_crd.py), under the 256 KB all annotations may hold.
MAX_LABELS_CHARACTERS = 4_096
MAX_ANNOTATIONS_CHARACTERS = 8_192
MAX_CONTAINERS_CHARACTERS = 16_384


def _budget_message(what: str, characters: int) -> str:
    return f"{what} together must be at most {characters} characters"


def _map_budget_cel(characters: int) -> JsonDict:
    return {
        "x-kubernetes-validations": [
            {
                "rule": f"self.map(k, size(k) + size(self[k])).sum() <= {characters}",
                "message": _budget_message("keys and values", characters),
            }
        ]
    }


def _check_map_budget(value: dict[str, str], characters: int) -> dict[str, str]:
    if sum(len(key) + len(text) for key, text in value.items()) > characters:
        raise ValueError(_budget_message("keys and values", characters))
    return value


_CONTAINER_CHARACTERS_CEL = (
    "size(c.name) + size(c.image)"
    " + (has(c.command) ? c.command.map(w, size(w)).sum() : 0)"
    " + (has(c.args) ? c.args.map(w, size(w)).sum() : 0)"
    " + (has(c.env) ? c.env.map(e, size(e.name) + (has(e.value) ? size(e.value) : 0)).sum() : 0)"
)
CONTAINERS_BUDGET_MESSAGE = _budget_message(
    "names, images, commands, arguments and environment variables of all containers",
    MAX_CONTAINERS_CHARACTERS,
)
CONTAINERS_BUDGET_CEL: JsonDict = {
    "x-kubernetes-validations": [
        {
            "rule": f"(has(self.containers) ? self.containers.map(c, "
            f"{_CONTAINER_CHARACTERS_CEL}).sum() : 0)"
            f" + (has(self.initContainers) ? self.initContainers.map(c, "
            f"{_CONTAINER_CHARACTERS_CEL}).sum() : 0) <= {MAX_CONTAINERS_CHARACTERS}",
            "message": CONTAINERS_BUDGET_MESSAGE,
        }
    ]
}

# The placement's name is a label value on its Jobs (placement.runplacement.io/placement),
# and label values are at most 63 characters, so longer names are refused at admission.
NAME_MAX_LENGTH = 63
NAME_TOO_LONG = (
    f"metadata.name must be at most {NAME_MAX_LENGTH} characters: it labels the placement's Jobs"
)
# CEL at the schema root may read metadata.name (and only name and generateName).
PLACEMENT_CEL: JsonDict = {
    "x-kubernetes-validations": [
        {
            "rule": f"size(self.metadata.name) <= {NAME_MAX_LENGTH}",
            "message": NAME_TOO_LONG,
            "fieldPath": ".metadata.name",  # the error names the field, not `<nil>`
        }
    ]
}


def _camel(extra: Literal["forbid", "allow", "ignore"]) -> ConfigDict:
    return ConfigDict(alias_generator=to_camel, populate_by_name=True, extra=extra)


def _spec(extra: Literal["forbid", "allow"]) -> ConfigDict:
    # What a person writes: NaN or infinity is refused as such ("a finite number"), not by
    # the bound it happens to fail (NaN fails `le=1e9`, and the error said so). And in
    # camelCase only, as the API server reads it: it refuses `warm_replicas` as an unknown
    # field (kubectl's strict validation) or drops it (other clients), so `placement
    # explain` must not decide on it.
    return ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        extra=extra,
        allow_inf_nan=False,
    )


def _within(bounds: tuple[timedelta, timedelta]) -> Callable[[Duration], Duration]:
    minimum, maximum = bounds
    return lambda value: check_duration_bounds(value, minimum, maximum)


def _within_cel(bounds: tuple[timedelta, timedelta]) -> Any:
    return Field(json_schema_extra=duration_bounds_cel(*bounds))


# Durations within bounds: checked by pydantic, and by CEL in the CRD.
AcceptableDelay = Annotated[
    Duration, AfterValidator(_within(ACCEPTABLE_DELAY_BOUNDS)), _within_cel(ACCEPTABLE_DELAY_BOUNDS)
]
RetryWindow = Annotated[
    Duration, AfterValidator(_within(RETRY_WINDOW_BOUNDS)), _within_cel(RETRY_WINDOW_BOUNDS)
]
Lookback = Annotated[
    Duration, AfterValidator(_within(LOOKBACK_BOUNDS)), _within_cel(LOOKBACK_BOUNDS)
]
HistoryRange = Annotated[
    Duration, AfterValidator(_within(HISTORY_BOUNDS)), _within_cel(HISTORY_BOUNDS)
]
ScaleUpTime = Annotated[
    Duration, AfterValidator(_within(SCALE_UP_TIME_BOUNDS)), _within_cel(SCALE_UP_TIME_BOUNDS)
]
RequestsUnit = Literal["Requests", "Tokens"]
EvaluationInterval = Annotated[
    Duration,
    AfterValidator(_within(EVALUATION_INTERVAL_BOUNDS)),
    _within_cel(EVALUATION_INTERVAL_BOUNDS),
]

# Names in tzdata's zone list that are not places: "Factory" has no offset anyone lives in.
# ("localtime" and "posixrules" are files of a host's zoneinfo directory, not in the list.)
NOT_PLACES = frozenset({"Factory", "localtime", "posixrules"})


@cache
def iana_time_zones() -> tuple[str, ...]:
    """Every IANA zone name, from the pinned tzdata package (not the host's zoneinfo, so the
    CRD generated from it is the same on every machine)."""
    names = resources.files("tzdata").joinpath("zones").read_text().split()
    return tuple(sorted(set(names) - NOT_PLACES))


TIME_ZONE_MESSAGE = "must be an IANA time zone name such as Europe/Berlin or UTC"


def _time_zone_cel() -> JsonDict:
    zones = ", ".join(f"'{zone}'" for zone in iana_time_zones())
    rule: JsonDict = {"rule": f"self in [{zones}]", "message": TIME_ZONE_MESSAGE}
    return {"x-kubernetes-validations": [rule]}


class Mode(StrEnum):
    """Whether the operator may change the workload."""

    RECOMMEND = "Recommend"
    ENFORCE = "Enforce"


class ProductRisk(StrEnum):
    """How much a wrong placement would hurt the product."""

    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class FallbackAction(StrEnum):
    """What to do when the batch path misses its window or fails past retryWindow."""

    RESTORE_REALTIME = "RestoreRealtime"
    ALERT = "Alert"


class Phase(StrEnum):
    """Where the work of a placement runs now."""

    OBSERVING = "Observing"
    REALTIME = "Realtime"
    BATCH = "Batch"
    ASYNC = "Async"  # served from a queue, replicas scaled by KEDA on its depth
    FALLBACK = "Fallback"
    BLOCKED = "Blocked"


class Action(StrEnum):
    """What a decision does (or, when not actuated, recommends)."""

    NONE = "None"  # nothing can be decided (blocked, or no trustworthy data)
    STAY = "Stay"  # stay realtime
    MOVE_TO_BATCH = "MoveToBatch"  # scale the Deployment to warmReplicas
    MOVE_TO_ASYNC = "MoveToAsync"  # hand the replica count to a KEDA ScaledObject on the queue
    CREATE_JOB = "CreateJob"  # create this window's Job
    WAIT = "Wait"  # in batch: wait for the window or the Job
    FALLBACK = "Fallback"  # batch missed or failed: run spec.fallback.action
    RESTORE = "Restore"  # scale the Deployment back to originalReplicas


# ---------------------------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------------------------


class TargetSpec(BaseModel):
    """The realtime Deployment whose work may move to batch."""

    model_config = _spec("forbid")

    deployment: DnsSubdomain = Field(
        description="Name of the realtime Deployment, in the same namespace as this placement."
    )
    warm_replicas: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description=(
            "Replicas kept serving while batch runs (hybrid serving when > 0). Savings still "
            "charge batch for all measured work, so they are understated, never overstated."
        ),
    )


class LatencySpec(BaseModel):
    """How long results may wait."""

    model_config = _spec("forbid")

    user_visible: bool = Field(
        default=False,
        description="True when a user waits on each answer: the workload stays realtime, "
        "whatever the savings.",
    )
    acceptable_delay: AcceptableDelay = Field(
        description="How long results may wait, e.g. '90m', '8h', '2d'. Batch is used only "
        "while the wait until the end of the batch window is at most this long, so below 24h "
        "the Deployment is held scaled down only that many hours a day, and the savings count "
        "only those hours. At most 7d."
    )


class BatchWindow(BaseModel):
    """Daily wall-clock window in which batch Jobs run; may cross midnight."""

    model_config = _spec("forbid") | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.start != self.end",
                    "message": "batch.window.start and batch.window.end must differ",
                }
            ]
        }
    )

    start: ClockTime = Field(description="Window start, 'HH:MM' local time in timeZone.")
    end: ClockTime = Field(
        description="Window end, 'HH:MM' local time in timeZone; earlier than start means "
        "the window ends the next day."
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        json_schema_extra=_time_zone_cel(),
        description="IANA time zone of start and end, e.g. 'Europe/Berlin'. A start inside a "
        "daylight-saving gap moves forward by the gap; in a repeated hour the first one counts.",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        if value not in iana_time_zones():
            raise ValueError(f"{TIME_ZONE_MESSAGE}, not {value!r}")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{TIME_ZONE_MESSAGE}, not {value!r}") from error
        return value

    @model_validator(mode="after")
    def _start_differs_from_end(self) -> BatchWindow:
        if self.start == self.end:
            raise ValueError("batch.window.start and batch.window.end must differ")
        return self

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class ObjectMetaTemplate(BaseModel):
    """Labels and annotations copied onto each created object."""

    model_config = _spec("forbid")

    labels: dict[QualifiedName, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        json_schema_extra=_map_budget_cel(MAX_LABELS_CHARACTERS),
        description="Labels for the created object (the operator adds its own); keys and "
        f"values together at most {MAX_LABELS_CHARACTERS} characters.",
    )
    annotations: dict[QualifiedName, AnnotationValue] = Field(
        default_factory=dict,
        max_length=64,
        json_schema_extra=_map_budget_cel(MAX_ANNOTATIONS_CHARACTERS),
        description="Annotations for the created object; keys and values together at most "
        f"{MAX_ANNOTATIONS_CHARACTERS} characters.",
    )

    @field_validator("labels")
    @classmethod
    def _labels_within_budget(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_map_budget(value, MAX_LABELS_CHARACTERS)

    @field_validator("annotations")
    @classmethod
    def _annotations_within_budget(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_map_budget(value, MAX_ANNOTATIONS_CHARACTERS)


CommandWord = Annotated[str, StringConstraints(max_length=4096)]


class EnvVarTemplate(BaseModel):
    """An environment variable of a container (core/v1 EnvVar); valueFrom passes through."""

    model_config = _spec("allow")

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="Variable name."
    )
    value: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None, description="Variable value."
    )


class ContainerTemplate(BaseModel):
    """A container of the batch pod (core/v1 Container); other fields pass through."""

    model_config = _spec("allow")

    name: DnsLabel = Field(description="Container name.")
    image: str = Field(min_length=1, max_length=1024, description="Container image.")
    command: list[CommandWord] | None = Field(
        default=None, max_length=32, description="Entrypoint array."
    )
    args: list[CommandWord] | None = Field(
        default=None, max_length=32, description="Arguments to the entrypoint."
    )
    env: list[EnvVarTemplate] | None = Field(
        default=None, max_length=64, description="Environment variables."
    )


def _container_characters(container: ContainerTemplate) -> int:
    words = [*(container.command or []), *(container.args or [])]
    env = [len(var.name) + len(var.value or "") for var in container.env or []]
    return len(container.name) + len(container.image) + sum(map(len, words)) + sum(env)


class PodSpecTemplate(BaseModel):
    """core/v1 PodSpec of the batch pod; fields beyond these pass through unchanged."""

    model_config = _spec("allow") | ConfigDict(json_schema_extra=CONTAINERS_BUDGET_CEL)

    containers: list[ContainerTemplate] = Field(
        min_length=1, max_length=8, description="Containers of the batch pod (at least one)."
    )
    init_containers: list[ContainerTemplate] | None = Field(
        default=None, max_length=8, description="Init containers of the batch pod."
    )
    volumes: list[dict[str, Any]] | None = Field(
        default=None, max_length=64, description="Volumes of the batch pod (core/v1 Volume)."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="Seconds a pod may run (int64)."
    )
    termination_grace_period_seconds: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="Seconds a pod has to stop (int64)."
    )
    restart_policy: Literal["Never", "OnFailure"] | None = Field(
        default=None,
        description="Never or OnFailure, as a Job requires; unset means Never.",
    )

    @model_validator(mode="after")
    def _containers_within_budget(self) -> PodSpecTemplate:
        containers = [*self.containers, *(self.init_containers or [])]
        if sum(map(_container_characters, containers)) > MAX_CONTAINERS_CHARACTERS:
            raise ValueError(CONTAINERS_BUDGET_MESSAGE)
        return self


class PodTemplate(BaseModel):
    """core/v1 PodTemplateSpec of the batch pod."""

    model_config = _spec("forbid")

    metadata: ObjectMetaTemplate | None = Field(
        default=None, description="Labels and annotations of the batch pods."
    )
    spec: PodSpecTemplate = Field(description="Pod spec of the batch pods.")


class JobSpecTemplate(BaseModel):
    """batch/v1 JobSpec; fields beyond these (completions, backoffLimit, ...) pass through."""

    model_config = _spec("allow")

    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="Pods that may run at once; used to check that batch fits the window.",
    )
    completions: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Pods that must succeed (int32)."
    )
    backoff_limit: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Retries before the Job fails (int32)."
    )
    backoff_limit_per_index: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Retries per index (int32)."
    )
    max_failed_indexes: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="Failed indexes before the Job fails."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="Seconds the Job may run (int64)."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Seconds a finished Job is kept before it is deleted (int32).",
    )
    template: PodTemplate = Field(description="Pod template of the Job.")


class JobTemplate(BaseModel):
    """batch/v1 JobTemplateSpec: the Job created once per batch window."""

    model_config = _spec("forbid")

    metadata: ObjectMetaTemplate | None = Field(
        default=None, description="Labels and annotations of each created Job."
    )
    spec: JobSpecTemplate = Field(description="Spec of each created Job.")


def _bounded_in_size(template: JobTemplate) -> JobTemplate:
    # The CRD bounds the fields it declares; those it passes through unknown are bounded
    # here, by the operator only (no CEL function measures an object).
    size = len(json.dumps(template.model_dump(by_alias=True, exclude_none=True, mode="json")))
    if size > MAX_JOB_TEMPLATE_BYTES:
        raise ValueError(
            f"is {size} bytes as JSON, over the {MAX_JOB_TEMPLATE_BYTES} the operator accepts"
        )
    return template


class BatchSpec(BaseModel):
    """The batch path: when Jobs run and what they run."""

    model_config = _spec("forbid") | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "!has(self.queueName) || !has(self.jobTemplate.metadata) || "
                        "!has(self.jobTemplate.metadata.labels) || "
                        f"!('{KUEUE_QUEUE_LABEL}' in self.jobTemplate.metadata.labels) || "
                        f"self.jobTemplate.metadata.labels['{KUEUE_QUEUE_LABEL}'] "
                        "== self.queueName"
                    ),
                    "message": f"batch.queueName and jobTemplate label {KUEUE_QUEUE_LABEL} "
                    "disagree; set one of them",
                }
            ]
        }
    )

    window: BatchWindow = Field(description="Daily window in which the batch Job runs.")
    retry_window: RetryWindow = Field(
        description="How long after a Job fails it may still be retried (by its backoffLimit, "
        "Kueue, or a person deleting it so the operator recreates it) before the fallback "
        "runs. At most 1d."
    )
    job_template: Annotated[JobTemplate, AfterValidator(_bounded_in_size)] = Field(
        description="batch/v1 JobTemplateSpec of the Job created once per window."
    )
    queue_name: DnsSubdomain | None = Field(
        default=None, description="Kueue LocalQueue for the Jobs (sets kueue.x-k8s.io/queue-name)."
    )

    @model_validator(mode="after")
    def _queue_name_agrees_with_label(self) -> BatchSpec:
        metadata = self.job_template.metadata
        label = metadata.labels.get(KUEUE_QUEUE_LABEL) if metadata else None
        if self.queue_name is not None and label is not None and label != self.queue_name:
            raise ValueError(
                f"batch.queueName and jobTemplate label {KUEUE_QUEUE_LABEL} disagree; "
                "set one of them"
            )
        return self


class FallbackSpec(BaseModel):
    """What happens when batch misses its window or fails past retryWindow."""

    model_config = _spec("forbid")

    action: FallbackAction = Field(
        default=FallbackAction.RESTORE_REALTIME,
        description="RestoreRealtime scales the Deployment back to its original replicas; "
        "Alert only posts a Warning event and leaves it as it is.",
    )


class CostsSpec(BaseModel):
    """Prices and overheads for the daily savings formula; all amounts in `currency`."""

    model_config = _spec("forbid")

    currency: str = Field(
        default="USD", pattern=CURRENCY_PATTERN, max_length=3, description="ISO 4217 code."
    )
    realtime_replica_hourly: float = Field(
        ge=MIN_HOURLY_PRICE,
        le=MAX_HOURLY_PRICE,
        json_schema_extra=MIN_HOURLY_PRICE_CEL,
        description="Cost of one realtime replica for one hour.",
    )
    batch_pod_hourly: float = Field(
        ge=MIN_HOURLY_PRICE,
        le=MAX_HOURLY_PRICE,
        json_schema_extra=MIN_HOURLY_PRICE_CEL,
        description="Cost of one batch pod for one hour.",
    )
    batch_efficiency: float = Field(
        ge=MIN_EFFICIENCY,
        le=MAX_EFFICIENCY,
        json_schema_extra=MIN_EFFICIENCY_CEL,
        description="Work one batch pod-hour does, over the work of one fully utilized "
        "realtime replica-hour. Often far above 1 for decode-bound LLM work (bigger batches).",
    )
    data_staging_per_run: float = Field(
        default=0,
        ge=0,
        le=MAX_AMOUNT,
        description="Cost to stage data in and out for one batch run.",
    )
    operations_per_day: float = Field(
        default=0,
        ge=0,
        le=MAX_AMOUNT,
        description="Daily cost of owning the batch path (on-call, monitoring).",
    )
    retry_rate: float = Field(
        default=0,
        ge=0,
        lt=1,
        description="Share of batch processing that is redone after failures, in [0,1).",
    )
    max_parallel_pods: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLEL_PODS,
        description="Batch pods that may run at once (e.g. the queue's quota); with "
        "jobTemplate.spec.parallelism the smaller counts; neither means 1.",
    )
    missed_window_cost: float = Field(
        default=0,
        ge=0,
        le=MAX_AMOUNT,
        description="Product, support or compliance cost of one missed batch window. Enters "
        "the formula as missed-window rate x this cost per day (its own term).",
    )
    missed_window_rate: float = Field(
        default=0,
        ge=0,
        le=1,
        description="Share of batch windows expected to be missed, used until the "
        "placement's own history of windows is long enough to measure it (learning.minRuns).",
    )
    queue_per_day: float = Field(
        default=0,
        ge=0,
        le=MAX_AMOUNT,
        description="Daily cost of the queue async serving reads from (broker, storage, "
        "notifications); charged to async mode only.",
    )
    savings_margin: float = Field(
        default=0,
        ge=0,
        le=MAX_AMOUNT,
        description="Savings per day required before moving to batch. Once in batch, the "
        "placement returns to realtime for cost reasons only when it loses money.",
    )


class LearningSpec(BaseModel):
    """Learning from finished batch Jobs: measured batchEfficiency and retryRate."""

    model_config = _spec("forbid") | ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minRuns) || !has(self.maxRuns) || "
                    "self.minRuns <= self.maxRuns",
                    "message": "learning.minRuns must not exceed learning.maxRuns",
                }
            ]
        }
    )

    use_measured: bool = Field(
        default=True,
        description="Replace the declared costs.batchEfficiency and costs.retryRate with the "
        "values measured from finished Jobs once minRuns of them exist. False: measure and "
        "show them in status, decide on the declared ones.",
    )
    min_runs: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Finished Jobs needed before a measured value is used: efficiency counts "
        "succeeded Jobs, retry rate every finished Job.",
    )
    max_runs: int = Field(
        default=20,
        ge=1,
        le=100,
        description="How many of the latest finished Jobs are kept in status.learning.runs "
        "and averaged.",
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> LearningSpec:
        if self.min_runs > self.max_runs:
            raise ValueError("learning.minRuns must not exceed learning.maxRuns")
        return self


class MetricsSpec(BaseModel):
    """PromQL queries the decision reads."""

    model_config = _spec("forbid")

    utilization: PromQL = Field(
        json_schema_extra=PROMQL_NOT_BLANK_CEL,
        description="PromQL returning one number in [0,1]: useful work over capacity of the "
        "realtime fleet (e.g. tokens/s served over tokens/s it can serve), not GPU busy time.",
    )
    queue_depth: PromQL | None = Field(
        default=None,
        json_schema_extra=PROMQL_NOT_BLANK_CEL,
        description="PromQL returning the work waiting, in the same unit as `demand` "
        "(e.g. requests or tokens queued). While held, the operator projects it to the window "
        "start and restores realtime before a window would be missed.",
    )
    demand: PromQL | None = Field(
        default=None,
        json_schema_extra=PROMQL_NOT_BLANK_CEL,
        description="PromQL returning the work arriving per second (e.g. requests or tokens "
        "per second), whatever the replica count: it does not shrink while the Deployment is "
        "held scaled down. The forecast's history and the backlog projection read it.",
    )
    requests: PromQL | None = Field(
        default=None,
        json_schema_extra=PROMQL_NOT_BLANK_CEL,
        description="PromQL returning requests (or tokens, see requestsUnit) processed per "
        "second, for the cost per 1,000 requests (or per 1M tokens).",
    )
    requests_unit: RequestsUnit = Field(
        default="Requests",
        description="What `requests` counts: Requests (cost shown per 1,000) or Tokens (per 1M).",
    )
    history: HistoryRange = Field(
        default=Duration("14d"),
        description="How far back the forecast reads the placement's own load (demand, else "
        "utilization) from Prometheus, by hour of day and weekday. From 1d to 35d.",
    )
    lookback: Lookback = Field(
        default=Duration("1h"),
        description="Range the queries average over; older samples count as unavailable. "
        "From 1m to 30d.",
    )


class AsyncSpec(BaseModel):
    """Asynchronous serving: requests wait in a queue and a KEDA ScaledObject the operator
    owns scales the Deployment on its depth (to warmReplicas, possibly 0, when it is empty)."""

    model_config = _spec("forbid")

    queue: PromQL = Field(
        json_schema_extra=PROMQL_NOT_BLANK_CEL,
        description="PromQL of the queue the fleet reads from: items waiting (or the oldest "
        "item's age). KEDA's Prometheus trigger acts on it; scoped to the placement's "
        "namespace like every query.",
    )
    queue_per_replica: float = Field(
        default=10,
        gt=0,
        le=MAX_AMOUNT,
        description="Queue value each replica is expected to take (KEDA's threshold): "
        "replicas = ceil(queue / queuePerReplica).",
    )
    target_utilization: float = Field(
        default=0.8,
        ge=0.05,
        le=1,
        description="Useful utilization queued work keeps the replicas at; the expected "
        "async replicas are demand at this utilization.",
    )
    scale_up_time: ScaleUpTime = Field(
        default=Duration("2m"),
        description="Time from an empty fleet to a serving replica (declared; measured from "
        "the Deployment's rollouts when available). acceptableDelay must exceed it.",
    )


class WorkloadPlacementSpec(BaseModel):
    """Desired placement policy of one inference workload."""

    model_config = _spec("forbid")

    owner: ShortText = Field(
        default="",
        pattern=OWNER_PATTERN,
        description="Who operates the batch path (team or on-call). Empty: the operator "
        "never acts (OwnerMissing).",
    )
    mode: Mode = Field(
        default=Mode.RECOMMEND,
        description="Recommend: decide, record and emit events, touch nothing. Enforce: "
        "also scale the Deployment and create Jobs.",
    )
    product_risk: ProductRisk = Field(
        default=ProductRisk.MEDIUM,
        description="High: the operator never acts on its own (recommends only).",
    )
    target: TargetSpec = Field(description="The realtime Deployment.")
    latency: LatencySpec = Field(description="How long results may wait.")
    batch: BatchSpec = Field(description="The batch path.")
    fallback: FallbackSpec = Field(
        default_factory=FallbackSpec,
        description="What happens when batch misses its window or fails past retryWindow.",
    )
    costs: CostsSpec = Field(description="Prices for the daily savings formula.")
    metrics: MetricsSpec = Field(description="PromQL queries the decision reads.")
    learning: LearningSpec = Field(
        default_factory=LearningSpec,
        description="Measure batch throughput and retries from finished Jobs, and use them.",
    )
    async_: AsyncSpec | None = Field(
        default=None,
        alias="async",
        description="The asynchronous serving path (KEDA); absent: only realtime and batch "
        "are considered.",
    )
    evaluation_interval: EvaluationInterval = Field(
        default=Duration("5m"),
        description="How often the placement is re-evaluated; at most 1d.",
    )


# ---------------------------------------------------------------------------------------------
# status (written by the operator; read back tolerantly so an older operator's fields never
# break a newer one)
# ---------------------------------------------------------------------------------------------


class Breakdown(BaseModel):
    """Every term of the daily savings formula, in spec.costs.currency per day."""

    model_config = _camel("ignore")

    capacity_avoided: float = Field(
        description="(replicas - warmReplicas) * realtimeReplicaHourly * heldHoursPerDay."
    )
    batch_processing: float = Field(
        description="replicas * utilization * heldHoursPerDay / batchEfficiency * batchPodHourly."
    )
    data_staging: float = Field(description="dataStagingPerRun * runs per day.")
    retries: float = Field(description="Batch processing * retryRate.")
    operations: float = Field(description="operationsPerDay.")
    missed_window_risk: float = Field(
        default=0,
        description="missedWindowCost * missed-window rate (measured once learning.minRuns "
        "windows are known, else costs.missedWindowRate): the expected cost of missed "
        "windows per day.",
    )


class DecisionInputs(BaseModel):
    """The numbers a decision was computed from."""

    model_config = _camel("ignore")

    replicas: int | None = Field(
        default=None,
        description="Realtime replicas the formula used (the original count while in batch).",
    )
    current_replicas: int | None = Field(
        default=None, description="Replicas of the Deployment when evaluated."
    )
    warm_replicas: int | None = Field(default=None, description="spec.target.warmReplicas.")
    utilization: float | None = Field(
        default=None, description="Useful utilization the formula used, 0..1."
    )
    queue_depth: float | None = Field(default=None, description="Work waiting, if measured.")
    demand: float | None = Field(
        default=None, description="Work arriving per second (metrics.demand), if measured."
    )
    work_replica_hours: float | None = Field(
        default=None,
        description="Work moved to batch per day: the forecast work of the planned hold "
        "(with the lookback reading alone, replicas * utilization * heldHoursPerDay).",
    )
    batch_pod_hours: float | None = Field(
        default=None, description="workReplicaHours / batchEfficiency: one run's pod-hours."
    )
    parallel_pods: int | None = Field(default=None, description="Batch pods that run at once.")
    window_hours: float | None = Field(
        default=None, description="Length of the current or next batch window."
    )
    wait_hours: float | None = Field(
        default=None, description="Wait from evaluation until that window ends."
    )
    acceptable_delay_hours: float | None = Field(
        default=None, description="spec.latency.acceptableDelay in hours."
    )
    held_hours_per_day: float | None = Field(
        default=None,
        description="Hours a day the Deployment is held scaled down: the planned hold "
        "(status.batch.plannedHold), at most min(acceptableDelay, 24h), because batch is used "
        "only while the wait until the window ends is at most acceptableDelay. Capacity "
        "avoided and batch work count these hours only.",
    )
    metrics_age_seconds: float | None = Field(
        default=None, description="Age of the newest metric sample."
    )
    batch_efficiency: float | None = Field(
        default=None,
        description="batchEfficiency the formula used: declared, or measured (status.learning).",
    )
    retry_rate: float | None = Field(
        default=None,
        description="retryRate the formula used: declared, or measured (status.learning).",
    )


class AsyncSavings(BaseModel):
    """Every term of the async savings, in spec.costs.currency per day, and the quantities
    they came from (present when spec.async is set and a utilization is known)."""

    model_config = _camel("ignore")

    savings_per_day: float = Field(description="capacityAvoided - queue - operations.")
    capacity_avoided: float = Field(
        description="(replicas - expectedReplicas) * realtimeReplicaHourly * 24."
    )
    queue: float = Field(description="costs.queuePerDay.")
    operations: float = Field(description="costs.operationsPerDay.")
    work_replicas: float = Field(
        description="replicas * utilization: the realtime fleet's useful work, in replicas."
    )
    busy_replicas: int = Field(
        ge=0,
        description="Replicas KEDA keeps while work arrives: ceil(work / targetUtilization), the "
        "day's work concentrated into its busy hours, bounded by warmReplicas and replicas.",
    )
    idle_hours_per_day: float = Field(
        ge=0,
        le=24,
        description="Hours a day no work arrives (share of metrics.history at zero; 0 without "
        "a history): warmReplicas run then.",
    )
    expected_replicas: float = Field(
        ge=0, description="The day's average replicas in async: busy and idle hours weighed."
    )


class CostPerRequestStatus(BaseModel):
    """Cost per 1,000 requests (or 1M tokens), with metrics.requests."""

    model_config = _camel("ignore")

    unit: Literal["1,000 requests", "1M tokens"] = Field(
        description="What the figures are per (metrics.requestsUnit)."
    )
    requests_per_second: float = Field(ge=0, description="metrics.requests as read.")
    measured: float | None = Field(
        default=None,
        ge=0,
        description="Now: current replicas * realtimeReplicaHourly / requests per hour * unit.",
    )
    forecast: float | None = Field(
        default=None,
        ge=0,
        description="For `mode` over a day: (replicas * realtimeReplicaHourly * 24 - the mode's "
        "savings per day) / requests per day * unit.",
    )
    mode: Phase = Field(description="The mode decided or recommended: Realtime, Batch or Async.")


class DecisionStatus(BaseModel):
    """The latest decision."""

    model_config = _camel("ignore")

    action: Action = Field(description="What the decision does or recommends.")
    reason: Reason = Field(description="Stable CamelCase reason, also used for Events.")
    message: Message = Field(description="Human-readable explanation with all the numbers.")
    evaluated_at: datetime = Field(description="When the decision was made.")
    actuated: bool = Field(
        default=False, description="False when only recommended (mode, risk or owner)."
    )
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the Deployment should have."
    )
    savings_per_day: float | None = Field(
        default=None, description="Savings per day in spec.costs.currency (negative: loss)."
    )
    breakdown: Breakdown | None = Field(default=None, description="Terms of the savings.")
    async_breakdown: AsyncSavings | None = Field(
        default=None,
        description="Terms of the async savings (spec.async set); savingsPerDay is these when "
        "the decision is about async (phase Async, or an async reason).",
    )
    cost_per_request: CostPerRequestStatus | None = Field(
        default=None, description="Cost per 1,000 requests or 1M tokens (metrics.requests)."
    )
    inputs: DecisionInputs = Field(
        default_factory=DecisionInputs, description="Numbers the decision used."
    )


class HistoryEntry(BaseModel):
    """A past decision that differed from the one before it."""

    model_config = _camel("ignore")

    evaluated_at: datetime = Field(description="When the decision was made.")
    phase: Phase = Field(description="Phase after the decision.")
    action: Action = Field(description="What the decision did or recommended.")
    reason: Reason = Field(description="Reason of the decision.")
    savings_per_day: float | None = Field(default=None, description="Savings per day then.")
    message: Message = Field(description="Message of the decision.")


class WaitingHold(BaseModel):
    """A hold that ended before its window (a planned restore): the work held over
    [from, until) waits for the Job of the window [windowStart, windowEnd), created in the
    window while the Deployment is realtime."""

    model_config = _camel("ignore")

    from_: datetime = Field(alias="from", description="When the hold started.")
    until: datetime = Field(description="When it ended: realtime restored.")
    window_start: datetime = Field(description="Start of the window whose Job does the work.")
    window_end: datetime = Field(
        description="End of that window: without a succeeded Job by then the work is missed."
    )


class PlannedHold(BaseModel):
    """The hold planned for the current or next window: the hours before the window's end
    the Deployment is held scaled down, chosen for the largest forecast savings among the
    holds whose forecast work fits the window."""

    model_config = _camel("ignore")

    from_: datetime = Field(alias="from", description="When the hold starts.")
    until: datetime = Field(
        description="When it ends: the window's end, or (a hold that ends before its window, "
        "where the day's work does not fit the window) an earlier moment: realtime is restored "
        "then and the work held waits for the window's Job (status.batch.waitingHold)."
    )
    hours: float = Field(ge=0, description="Its length in hours.")
    forecast_work_replica_hours: float = Field(
        ge=0, description="Work forecast to arrive over the hold (typical), in replica-hours."
    )
    forecast_batch_pod_hours: float = Field(
        ge=0,
        description="Batch pod-hours that work needs at the forecast's high quantile, "
        "retries included: what must fit.",
    )
    window_capacity_pod_hours: float = Field(
        ge=0,
        description="Parallel pods x window hours inside the hold x the margin (0.8; 0.95 on "
        "steady load: the earlier days brought nearly the same work over the hold's hours, or, "
        "with fewer than three earlier days, the hours differ from one another by 10% or less).",
    )
    forecast: Message = Field(default="", description="How the forecast was made.")


class BacklogStatus(BaseModel):
    """While held: the work the window will have to do, projected from demand and queue
    depth, against what the window can do from now on."""

    model_config = _camel("ignore")

    watched: bool = Field(
        description="False: no metrics.demand or metrics.queueDepth (or no conversion into "
        "replica-hours), so the operator cannot see the backlog; `note` says why."
    )
    note: Message = Field(default="", description="Why not watched, or how it was estimated.")
    waiting_replica_hours: float | None = Field(
        default=None, description="Work waiting now (queue depth x replicasPerDemand / 3600)."
    )
    arriving_replica_hours: float | None = Field(
        default=None, description="Work still arriving until the window ends (forecast)."
    )
    projected_batch_pod_hours: float | None = Field(
        default=None, description="(waiting + arriving) / batchEfficiency x (1 + retryRate)."
    )
    window_capacity_pod_hours: float | None = Field(
        default=None,
        description="Parallel pods x hours of the window from now on; inside the window from "
        "half a lookback ago (the queue depth, averaged over metrics.lookback, is the queue "
        "of then).",
    )


class BatchStatus(BaseModel):
    """State of the batch path; survives operator restarts."""

    model_config = _camel("ignore")

    current_job: DnsSubdomain | None = Field(
        default=None, description="Job created for the current or latest window."
    )
    since: datetime | None = Field(default=None, description="When the workload moved to batch.")
    baseline_utilization: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Utilization measured before the move; realtime cannot be measured "
        "while scaled down, so savings in batch are computed from it.",
    )
    last_succeeded: datetime | None = Field(
        default=None, description="When a batch Job last succeeded."
    )
    last_failed: datetime | None = Field(default=None, description="When a batch Job last failed.")
    missed_windows: int = Field(
        default=0, ge=0, description="Windows that ended without a succeeded Job."
    )
    last_missed_window: ShortText | None = Field(
        default=None, description="Label (YYYYMMDD-HHMM) of the last missed window."
    )
    fallback_until: datetime | None = Field(
        default=None, description="Batch is not retried before this time after a fallback."
    )
    planned_hold: PlannedHold | None = Field(
        default=None,
        description="The hold planned for the current or next window (while held: the one "
        "taken at the move, kept until it ends).",
    )
    waiting_hold: WaitingHold | None = Field(
        default=None,
        description="Realtime after a hold that ended before its window: the work held then "
        "waits for that window's Job.",
    )
    replicas_per_demand: float | None = Field(
        default=None,
        ge=0,
        description="Realtime replicas one unit of metrics.demand keeps busy (utilization x "
        "replicas / demand), measured before the last move: converts demand and queue depth "
        "into replica-hours while held, and until metrics.lookback after the hold ended (the "
        "lookback still averages the held fleet's utilization).",
    )
    backlog: BacklogStatus | None = Field(
        default=None, description="While held: the projected backlog against the window."
    )


class AsyncStatus(BaseModel):
    """State of the async path; survives operator restarts."""

    model_config = _camel("ignore")

    since: datetime | None = Field(
        default=None, description="When the workload moved to async; unset outside it."
    )
    scaled_object: DnsSubdomain | None = Field(
        default=None, description="The operator's ScaledObject (placement-<name>) while in async."
    )


class RunStatus(BaseModel):
    """One finished batch Job, as measured."""

    model_config = _camel("ignore")

    job: DnsSubdomain = Field(description="Name of the Job.")
    finished_at: datetime = Field(description="When it succeeded or failed.")
    succeeded: bool = Field(description="True when the Job completed.")
    pod_hours: float = Field(
        ge=0, description="Pod-hours it ran: wall-clock time times the pods running at once."
    )
    failed_pod_hours: float = Field(
        ge=0, description="The part of podHours spent in pods that failed (redone work)."
    )
    work_replica_hours: float | None = Field(
        default=None,
        ge=0,
        description="Work the operator gave it, in fully utilized realtime replica-hours "
        "(annotation placement.runplacement.io/work-replica-hours on the Job).",
    )


class MeasuredValue(BaseModel):
    """A cost parameter as declared in spec and as measured from finished Jobs."""

    model_config = _camel("ignore")

    declared: float = Field(description="The value in spec.costs.")
    measured: float | None = Field(
        default=None, description="The value measured from status.learning.runs, if any."
    )
    runs: int = Field(default=0, ge=0, description="Runs the measured value rests on.")
    in_use: bool = Field(
        default=False,
        description="True when the decision uses the measured value (at least "
        "spec.learning.minRuns runs and spec.learning.useMeasured).",
    )


class LearningStatus(BaseModel):
    """What finished batch Jobs taught: measured beside declared values."""

    model_config = _camel("ignore")

    batch_efficiency: MeasuredValue | None = Field(
        default=None,
        description="Work per batch pod-hour over work per realtime replica-hour: sum of the "
        "succeeded runs' workReplicaHours over their pod-hours not spent in failed pods.",
    )
    retry_rate: MeasuredValue | None = Field(
        default=None, description="Failed pod-hours over all pod-hours of the runs."
    )
    missed_window_rate: MeasuredValue | None = Field(
        default=None,
        description="Missed windows (batch.missedWindows) over the windows known: those a "
        "kept run succeeded in plus the missed ones; runs counts those windows. In use only "
        "with a costs.missedWindowCost.",
    )
    runs: list[RunStatus] = Field(
        default_factory=list,
        max_length=100,
        description="The latest finished Jobs (at most spec.learning.maxRuns), oldest first.",
    )


class Condition(BaseModel):
    """A standard Kubernetes condition."""

    model_config = _camel("ignore")

    type: ConditionType = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, StringConstraints(max_length=1024)] = Field(
        description="CamelCase reason for the last transition."
    )
    message: Message = Field(default="", description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed for."
    )


class WorkloadPlacementStatus(BaseModel):
    """Observed state of the placement, written by the operator."""

    model_config = _camel("ignore")

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the last evaluated spec."
    )
    phase: Phase | None = Field(default=None, description="Where the work runs now.")
    decision: DecisionStatus | None = Field(default=None, description="The latest decision.")
    original_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas to restore; set while the operator holds the Deployment "
        "scaled down, cleared once restored.",
    )
    batch: BatchStatus = Field(default_factory=BatchStatus, description="Batch path state.")
    async_: AsyncStatus = Field(
        default_factory=AsyncStatus, alias="async", description="Async path state."
    )
    learning: LearningStatus = Field(
        default_factory=LearningStatus,
        description="Batch efficiency and retry rate measured from finished Jobs.",
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} decisions that changed something, oldest first.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="Standard conditions."
    )


class WorkloadPlacement(BaseModel):
    """A whole WorkloadPlacement object, as in a manifest or an API response."""

    model_config = _spec("forbid") | ConfigDict(json_schema_extra=PLACEMENT_CEL)

    api_version: Literal["placement.runplacement.io/v1alpha1"] = Field(
        default="placement.runplacement.io/v1alpha1",
        description="placement.runplacement.io/v1alpha1.",
    )
    kind: Literal["WorkloadPlacement"] = Field(
        default="WorkloadPlacement", description="WorkloadPlacement."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Object metadata.")
    spec: WorkloadPlacementSpec = Field(description="Desired placement policy.")
    status: WorkloadPlacementStatus | None = Field(default=None, description="Observed state.")

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> WorkloadPlacement:
        if len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(NAME_TOO_LONG)
        return self

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))
