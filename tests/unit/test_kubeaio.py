"""The asynchronous Kubernetes adapter (kubeaio.AsyncKube) against a small stand-in API server:
reads come from the caches, writes are the requests, a conflicting hold makes the next read a
live one, refusals and conflicts mean what they mean for the synchronous adapter; and the
executor driven in an event loop carries out the same steps as the synchronous one."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes import client

from placement.adapters.kubeaio import AsyncKube
from placement.adapters.kubewatch import ClusterCaches, Connection
from placement.core.cluster import HoldConflict, Refused
from placement.core.executor import ask, drive_async, execute, execute_async
from placement.runtime.config import OperatorConfig
from placement.runtime.handlers import register
from tests.unit.fake_operator import FakeOperator
from tests.unit.test_kube_cached import deployment

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scenario = Callable[[AsyncKube, list[tuple[str, str, Any]]], Awaitable[None]]

DEPLOYMENT = "/apis/apps/v1/namespaces/ml/deployments/web"


def caches() -> ClusterCaches:
    made = ClusterCaches(client.Configuration(host="https://127.0.0.1:1"))
    made.deployments.replace([deployment("web", 5, 4)])
    made.jobs.replace([])
    made.hpas.replace([])
    made.scaled_objects.mark_absent("404")
    return made


def run(routes: dict[tuple[str, str], Handler], scenario: Scenario, timeout: float = 5.0) -> None:
    """`scenario` with an AsyncKube on a server answering `routes`; what it received is
    passed along as (method, path, JSON body)."""

    async def main() -> None:
        received: list[tuple[str, str, Any]] = []

        async def dispatch(request: web.Request) -> web.StreamResponse:
            text = await request.text()
            received.append((request.method, request.path, json.loads(text) if text else None))
            handler = routes.get((request.method, request.path))
            if handler is None:
                return web.json_response({"message": "not found"}, status=404)
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        connection = Connection(
            client.Configuration(host=f"http://127.0.0.1:{server.port}"), connections=2
        )
        kube = AsyncKube(connection, caches(), timeout=timeout)
        try:
            await scenario(kube, received)
        finally:
            await connection.close()
            await server.close()

    asyncio.run(main())


def answer(status: int, body: dict[str, Any]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


HOLD = {
    "replicas": 0,
    "original": 4,
    "placement": "p",
    "since": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    "baseline_utilization": 0.2,
}


def test_reads_make_no_request_and_a_hold_is_read_back_from_the_write() -> None:
    held = deployment("web", 9, 0, placement="p", managed_by="p", original_replicas="4")

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        web_state = await kube.read_deployment("ml", "web")
        assert web_state is not None and web_state.replicas == 4
        assert await kube.conflicting_autoscalers("ml", "web") == []
        assert await kube.placement_jobs("ml", "p") == []
        assert received == []
        await kube.scale_for_batch("ml", "web", resource_version="5", **HOLD)
        method, path, body = received[0]
        assert (method, path) == ("PATCH", DEPLOYMENT)
        # The precondition: the write is refused if the Deployment changed since it was read.
        assert body["metadata"]["resourceVersion"] == "5" and body["spec"] == {"replicas": 0}
        after = await kube.read_deployment("ml", "web")
        assert after is not None and after.replicas == 0 and after.managed_by == "p"
        assert [state.name for state in await kube.claimed_by("ml", "p")] == ["web"]
        assert len(received) == 1

    run({("PATCH", DEPLOYMENT): answer(200, held)}, scenario)


def test_a_conflicting_hold_raises_and_the_next_read_asks_the_api_server() -> None:
    newer = deployment("web", 12, 6)

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        with pytest.raises(HoldConflict):
            await kube.scale_for_batch("ml", "web", resource_version="5", **HOLD)
        fresh = await kube.read_deployment("ml", "web")
        assert fresh is not None and fresh.replicas == 6 and fresh.resource_version == "12"
        assert [m for m, _, _ in received] == ["PATCH", "GET"]
        await kube.read_deployment("ml", "web")  # from the cache again, now refreshed
        assert len(received) == 2

    run(
        {
            ("PATCH", DEPLOYMENT): answer(409, {"message": "the object has been modified"}),
            ("GET", DEPLOYMENT): answer(200, newer),
        },
        scenario,
    )


def test_jobs_created_once_and_refusals_say_what_the_api_server_said() -> None:
    jobs = "/apis/batch/v1/namespaces/ml/jobs"
    job = {"metadata": {"name": "p-1", "namespace": "ml", "labels": {}}}

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        assert await kube.create_job("ml", job) is False  # 409: that Job exists already
        with pytest.raises(Refused, match=r"422: Job\.batch is invalid"):
            await kube.create_job("ml", {**job, "invalid": True}, dry_run=True)

    async def create(request: web.Request) -> web.StreamResponse:
        if "invalid" in await request.json():
            return web.json_response({"message": "Job.batch is invalid"}, status=422)
        return web.json_response({"message": "exists"}, status=409)

    run({("POST", jobs): create}, scenario)


def test_whose_a_scaled_object_is_is_read_fresh_by_its_name() -> None:
    path = "/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects"
    label = "placement.runplacement.io/placement"
    queries: list[str] = []

    async def listed(request: web.Request) -> web.StreamResponse:
        queries.append(request.query.get("fieldSelector", ""))
        items = {
            "metadata.name=theirs": [{"metadata": {"name": "theirs", "labels": {label: "x"}}}],
            "metadata.name=unlabelled": [{"metadata": {"name": "unlabelled"}}],
        }.get(request.query.get("fieldSelector", ""), [])
        return web.json_response({"items": items})

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        assert await kube.scaled_object_placement("ml", "theirs") == "x"
        assert await kube.scaled_object_placement("ml", "unlabelled") == ""
        assert await kube.scaled_object_placement("ml", "none") is None

    run({("GET", path): listed}, scenario)
    assert queries == ["metadata.name=theirs", "metadata.name=unlabelled", "metadata.name=none"]


def test_the_hpa_keda_would_adopt_is_read_fresh_by_its_name_not_from_the_cache() -> None:
    path = "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers"
    keda = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "placement-p",
            "uid": "u", "controller": True}  # fmt: skip
    target = {"scaleTargetRef": {"kind": "Deployment", "name": "ledger"}}
    kedas = {"name": "keda-hpa-placement-p", "ownerReferences": [keda]}
    queries: list[str] = []

    async def listed(request: web.Request) -> web.StreamResponse:
        queries.append(request.query.get("fieldSelector", ""))
        items = {
            "metadata.name=keda-hpa-placement-p": [{"metadata": kedas, "spec": target}],
            "metadata.name=keda-hpa-placement-q": [
                {"metadata": {"name": "keda-hpa-placement-q"}, "spec": target}
            ],
        }.get(request.query.get("fieldSelector", ""), [])
        return web.json_response({"items": items})

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        assert await kube.cached_keda_hpa_taken("ml", "placement-q") is None  # not cached
        assert await kube.keda_hpa_taken("ml", "placement-p") is None  # KEDA's own
        assert await kube.keda_hpa_taken("ml", "placement-q") == (
            "HorizontalPodAutoscaler/keda-hpa-placement-q "
            "(scaling Deployment/ledger, not KEDA's for placement-q)"
        )
        assert await kube.keda_hpa_taken("ml", "placement-r") is None

    run({("GET", path): listed}, scenario)
    assert queries == [
        "metadata.name=keda-hpa-placement-p",
        "metadata.name=keda-hpa-placement-q",
        "metadata.name=keda-hpa-placement-r",
    ]


def test_a_scaled_object_is_created_by_a_post_and_one_that_exists_is_not_written_over() -> None:
    path = "/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects"
    manifest = {"metadata": {"name": "placement-p"}}
    answers = iter([(201, manifest), (409, {"reason": "AlreadyExists"}), (403, {"message": "no"})])

    async def created(request: web.Request) -> web.StreamResponse:
        status, body = next(answers)
        return web.json_response(body, status=status)

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        assert await kube.create_scaled_object("ml", manifest) is True
        assert await kube.create_scaled_object("ml", manifest) is False
        with pytest.raises(Refused, match="403"):
            await kube.create_scaled_object("ml", manifest)
        assert [m for m, _, _ in received] == ["POST"] * 3

    run({("POST", path): created}, scenario)


def test_a_status_write_answers_the_resource_version_it_made() -> None:
    """The daemon waits for a body that shows its own write before it evaluates again."""
    status = "/apis/placement.runplacement.io/v1alpha1/namespaces/ml/workloadplacements/p/status"

    async def patched(request: web.Request) -> web.StreamResponse:
        return web.json_response({"metadata": {"name": "p", "resourceVersion": "4711"}})

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        assert await kube.patch_placement_status("ml", "p", {"phase": "Batch"}) == "4711"
        assert received == [("PATCH", status, {"status": {"phase": "Batch"}})]

    run({("PATCH", status): patched}, scenario)


def test_a_status_no_json_can_carry_is_refused_before_any_request() -> None:
    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        with pytest.raises(ValueError):
            await kube.patch_placement_status("ml", "p", {"savingsPerDay": float("nan")})
        assert received == []

    run({}, scenario)


def test_a_stalled_api_server_times_out_instead_of_holding_the_evaluation() -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.json_response({})

    async def scenario(kube: AsyncKube, received: list[tuple[str, str, Any]]) -> None:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await kube.restore("ml", "web", replicas=4)
        assert asyncio.get_running_loop().time() - started < 5

    run({("PATCH", DEPLOYMENT): stall}, scenario, timeout=0.5)


class AwaitedCluster:
    """A synchronous cluster whose every method is a coroutine: what the loop sees."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.cluster, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # other evaluations run here
            return method(*args, **kwargs)

        return call


