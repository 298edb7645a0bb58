"""kopf handlers: the runtime around one evaluation, which decides nothing itself.

Each evaluation: observe once (observe.py: Deployment, held Deployments, Jobs, autoscalers,
metrics) -> `reconcile()` (reconcile.py, pure: every decision, as a Plan of steps) ->
execute the steps in order (executor.py) -> write status. Every handler is a coroutine in
kopf's event loop (no thread pool): the cluster reads come from the watch caches, the writes
go through kubeaio's asynchronous client, and only the Prometheus reads (a synchronous
client) run on a few worker threads of their own. Status and the Deployment's
annotations are the whole state, so a restarted operator continues where the last one
stopped; the count to restore is read from the Deployment's hold annotation only (status
mirrors it).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import logging
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

import aiohttp
import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from placement.adapters import memoryonly
from placement.adapters.kube import api_message
from placement.adapters.kubeaio import AsyncKube
from placement.adapters.kubewatch import ClusterCaches, Connection
from placement.adapters.observe import claiming, observing
from placement.adapters.prometheus import BatchedMetricsReader, Metrics, MetricsReader, QueryLimits
from placement.adapters.telemetry import Telemetry
from placement.core.api import GROUP, PLURAL, VERSION, Mode
from placement.core.cluster import Cluster, Retry
from placement.core.executor import Blocking, Calls, ask, drive, drive_async, executing, releasing
from placement.core.jobpolicy import JobPodPolicy, ProtectedTargets
from placement.core.labels import FINALIZER
from placement.core.observation import DeploymentState
from placement.core.policy import Decision
from placement.core.reasons import EventType
from placement.core.reconcile import (
    Decided,
    Event,
    LogLine,
    Placement,
    Plan,
    Settings,
    admit,
    reconcile,
    release,
)
from placement.core.status import QUIET
from placement.runtime.config import OperatorConfig
from placement.runtime.diffbase import SpecDigestDiffBaseStorage
from placement.runtime.liveness import Liveness
from placement.runtime.memo import SPECS_REMEMBERED, AdmittedSpecs, SpecKey
from placement.runtime.scheduler import Scheduler, Tracked, key_of
from placement.runtime.slots import Slots

RESOURCE = (GROUP, VERSION, PLURAL)
EVENT_SOURCE = "placement-operator"
Clock = Callable[[], dt.datetime]
Logger = logging.Logger | logging.LoggerAdapter[Any]
# What an evaluation remembers of its placement: kopf's per-object memo (a daemon, with
# --peering) or the scheduler's Tracked (standalone).
Memory = kopf.Memo | Tracked
# The Event reason of a refused status write: an Event only, never in status (which could not
# be written), so it is not one of status.decision's reasons.
STATUS_WRITE_FAILED = "StatusWriteFailed"
# Lines that must not also become Events through kopf's per-object logger (their Event, if
# any, is posted once on purpose).
log = logging.getLogger(__name__)

# How often a namespaced operator started before its CRD looks again.
CRD_WAIT_SECONDS = 10.0


async def wait_until_placements_served(kube: AsyncKube) -> None:
    """Return once the API server serves WorkloadPlacements. In namespaced mode kopf cannot
    watch CRDs (no cluster-wide right) and looks for its resource only once, after the
    startup handlers: started before the CRD, it would never serve a placement. So it waits
    here, saying why, until the CRD is applied."""
    said = 0.0
    while True:
        try:
            if await kube.placements_served():
                return
            problem = "not served by the API server"
        except ApiException as error:
            problem = f"not known: discovery failed ({api_message(error)})"
        except (TimeoutError, aiohttp.ClientError) as error:
            problem = f"not known: discovery failed ({error!r})"
        if time.monotonic() - said >= 60.0:  # once a minute, not every look
            said = time.monotonic()
            log.error(
                "%s.%s/%s is %s: apply the CRD (kubectl apply --server-side -f crds/, or "
                "the chart with crds.install=true); waiting for it, looking every %g s",
                PLURAL, GROUP, VERSION, problem, CRD_WAIT_SECONDS,
            )  # fmt: skip
        await asyncio.sleep(CRD_WAIT_SECONDS)


# The handler that records a new placement's spec in kopf's finalizer patch.
RECORD_SPEC = "record-spec"
# How long the start waits for the first list of every watched kind before serving anyway.
CACHE_SYNC_SECONDS = 60.0


# A daemon woken this close before its placement's due time evaluates it.
DUE_SLACK = 0.001


def wake(memo: kopf.Memo) -> None:
    """Wake the placement's daemon (a no-op when it is not asleep): it looks at once whether
    the placement is due or its spec changed."""
    waiting: asyncio.Future[None] | None = getattr(memo, "wake", None)
    if waiting is not None and not waiting.done():
        waiting.set_result(None)


class PlacementGone(Exception):
    """The placement's status write found no placement (404): it was deleted unseen."""


class Daemons:
    """Each running daemon's memo by (namespace, placement): a Job of the placement that
    ends wakes it, so a failed night is acted on at once, not up to an evaluationInterval
    later. Used in the event loop only."""

    def __init__(self) -> None:
        self._memos: dict[tuple[str, str], kopf.Memo] = {}

    def started(self, key: tuple[str, str], memo: kopf.Memo) -> None:
        self._memos[key] = memo

    def ended(self, key: tuple[str, str], memo: kopf.Memo) -> None:
        if self._memos.get(key) is memo:  # not a successor's, started as this one stopped
            del self._memos[key]

    def job_ended(self, namespace: str, placement: str) -> None:
        memo = self._memos.get((namespace, placement))
        if memo is not None:
            memo.job_ended = True  # due at once, even if an evaluation is running now
            wake(memo)

    def __len__(self) -> int:
        return len(self._memos)


