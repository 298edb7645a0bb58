"""The operator's evaluation loop without kopf: admit, observe, reconcile, execute, write
status, against the in-memory FakeCluster and a scripted Metrics."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from placement.adapters.fakecluster import FakeCluster
from placement.adapters.observe import claimed_by, observe
from placement.core.executor import Executed, execute, release
from placement.core.observation import (
    DeploymentState,
    LoadHistory,
    Observation,
    Outcome,
    Reading,
    ScaledObjectState,
)
from placement.core.policy import Decision
from placement.core.reconcile import (
    Decided,
    Event,
    LogLine,
    Placement,
    Plan,
    Settings,
    admit,
    reconcile,
)
from placement.core.reconcile import release as release_plan
from placement.core.scaledobject import scaled_object_name
from tests.unit.factories import EXAMPLE_UTILIZATION, example_manifest

NAMESPACE = "ml"


@dataclass
class ScriptedMetrics:
    """Prometheus as the test wants it: a value sampled `age` ago, or a failed outcome."""

    value: float = EXAMPLE_UTILIZATION
    outcome: Outcome = Outcome.OK
    age: timedelta = timedelta(0)
    now: datetime | None = None

    def utilization(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        if self.outcome is not Outcome.OK:
            return Reading("utilization", expression, self.outcome, detail="connection refused")
        sampled = None if self.now is None else self.now - self.age
        return Reading("utilization", expression, Outcome.OK, self.value, sampled_at=sampled)

    def queue_depth(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return Reading("queueDepth", expression, Outcome.EMPTY, detail="no series")

    def demand(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return Reading("demand", expression, Outcome.EMPTY, detail="no series")

    def requests(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return Reading("requests", expression, Outcome.EMPTY, detail="no series")

    def async_queue(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return Reading("async.queue", expression, Outcome.EMPTY, detail="no series")

    def history(
        self, expression: str, span: timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        return None


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    decisions: list[Decided] = field(default_factory=list)

    def post(self, event: Event) -> None:
        self.events.append(event)

    def log(self, line: LogLine) -> None:
        self.logs.append(line)

    def own(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(manifest))

    def decided(self, decided: Decided) -> None:
        self.decisions.append(decided)

    def log_decision(self, decision: Decision, deployment: DeploymentState | None) -> None:
        pass


@dataclass
class FakeOperator:
    """One placement (the example's, on deployment/summarizer with 4 replicas)."""

    cluster: FakeCluster = field(default_factory=FakeCluster)
    metrics: ScriptedMetrics = field(default_factory=ScriptedMetrics)
    settings: Settings = field(default_factory=lambda: Settings(scope_metrics=False))
    manifest: dict[str, Any] = field(default_factory=example_manifest)
    effects: Recorder = field(default_factory=Recorder)
    generation: int = 1

    def __post_init__(self) -> None:
        self.name = self.manifest["metadata"]["name"]
        self.cluster.placements.add(self.name)
        if "summarizer" not in self.cluster.deployments:
            self.cluster.add("summarizer", 4)

    @property
    def status(self) -> dict[str, Any]:
        return self.cluster.statuses.setdefault(self.name, {})

    def placement(self) -> Placement:
        return Placement(
            self.name, NAMESPACE, self.generation, self.manifest["spec"], dict(self.status)
        )

    def change_spec(self, path: str, value: Any) -> None:
        *parents, leaf = path.split(".")
        node = self.manifest["spec"]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
        self.generation += 1

    def plan(self, now: datetime) -> Plan:
        self.metrics.now = now
        placement = self.placement()
        admitted = admit(placement, self.settings, now)
        if isinstance(admitted, Plan):
            return admitted
        observation = observe(
            self.cluster, self.metrics, admitted, namespace=NAMESPACE, placement=self.name
        )
        return reconcile(placement, admitted, observation, now, self.settings)

    def evaluate(self, now: datetime) -> Executed:
        executed = execute(
            self.plan(now), self.cluster, self.effects, namespace=NAMESPACE, placement=self.name
        )
        if executed.report.status:
            self.cluster.patch_placement_status(NAMESPACE, self.name, executed.report.status)
        return executed

    def delete(self) -> tuple[str, ...]:
        placement = self.placement()
        target = self.cluster.read_deployment(NAMESPACE, "summarizer")
        claimed = claimed_by(self.cluster, NAMESPACE, self.name, target)
        return release(
            release_plan(placement, claimed), self.cluster, self.effects, namespace=NAMESPACE
        )

    def reasons(self) -> list[str]:
        return [str(event.reason) for event in self.effects.events]


ASYNC_QUERY = 'sum(queue_depth{queue="summarize"})'


@dataclass
class AsyncOperator(FakeOperator):
    """The fake operator with what the metrics and KEDA adapters add to the observation."""

    queue: Reading | None = None
    keda_installed: bool | None = True
    requests: float | None = 2.0

    def plan(self, now: datetime) -> Plan:
        self.metrics.now = now
        placement = self.placement()
        admitted = admit(placement, self.settings, now)
        if isinstance(admitted, Plan):
            return admitted
        observation = observe(
            self.cluster, self.metrics, admitted, namespace=NAMESPACE, placement=self.name
        )
        return reconcile(
            placement, admitted, self._with_async(observation, now), now, self.settings
        )

    def _with_async(self, observation: Observation, now: datetime) -> Observation:
        queue = self.queue or Reading("async.queue", ASYNC_QUERY, Outcome.OK, 12.0, sampled_at=now)
        manifest = self.cluster.scaled_objects.get(scaled_object_name(self.name))
        scaled = None
        # Only ours, by its label, as the adapters read it: one of that name is not enough.
        if self.cluster.scaled_object_placement(NAMESPACE, scaled_object_name(self.name)) == (
            self.name
        ):
            assert manifest is not None
            spec = manifest["spec"]
            scaled = ScaledObjectState(
                name=scaled_object_name(self.name),
                deployment=spec["scaleTargetRef"]["name"],
                min_replicas=spec["minReplicaCount"],
                max_replicas=spec["maxReplicaCount"],
            )
        requests = (
            None
            if self.requests is None
            else Reading("requests", "", Outcome.OK, self.requests, sampled_at=now)
        )
        return replace(
            observation,
            async_queue=queue,
            keda_installed=self.keda_installed,
            scaled_object=scaled,
            requests=requests,
        )