def test_the_event_loop_carries_out_the_same_steps_as_the_synchronous_executor() -> None:
    at = dt.datetime(2026, 3, 2, 1, 10, tzinfo=dt.UTC)  # in the example's window: it acts
    synchronous, awaited = FakeOperator(), FakeOperator()
    synchronous.settings = awaited.settings = synchronous.settings
    for operator in (synchronous, awaited):
        operator.manifest["spec"]["mode"] = "Enforce"
    expected = execute(
        synchronous.plan(at), synchronous.cluster, synchronous.effects,
        namespace="ml", placement=synchronous.name,
    )  # fmt: skip
    done = asyncio.run(
        execute_async(
            awaited.plan(at), AwaitedCluster(awaited.cluster), awaited.effects,
            namespace="ml", placement=awaited.name,
        )
    )  # fmt: skip
    assert expected.steps and done.steps == expected.steps
    assert awaited.cluster.deployments == synchronous.cluster.deployments
    assert awaited.reasons() == synchronous.reasons()


def test_an_exception_of_an_awaited_call_is_handled_where_the_call_was_made() -> None:
    def steps() -> Any:
        try:
            yield ask("fails")
        except Refused as refusal:
            return f"handled {refusal.detail}"
        return "not raised"

    class Failing:
        async def fails(self) -> None:
            raise Refused("403: forbidden")

    assert asyncio.run(drive_async(steps(), Failing())) == "handled 403: forbidden"


@pytest.mark.parametrize("peering", [None, "placement-operator"])
def test_every_handler_runs_in_the_event_loop_so_kopf_starts_no_thread_pool(
    peering: str | None,
) -> None:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorConfig(prometheus_url="http://127.0.0.1:9090", peering=peering))
    handlers = [
        handler
        for kind in (
            registry._activities,
            registry._spawning,
            registry._changing,
            registry._watching,
        )
        for handler in kind.get_all_handlers()
    ]
    ids = {handler.id for handler in handlers}
    assert "restore-on-delete" in ids
    # A kopf daemon per placement only with --peering (kopf stops it on a paused replica);
    # standalone, the scheduler evaluates every placement.
    assert ("reconcile" in ids) == (peering is not None)
    synchronous = [
        handler.id for handler in handlers if not inspect.iscoroutinefunction(handler.fn)
    ]
    assert synchronous == []