def awaits_finalizer(body: kopf.Body, *, new: bool = False) -> bool:
    """Whether the placement has no finalizer yet and waits for it: an Enforce placement always
    (it may change its Deployment, and nothing would give it back if it were deleted now); with
    `new` (never evaluated), any placement, so that its first status write does not land
    between kopf's read and kopf's patch of the finalizer, which is conditional on the
    resourceVersion it read: refused (422) and sent again (bench/scale.py, 324 of 2,000 with
    20 first evaluations at a time)."""
    metadata: Mapping[str, Any] = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    return (
        (new or spec.get("mode") == Mode.ENFORCE)
        and FINALIZER not in (metadata.get("finalizers") or ())
        and not metadata.get("deletionTimestamp")
    )


# How long an Enforce placement may wait for kopf's finalizer before a warning says why it is
# not evaluated (kopf adds it within a round trip; longer means kopf cannot, e.g. no RBAC).
FINALIZER_PATIENCE = 60.0


def _waits_for_finalizer(body: kopf.Body, memo: Memory, logger: Logger, now: float) -> float:
    """Seconds the placement is not evaluated yet for want of kopf's finalizer (0: it is not
    held back): an Enforce placement evaluated before it lands could scale its Deployment
    down, and a deletion then would leave it down; a new placement's first status write would
    race kopf's patch of it. A Recommend placement (it changes nothing) waits at most
    FINALIZER_PATIENCE. The event that brings the finalizer wakes it (`notice`, `unrecorded`):
    the seconds returned only bound the wait, no look before (at a bulk apply of 10,000 a
    look every tick of each placement waiting was most of the looks, see docs/scaling.md)."""
    new = getattr(memo, "evaluated_generation", None) is None
    if not awaits_finalizer(body, new=new):
        memo.awaits_finalizer = False
        # The wait is over: a finalizer taken off later starts a wait (and a warning) afresh.
        if getattr(memo, "awaiting_finalizer_since", None) is not None:
            memo.awaiting_finalizer_since = None
            memo.finalizer_warned = False
        return 0.0
    memo.awaits_finalizer = True
    since = getattr(memo, "awaiting_finalizer_since", None)
    if since is None:
        memo.awaiting_finalizer_since = since = now
    left = since + FINALIZER_PATIENCE - now
    if not awaits_finalizer(body):  # not Enforce: no warning, evaluated past its patience
        return max(0.0, left)
    if left > 0:
        return left
    _say_finalizer_missing(memo, logger, now - since)
    # Past the warning, a look each FINALIZER_PATIENCE in case no event comes with it.
    return FINALIZER_PATIENCE


def _say_finalizer_missing(memo: Memory, logger: Logger, waited: float) -> None:
    """Once, after FINALIZER_PATIENCE: a warning (kopf posts it as an Event) that the placement
    waits for its finalizer, so a placement kopf cannot finalize is not silently idle."""
    if not getattr(memo, "finalizer_warned", False):
        memo.finalizer_warned = True
        logger.warning(
            f"not evaluated for {waited:.0f}s: the finalizer {FINALIZER} is not on the "
            "placement yet, and an Enforce placement is evaluated only once it is (a deletion "
            "must give its Deployment back); check that the operator may patch placements"
        )


def finalizer_shown(body: kopf.Body, memo: Memory) -> bool:
    """Whether this event brings the finalizer the placement waits for (its look is due)."""
    if not getattr(memo, "awaits_finalizer", False):
        return False
    return FINALIZER in ((body.get("metadata") or {}).get("finalizers") or ())


# How long a daemon waits for the watch to bring the body with its own last status write
# before it evaluates the body it has. Evaluated on a body without it, the placement would
# decide and write the same again (at a bulk apply of 2,000 with 20 first evaluations at a
# time and `evaluationInterval: 1s`, 232 decisions twice). Woken by the event that shows it.
WRITE_PATIENCE = 10.0


def write_shown(body: kopf.Body, memo: Memory) -> bool:
    """Whether the body shows the placement's last status write (or nothing says it does not):
    its resourceVersion is the one that write returned or a later one. resourceVersions are
    etcd's revisions (integers) here; one that is not is compared for equality only."""
    written = getattr(memo, "written_version", None)
    if written is None:
        return True
    seen = str((body.get("metadata") or {}).get("resourceVersion"))
    try:
        shown = int(seen) >= int(written)
    except ValueError:
        shown = seen == written
    if shown:
        memo.written_version = None
    return bool(shown)


def _held_back(body: kopf.Body, memo: Memory, logger: Logger, now: float) -> float:
    """Seconds a due evaluation waits (0: none), woken before by the event that ends the wait
    (`notice`, `unrecorded`; no busy wait): for kopf's finalizer (kopf starts the daemon in
    the event cycle that sends it; the scheduler sees the placement's first event), and for
    its own last status write not in the body yet."""
    held = _waits_for_finalizer(body, memo, logger, now)
    if held > 0:
        return held
    left = _awaits_write(body, memo, now)
    if left > 0:
        memo.awaits_write = True
    return left


def _awaits_write(body: kopf.Body, memo: Memory, now: float) -> float:
    """Seconds the daemon still waits for its last status write to show in its body (0: it
    shows, or WRITE_PATIENCE has passed and the body it has is evaluated)."""
    if write_shown(body, memo):
        return 0.0
    left = getattr(memo, "written_at", now) + WRITE_PATIENCE - now
    if left <= 0:
        memo.written_version = None
        return 0.0
    return left


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kubernetes_configuration(kubeconfig: str | None = None) -> k8s.Configuration:
    """An explicit kubeconfig file; else in a pod its ServiceAccount; else KUBECONFIG or
    ~/.kube/config (as kopf does)."""
    configuration = k8s.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except ConfigException:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    return configuration


def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration our ApiClient uses."""
    # The kubernetes client keeps the token under "BearerToken" since v36, before that under
    # "authorization" (as kopf.login_via_client reads it).
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = str(header or "").partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def bounded_session(info: kopf.ConnectionInfo, *, connections: int) -> kopf.AiohttpSession:
    """kopf's own session with at most `connections` connections to the API server.

    kopf's default has no limit, so a bulk apply of 1,000 placements opened hundreds of TLS
    connections at once: 104 of the 253 MiB live at the operator's peak (memray)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        # kopf only calls the session's request, headers, closed and close.
        aiohttp_session=cast(aiohttp.ClientSession, QueueingSession(session)),
    )


class QueueingSession:
    """An aiohttp session whose requests wait for a free connection as long as it takes.

    kopf bounds each of its requests by a total timeout (`settings.networking.request_timeout`),
    and the total counts the wait for one of the capped connections. At a bulk apply of 2,000
    placements kopf's finalizer patches and Events waited there longer than the 10 s, timed
    out and were sent again, up to 8 times (bench/scale.py): 3,000 PATCHes more than
    placements, 2,100 of them refused with 422 (the first had gone through, the retry's test of
    the finalizers failed), 900 cancelled by the client (504), on an API server already the
    bottleneck. As for the operator's own requests (kubeaio), the bound is on connecting and
    on each read, which only the API server's slowness exceeds."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def request(
        self, method: str, url: str, *, timeout: aiohttp.ClientTimeout | None = None, **kw: Any
    ) -> Any:
        if timeout is not None and timeout.total is not None:
            bound = timeout.total
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=None,
                sock_connect=timeout.sock_connect or bound,
                sock_read=timeout.sock_read or bound,
            )
        if timeout is None:
            return self.session.request(method, url, **kw)
        return self.session.request(method, url, timeout=timeout, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def annotate(body: dict[str, Any], *, annotations: Mapping[str, str]) -> None:
    """A kopf patch function: set these annotations on the body (kopf diffs it into JSON-patch
    operations)."""
    body.setdefault("metadata", {}).setdefault("annotations", {}).update(annotations)


class _TimerSuccessesAtDebug(logging.Filter):
    """kopf logs "Handler 'record-spec' succeeded." at INFO for every new placement, and a
    timer's success at every tick of every placement (4,000 lines a minute at 1,000 placements
    when evaluations were timers); they become DEBUG lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if (
            record.levelno == logging.INFO
            and (message.startswith("Timer ") or message.startswith(f"Handler '{RECORD_SPEC}'"))
            and message.endswith(" succeeded.")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def quiet_timer_successes() -> None:
    objects = logging.getLogger("kopf.objects")  # the logger of kopf's handler outcomes
    if not any(isinstance(f, _TimerSuccessesAtDebug) for f in objects.filters):
        objects.addFilter(_TimerSuccessesAtDebug())


# Its complexity is the kopf handlers it defines (closures over the configuration), each small.
def register(  # noqa: C901
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    clock: Clock = utc_now,
    telemetry: Telemetry | None = None,
    daemons: Daemons | None = None,
    scheduler: Scheduler | None = None,
) -> Telemetry:
    """Attach every handler to `registry`, with intervals from `config`; returns the metrics
    the handlers record (serve them with `Telemetry.serve`). `daemons` (with --peering) or
    `scheduler` (standalone): what evaluates the placements, for whoever wakes them (the Job
    watch; a test)."""
    telemetry = telemetry or Telemetry()
    # Set once the cleanup starts closing the clients: an evaluation still running then fails
    # on a closed client, which is the shutdown, not an error to report with its traceback.
    closing = asyncio.Event()
    daemons = daemons if daemons is not None else Daemons()
    # Standalone, one scheduler evaluates every placement (scheduler.py: no kopf daemon per
    # placement, about 10 KB each). With --peering, kopf's daemon per placement: kopf stops
    # the daemons of a paused replica, and its pause is not seen from outside kopf.
    if config.peering is None:
        scheduler = scheduler if scheduler is not None else new_scheduler(config)
    else:
        scheduler = None
    protected = config.protected_targets()
    liveness = Liveness(config.stall_bound)
    job_history = (config.job_history_successful, config.job_history_failed)

    # A digest of the spec, not a copy: a large spec cannot make the placement undeletable.
    diffbase = SpecDigestDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")

    def unrecorded(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> bool:
        # kopf asks this of every event of a placement, so it also feeds the scheduler (or
        # wakes the placement's daemon) when the event brings a generation it has not
        # evaluated: a spec change the spec-changed handler does not see (e.g. one that
        # arrived before kopf recorded the spec) is not left until the next
        # evaluationInterval. No handler of its own: kopf's machinery for one more handler at
        # every event would cost more than the look.
        if scheduler is not None:
            notice(scheduler, body, type)
        elif getattr(memo, "evaluated_generation", None) != body.get("metadata", {}).get(
            "generation"
        ):
            wake(memo)
        elif getattr(memo, "awaits_write", False) and write_shown(body, memo):
            wake(memo)  # the event that brings its own status write: evaluate on it
        elif finalizer_shown(body, memo):
            wake(memo)  # the finalizer put back on a placement evaluated before
        return (
            type != "DELETED"
            and not body.metadata.get("deletionTimestamp")
            and diffbase.fetch(body=body) is None
        )

    # kopf writes a new placement twice before its first evaluation: its finalizer, then (on
    # the event that write causes) the spec it handled, each a request of its own. Recorded
    # here, on the first event, the spec goes out with the finalizer, and the next event finds
    # nothing changed. In the same request: kopf sends a patch's fields as a merge patch and
    # its functions (the finalizer's) as a JSON patch conditional on the resourceVersion it
    # had, so a record in the fields made two PATCHes, and the first evaluation's status
    # write, landing between them, failed the second (422) and made kopf send both again on
    # the next event: 3 PATCHes per placement, one refused (tests/integration/test_bulk_apply).
    # As a function, the record joins the finalizer's one conditional JSON patch.
    @kopf.on.event(*RESOURCE, id=RECORD_SPEC, when=unrecorded, registry=registry)
    async def record_spec(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        record = kopf.Patch()
        diffbase.store(body=body, patch=record, essence=diffbase.build(body=body))
        annotations = dict(record["metadata"]["annotations"])  # the record, kopf's marker
        patch.fns.append(functools.partial(annotate, annotations=annotations))

    @kopf.on.login(id="login", registry=registry)
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # A registry of our own starts empty: authenticate the way our ApiClient does.
        info: kopf.ConnectionInfo | None = (
            connection_info(kubernetes_configuration(config.kubeconfig))
            if config.kubeconfig
            else kopf.login_via_client(**kwargs)
        )
        if info is None:
            return None
        # Long-lived watches hold a connection each: one per watched resource and namespace.
        watches = 3 * max(1, len(config.namespaces))
        return bounded_session(info, connections=config.api_connections + watches)

    @kopf.on.startup(id="configure", registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Chosen once: changing the finalizer or the prefix later strands existing objects.
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = diffbase
        settings.posting.level = config.posting_level
        # `kubectl describe` shows "From: placement-operator, <pod>" (a pod's hostname is its
        # name), not kopf's defaults "kopf" and "dev".
        settings.posting.reporting_component = EVENT_SOURCE
        settings.posting.reporting_instance = socket.gethostname()
        quiet_timer_successes()
        configure_watching(settings, config)
        settings.peering.lifetime = config.peering_lifetime_seconds
        settings.peering.stealth = True  # no log line per keep-alive
        # kopf's own requests (patches, Events, peering) time out like ours; watches keep
        # their longer timeouts above.
        settings.networking.request_timeout = config.api_timeout_seconds
        if config.namespaces:
            # Namespaced mode has no cluster-wide read of CRDs (least privilege): do not
            # ask for it, instead of logging a 403 warning at every start.
            settings.scanning.disabled = True
        configuration = kubernetes_configuration(config.kubeconfig)
        # Deployments, Jobs and autoscalers from watches: an evaluation reads them from memory.
        memo.caches = ClusterCaches(
            configuration, config.namespaces, watch_timeout_seconds=config.watch_timeout_seconds
        )
        memo.caches.job_ended = daemons.job_ended if scheduler is None else scheduler.job_ended
        if scheduler is not None:
            scheduler.shared = memo
            scheduler.logger_for = functools.partial(kopf.ObjectLogger, settings=settings)
        memo.caches.start()
        if not await memo.caches.wait_synced(CACHE_SYNC_SECONDS):
            # Evaluations fail (and are retried) until they are: none decides on an empty cache.
            log.warning("watch caches not listed yet: %s", "; ".join(memo.caches.not_synced()))
        # The requests' own session, capped: the watches keep theirs.
        memo.kube = AsyncKube(
            Connection(configuration, connections=config.api_connections),
            memo.caches,
            telemetry,
            timeout=config.api_timeout_seconds,
        )
        if config.namespaces:
            await wait_until_placements_served(memo.kube)
        # The Prometheus client is synchronous: its requests run on these threads, never on
        # the loop; one per evaluation slot. Reads that memory answers (most of a steady
        # cycle's: shared answers) stay on the loop, which the trip to a thread cost more.
        # First evaluations (each ends in a status write, its slot held through the round
        # trip) as many at a time as connections to write with (slots.py).
        # Standalone, as many again for the writes the workers let go (Scheduler.let_go).
        first_slots = max(config.workers, config.api_connections)
        memo.evaluation_slots = Slots(
            config.workers,
            first_size=first_slots + (config.api_connections if scheduler is not None else 0),
        )
        memo.prometheus_threads = ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="prometheus"
        )
        loop = asyncio.get_running_loop()

        async def blocking(read: Callable[[], Any]) -> Any:
            answer = memoryonly.attempt(read)
            if answer is not memoryonly.GIVEN_UP:
                telemetry.read_from_memory(True)
                return answer
            telemetry.read_from_memory(False)
            return await loop.run_in_executor(memo.prometheus_threads, read)

        memo.blocking = blocking
        reader = MetricsReader(
            config.prometheus_url,
            timeout=config.prometheus_timeout_seconds,
            headers=config.prometheus_request_headers(),
            basic_auth=config.prometheus_basic_auth(),
            ca_file=config.prometheus_ca_file,
            limits=QueryLimits(
                config.prometheus_max_series,
                config.prometheus_max_bytes,
                config.prometheus_max_history_bytes,
                config.prometheus_max_batch_series,
                config.prometheus_max_batch_bytes,
            ),
            history_refresh=config.history_refresh_seconds,
            history_read=telemetry.history_read,
        )
        memo.metrics = (
            BatchedMetricsReader(
                reader,
                max_age=config.metrics_max_age_seconds,
                resized=telemetry.batches_resized,
            )
            if config.query_mode == "batched"
            else reader
        )

    @kopf.on.cleanup(id="close-clients", registry=registry)
    async def close_clients(memo: kopf.Memo, **_: Any) -> None:
        closing.set()
        if scheduler is not None:
            await scheduler.stop()  # its evaluations in flight first: they use the clients
        caches = getattr(memo, "caches", None)
        if caches is not None:
            await caches.stop()
        kube = getattr(memo, "kube", None)
        if kube is not None:
            await kube.connection.close()
        threads = getattr(memo, "prometheus_threads", None)
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)

    @kopf.on.update(*RESOURCE, id="spec-changed", field="spec", registry=registry)
    async def spec_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        tracked = scheduler.get(key_of(body)) if scheduler is not None else None
        if tracked is not None and scheduler is not None:
            tracked.next_evaluation = 0.0  # evaluate now, not after the interval
            scheduler.wake(tracked)
        elif scheduler is None:
            memo.next_evaluation = 0.0
            wake(memo)

    @kopf.on.probe(id="evaluations", registry=registry, errors=kopf.ErrorsMode.PERMANENT)
    async def evaluations(**_: Any) -> dict[str, int]:
        # Async: answered from the event loop even when every worker thread is stuck.
        problem = liveness.problem()
        if problem is not None:
            raise kopf.PermanentError(problem)  # /healthz answers 500
        return liveness.summary()

    async def reconcile_once(
        body: kopf.Body, memo: kopf.Memo, state: Memory, logger: Logger, *, first: bool
    ) -> float:
        """One evaluation and its status write; seconds until the placement is due again.
        `memo`: the operator's (clients, slots); `state`: the placement's."""
        # A few evaluations at a time: with all of them in the loop at once, kopf's own
        # requests waited behind a whole round of them and timed out (bench/scale.py). A spec
        # not evaluated yet goes before the re-evaluations (slots.py).
        async with memo.evaluation_slots.slot(first=first):
            key = f"{body.metadata.namespace}/{body.metadata.name}"
            liveness.started(key)
            completed = False
            try:
                with telemetry.reconciling():
                    patch = kopf.Patch()
                    interval = await evaluate_async(
                        body,
                        patch,
                        memo.kube,
                        memo.metrics,
                        clock(),
                        logger,
                        blocking=memo.blocking,
                        telemetry=telemetry,
                        scope_metrics=config.scope_metrics_to_namespace,
                        job_history=job_history,
                        job_pod_policy=config.job_pod_policy,
                        protected=protected,
                        keda_prometheus_url=config.keda_prometheus(),
                    )
                    # Standalone, a first evaluation lets its worker go for its status write
                    # (Scheduler.let_go), which was most of the time a worker was held at a
                    # bulk apply of 10,000 (docs/scaling.md, stop 21). It keeps its slot: no
                    # re-evaluation starts while first evaluations or their writes are out.
                    if "status" in patch and scheduler is not None and isinstance(state, Tracked):
                        await scheduler.let_go(state)
                    await write_status_async(body, patch, memo.kube, state, telemetry)
                completed = True
            finally:
                liveness.finished(key, ok=completed)
        return interval

    async def look(
        body: kopf.Body,
        memo: kopf.Memo,
        state: Memory,
        logger: Logger,
        *,
        woke: bool,
        stopped: Callable[[], bool],
    ) -> float | None:
        """One look at the placement: evaluate it if due (and not held back); seconds until the
        next look (None: stopped, no more). `woke`: a look after the first (counted by what it
        found)."""
        # A spec the last evaluation did not see is evaluated now: the spec-changed handler
        # alone can lose the race with an evaluation still running (its end would push the
        # next one a whole evaluationInterval away).
        generation = body.metadata.get("generation")
        unseen = generation != getattr(state, "evaluated_generation", None)
        now = time.monotonic()
        # Within a millisecond: the loop's timer may fire a hair before the due time.
        due = (
            unseen
            or getattr(state, "job_ended", False)
            or now >= getattr(state, "next_evaluation", 0.0) - DUE_SLACK
        )
        if woke:
            telemetry.woke[due].inc()
        state.awaits_write = False
        if not due:
            return float(getattr(state, "next_evaluation", 0.0) - now)
        held = _held_back(body, state, logger, now)
        if held > 0:
            return held
        state.job_ended = False  # a Job that ends from now on wakes it again
        return await evaluate_due(body, memo, state, logger, unseen=unseen, stopped=stopped)

    async def evaluate_due(
        body: kopf.Body,
        memo: kopf.Memo,
        state: Memory,
        logger: Logger,
        *,
        unseen: bool,
        stopped: Callable[[], bool],
    ) -> float | None:
        """Evaluate now; seconds until due again (a tick after a failure; None: stopped)."""
        generation = body.metadata.get("generation")  # before the body changes under it
        try:
            interval = await reconcile_once(body, memo, state, logger, first=unseen)
        except PlacementGone:
            gone(body, logger)
            return None
        except kopf.TemporaryError as error:
            # As kopf reported a timer's: on the placement's logger, an Event too.
            logger.error(f"Evaluation failed temporarily: {error}")
            return min(config.tick_seconds, error.delay or config.tick_seconds)
        except Exception as error:  # e.g. a request that timed out: a tick later
            if stopped() or closing.is_set():
                # Shutting down (or deleted): the clients close under the evaluations still
                # running; one traceback each was thousands at 10,000.
                logger.debug(f"Evaluation ended by the stop: {error!r}")
                return None
            logger.exception("Evaluation failed with an exception. Will retry.")
            return config.tick_seconds
        state.evaluated_generation = generation
        state.next_evaluation = time.monotonic() + interval
        return interval

    def gone(body: kopf.Body, logger: Logger) -> None:
        # Its deletion never reached the watch (a finalizer removed by hand, a re-list that
        # missed it): without this it was evaluated, and failed, every tick for good.
        logger.info("The placement is gone (its status write found nothing): no longer evaluated.")
        if scheduler is not None:
            scheduler.forget(key_of(body))
        forget_placement(body)

    def forget_placement(body: kopf.Body) -> None:
        ADMITTED.forget(str(body.metadata.uid))
        QUIET.forget(str(body.metadata.uid))
        telemetry.forget(str(body.metadata.namespace), str(body.metadata.name))

    if scheduler is not None:
        scheduler.step = functools.partial(scheduled_look, scheduler, look)
    else:
        register_daemon(registry, daemons, look)

    @kopf.on.delete(*RESOURCE, id="restore-on-delete", registry=registry)
    async def restore_on_delete(body: kopf.Body, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
        if scheduler is not None:  # (kopf stops a daemon before this)
            scheduler.forget(key_of(body))
            await scheduler.settled(key_of(body))  # no evaluation holds while it restores
        await drive_async(restoring(body, logger), memo.kube)
        forget_placement(body)

    return telemetry


# Placements per page of kopf's list of placements (its default: every placement in one
# answer). kopf lists again when its watch cannot resume (410 Gone: in 2 of 8 bench/scale.py
# runs at 500-2,000 placements, during the bulk apply), and the answer is decoded whole and
# kept until its last placement is queued: every body with its managedFields, about 20-47 KB
# each as Python objects (tracemalloc at 1,000: 20 MB), 200-470 MB at 10,000.
LIST_CHUNK = 500


def configure_watching(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    settings.watching.server_timeout = config.watch_timeout_seconds
    settings.watching.client_timeout = config.watch_timeout_seconds + 30
    settings.watching.chunk_size = LIST_CHUNK


def stop_waiter(stopped: kopf.DaemonStopped) -> asyncio.Future[Any]:
    """A future done when kopf stops the daemon. kopf's `stopped.wait()` waits for its
    stopper's asyncio event through two tasks and five coroutines, kept for the daemon's life:
    2.5 KB a placement, against 1 KB for one task waiting for the event itself (25 -> 10 MB
    at 10,000 placements). The event is kopf's private `_setter.async_event` (kopf 1.45);
    should a release rename it, kopf's own waiter is used."""
    event = getattr(getattr(stopped, "_setter", None), "async_event", None)
    if isinstance(event, asyncio.Event):
        return asyncio.ensure_future(event.wait())
    return asyncio.ensure_future(stopped.wait())


class Look(Protocol):
    """`register`'s look at one placement: evaluate it if due; seconds until the next look."""

    async def __call__(
        self,
        body: kopf.Body,
        memo: kopf.Memo,
        state: Memory,
        logger: Logger,
        *,
        woke: bool,
        stopped: Callable[[], bool],
    ) -> float | None: ...


def new_scheduler(config: OperatorConfig) -> Scheduler:
    # As many workers as evaluations may run at a time (slots.py): re-evaluations on a few.
    # First evaluations' status writes finish off their workers, as many at a time as there
    # are connections to write with.
    return Scheduler(
        workers=max(config.workers, config.api_connections),
        retry_seconds=config.tick_seconds,
        again_workers=config.workers,
        handoffs=config.api_connections,
    )


def notice(scheduler: Scheduler, body: kopf.Body, type: str | None) -> None:
    """A watch event of a placement, for the scheduler: its body is the latest; a deleted one
    (or one being deleted: kopf's finalizer handler restores it) is never evaluated again; a
    generation not evaluated yet, or the event of its own status write or of the finalizer it
    waits for, has it looked at now."""
    if type == "DELETED" or (body.get("metadata") or {}).get("deletionTimestamp"):
        scheduler.forget(key_of(body))
        return
    tracked = scheduler.track(body)
    scheduler.start()  # at the first event: in kopf's context for Events (Scheduler.start)
    if (
        tracked.unseen
        or (tracked.awaits_write and write_shown(body, tracked))
        or finalizer_shown(body, tracked)
    ):
        scheduler.wake(tracked)


async def scheduled_look(scheduler: Scheduler, look: Look, tracked: Tracked) -> float | None:
    """The scheduler's step: `look` at the placement's latest body, with a per-object logger
    made for this look (kopf's daemon kept one per placement)."""
    body = tracked.body
    woke, tracked.looked = tracked.looked, True
    logger_for = scheduler.logger_for
    logger: Logger = logger_for(body=body) if logger_for is not None else log
    return await look(
        body, scheduler.shared, tracked, logger, woke=woke, stopped=lambda: tracked.gone
    )


def register_daemon(registry: kopf.OperatorRegistry, daemons: Daemons, look: Look) -> None:
    """With --peering: kopf's daemon per placement, which kopf stops on a paused replica."""

    # One coroutine per placement for its lifetime, asleep until its placement is due (was a
    # kopf timer: kopf's handler machinery at every tick of every placement). kopf starts and
    # stops it with the placement (deletion, peering pauses, shutdown), and its `body` is the
    # live one, updated by every watch event.
    @kopf.daemon(*RESOURCE, id="reconcile", registry=registry)
    async def reconcile(
        body: kopf.Body,
        memo: kopf.Memo,
        logger: Logger,
        stopped: kopf.DaemonStopped,
        **_: Any,
    ) -> None:
        # One waiter for the stop for the daemon's life: kopf's `stopped.wait(delay)` makes two
        # tasks and cancels one at every wait.
        until_stopped = stop_waiter(stopped)
        key = (str(body.metadata.namespace), str(body.metadata.name))
        daemons.started(key, memo)
        try:
            await _watch(look, body, memo, logger, stopped, until_stopped)
        finally:
            until_stopped.cancel()
            daemons.ended(key, memo)


async def _watch(
    look: Look,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: Logger,
    stopped: kopf.DaemonStopped,
    until_stopped: asyncio.Future[Any],
) -> None:
    """Look at the placement, then sleep until the next look, a spec change (`wake`), a
    failed evaluation's retry (a tick later) or the stop, whichever comes first."""
    loop = asyncio.get_running_loop()
    woke = False
    while not stopped:
        waiting = getattr(memo, "wake", None)
        if waiting is None or waiting.done():  # resolved by `wake`: a new one for the next
            memo.wake = waiting = loop.create_future()
        delay = await look(body, memo, memo, logger, woke=woke, stopped=lambda: bool(stopped))
        if delay is None:
            break
        woke = True
        await asyncio.wait(
            (until_stopped, waiting),
            timeout=max(0.0, delay),
            return_when=asyncio.FIRST_COMPLETED,
        )


# -- one evaluation -----------------------------------------------------------------------


def evaluate(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: Cluster,
    metrics: Metrics,
    now: dt.datetime,
    logger: Logger,
    *,
    telemetry: Telemetry | None = None,
    scope_metrics: bool = True,
    job_pod_policy: JobPodPolicy | None = None,
    protected: ProtectedTargets | None = None,
    job_history: tuple[int, int] = (3, 1),
    keda_prometheus_url: str = "",
) -> float:
    """Evaluate one placement: observe once, reconcile (every decision), execute the plan,
    and leave its status in `patch` (for `write_status`); return seconds until it is due
    again. `job_history`: succeeded and failed Jobs kept."""
    return drive(
        evaluating(
            body,
            patch,
            now,
            logger,
            telemetry=telemetry,
            scope_metrics=scope_metrics,
            job_pod_policy=job_pod_policy,
            protected=protected,
            job_history=job_history,
            keda_prometheus_url=keda_prometheus_url,
        ),
        kube,
        metrics,
    )


async def evaluate_async(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: AsyncKube,
    metrics: Metrics,
    now: dt.datetime,
    logger: Logger,
    *,
    blocking: Blocking,
    **options: Any,
) -> float:
    """`evaluate` in the event loop: the cluster's calls awaited, the metrics reads through
    `blocking` (worker threads)."""
    return await drive_async(
        evaluating(body, patch, now, logger, **options), kube, metrics, blocking=blocking
    )


def evaluating(
    body: kopf.Body,
    patch: kopf.Patch,
    now: dt.datetime,
    logger: Logger,
    *,
    telemetry: Telemetry | None = None,
    scope_metrics: bool = True,
    job_pod_policy: JobPodPolicy | None = None,
    protected: ProtectedTargets | None = None,
    job_history: tuple[int, int] = (3, 1),
    keda_prometheus_url: str = "",
) -> Calls[float]:
    """`evaluate`, as the calls it makes."""
    telemetry = telemetry or Telemetry()
    settings = Settings(
        scope_metrics=scope_metrics,
        job_pod_policy=job_pod_policy or JobPodPolicy(),
        protected=protected or ProtectedTargets(),
        job_history=job_history,
        keda_prometheus_url=keda_prometheus_url,
    )
    placement = placement_of(body)
    spec_key = _spec_key(body, scope_metrics)
    admitted = ADMITTED.get(spec_key)
    plan = admit(placement, settings, now, validated=admitted)
    if not isinstance(plan, Plan):
        spec = plan
        if admitted is None:
            ADMITTED.remember(spec_key, spec)
        observation = yield from observing(
            spec, namespace=placement.namespace, placement=placement.name, telemetry=telemetry
        )
        plan = reconcile(placement, spec, observation, now, settings)
    effects = KopfEffects(body, logger, telemetry)
    try:
        executed = yield from executing(
            plan, effects, namespace=placement.namespace, placement=placement.name
        )
    except Retry as retry:
        raise kopf.TemporaryError(str(retry), delay=1) from retry
    for key, value in (executed.report.status or {}).items():
        patch.status[key] = value
    return plan.interval


# The admitted (validated, scoped) spec per placement and generation: validating and scoping
# the spec was a fifth of an evaluation's CPU (bench/evaluate.py), and a spec only changes
# with the generation. One entry per placement, dropped at its deletion.
ADMITTED = AdmittedSpecs(SPECS_REMEMBERED)


def _spec_key(body: kopf.Body, scope_metrics: bool) -> SpecKey | None:
    metadata: Mapping[str, Any] = body.get("metadata") or {}  # the raw dict, as placement_of
    uid, generation = metadata.get("uid"), metadata.get("generation")
    if not uid or generation is None:
        return None  # nothing says the spec is the one remembered
    return (uid, generation, scope_metrics)


def placement_of(body: kopf.Body) -> Placement:
    """The placement as kopf read it."""
    # The body's own dicts: each key read through kopf's views resolves its path again (a
    # twentieth of a steady evaluation's CPU went into copying the spec that way).
    metadata: Mapping[str, Any] = body.get("metadata") or {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    assert name is not None and namespace is not None
    return Placement(
        name=name,
        namespace=namespace,
        generation=metadata.get("generation"),
        spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
        uid=metadata.get("uid"),
        resource_version=metadata.get("resourceVersion"),
    )


class KopfEffects:
    """Events through kopf (on the placement), log lines on kopf's per-object logger or the
    module's, metrics through Telemetry."""

    def __init__(self, body: kopf.Body, logger: Logger, telemetry: Telemetry | None) -> None:
        self.body = body
        self.logger = logger
        self.telemetry = telemetry

    def post(self, event: Event) -> None:
        kopf.event(self.body, type=str(event.type), reason=str(event.reason), message=event.message)

    def log(self, line: LogLine) -> None:
        (self.logger if line.on_placement else log).log(line.level, line.message)

    def own(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        owned = copy.deepcopy(dict(manifest))
        kopf.adopt(owned, owner=self.body)  # the Job goes when its placement goes
        return owned

    def decided(self, decided: Decided) -> None:
        if self.telemetry is None:
            return
        metadata: Mapping[str, Any] = self.body.get("metadata") or {}  # not kopf's views
        self.telemetry.decided(
            str(metadata.get("namespace")),
            str(metadata.get("name")),
            action=decided.action,
            reason=str(decided.reason),
            savings=decided.savings,
            currency=decided.currency,
            phase=None if decided.phase is None else str(decided.phase),
        )

    def log_decision(self, decision: Decision, deployment: DeploymentState | None) -> None:
        log_decision(self.logger, decision, deployment)


def log_decision(logger: Logger, decision: Decision, deployment: DeploymentState | None) -> None:
    """One line per decision change: key=value in text logs, the same fields under
    `decision` in JSON logs. Not posted as an Event (the decision has its own)."""
    fields = {
        "reason": str(decision.reason),
        "phase": str(decision.phase),
        "action": str(decision.action),
        "savingsPerDay": decision.savings_per_day,
        "replicas": None if deployment is None else deployment.replicas,
        "desiredReplicas": decision.desired_replicas,
        "actuate": decision.actuate,
    }
    logger.info(
        "decision %s",
        " ".join(f"{key}={value}" for key, value in fields.items()),
        extra={"decision": fields, "k8s_skip": True},
    )


def write_status(
    body: kopf.Body,
    patch: kopf.Patch,
    kube: Cluster,
    memo: Memory,
    telemetry: Telemetry,
) -> None:
    """Write the status the evaluation put in `patch`, ourselves rather than through kopf.

    kopf applies a timer's patch after the handler and, when the API server refuses it (a
    422, a NaN that is no JSON), ends that placement's timer without a word. Here a refusal
    is reported (Warning Event once per message, a log line, a metric) and the placement is
    evaluated again at its next turn. Transient errors (5xx, 429, timeouts) raise, and kopf
    retries at the next tick."""
    drive(writing_status(body, patch, memo, telemetry), kube)


async def write_status_async(
    body: kopf.Body, patch: kopf.Patch, kube: AsyncKube, memo: Memory, telemetry: Telemetry
) -> None:
    await drive_async(writing_status(body, patch, memo, telemetry), kube)


def writing_status(
    body: kopf.Body, patch: kopf.Patch, memo: Memory, telemetry: Telemetry
) -> Calls[None]:
    """`write_status`, as the call it makes."""
    status = patch.pop("status", None)
    if not status:
        return
    name, namespace = str(body.metadata.name), str(body.metadata.namespace)
    try:
        # kubeaio answers the resourceVersion the write made (the synchronous adapter None).
        written = yield ask("patch_placement_status", namespace, name, dict(status))
    except ApiException as error:
        if error.status is None or error.status >= 500 or error.status in (409, 429):
            raise
        if error.status == 404:
            raise PlacementGone(f"{namespace}/{name}") from error
        code, detail = str(error.status), api_message(error)
    except (TypeError, ValueError) as error:
        code, detail = "unserializable", str(error)[:500]
    else:
        memo.status_write_failure = None
        # The next evaluation waits for the body that shows this write (`write_shown`).
        memo.written_version = written if isinstance(written, str) else None
        memo.written_at = time.monotonic()
        return
    telemetry.status_write_failed(code)
    message = (
        f"status could not be written ({code}: {detail}); the placement is still evaluated "
        "and acts on its decisions, but status shows an older one"
    )
    log.error("%s/%s: %s", namespace, name, message)
    if getattr(memo, "status_write_failure", None) != message:
        kopf.event(body, type=str(EventType.WARNING), reason=STATUS_WRITE_FAILED, message=message)
        memo.status_write_failure = message


# -- deletion and retargeting --------------------------------------------------------------


def restore_for_deletion(body: kopf.Body, kube: Cluster, logger: Logger) -> None:
    """Give back every Deployment this placement holds before the finalizer lets it go
    (reconcile.release decides how)."""
    drive(restoring(body, logger), kube)


def restoring(body: kopf.Body, logger: Logger) -> Calls[tuple[str, ...]]:
    """`restore_for_deletion`, as the calls it makes."""
    placement = placement_of(body)
    target = (placement.spec.get("target") or {}).get("deployment")
    deployment = (yield ask("read_deployment", placement.namespace, target)) if target else None
    claimed = yield from claiming(placement.namespace, placement.name, deployment)
    steps = release(placement, claimed)
    effects = KopfEffects(body, logger, None)
    return (yield from releasing(steps, effects, namespace=placement.namespace))
