"""Read a placement's metrics from Prometheus, with an explicit outcome for every way it fails.

The operator never scales on a number it does not trust, so each reading says what happened:
one value in range, or empty, several series, NaN, out of range, too large, an error, a timeout.
The URL is operator configuration, never a field of the WorkloadPlacement.

Every answer is bounded before it is parsed (`QueryLimits`: bytes of the body, read as a
stream, and series): one placement's PromQL cannot make the operator hold a whole TSDB.

Besides the instant readings, each placement's load history (`metrics.history` of demand, else
utilization) is one range query at a step that keeps it under 11,000 samples per series,
refreshed once per `history_refresh` (an hour), not every cycle: `history`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from requests import Response
from urllib3.util.retry import Retry

from placement.adapters import memoryonly
from placement.adapters.grouping import (
    NAMESPACE,
    Grouping,
    Series,
    group_query,
    is_namespace_name,
    split,
)
from placement.adapters.sharing import NamespaceBatches, RefreshedResults, SharedResults
from placement.core.backlog import CONFIRM_SPAN
from placement.core.observation import GridSamples, LoadHistory
from placement.core.observation import Outcome as Outcome
from placement.core.observation import Reading as Reading

# Prometheus drops a series from instant queries once its last sample is 5 minutes old.
STALENESS = timedelta(minutes=5)
_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def promql_duration(delta: timedelta) -> str:
    """A PromQL duration literal for a timedelta (whole seconds)."""
    seconds = max(1, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def averaged(expression: str, lookback: timedelta) -> str:
    """The expression averaged over the lookback, so one noisy scrape does not decide."""
    return f"avg_over_time(({expression})[{promql_duration(lookback)}:])"


HISTORY_STEP = timedelta(minutes=5)
# Prometheus refuses a range query of more points per series than this.
MAX_HISTORY_SAMPLES = 11_000
HISTORY_RETRY = 300.0  # seconds before a failed history read is tried again
HISTORY_KEEP = 86400.0  # seconds a history read stays in use while refreshes fail


def history_step(span: timedelta) -> timedelta:
    """5 minutes, or the whole minutes that keep `span` under MAX_HISTORY_SAMPLES samples."""
    needed = math.ceil(span.total_seconds() / (MAX_HISTORY_SAMPLES - 1) / 60) * 60
    return max(HISTORY_STEP, timedelta(seconds=needed))


def history_range(span: timedelta, now: datetime) -> tuple[datetime, datetime, timedelta]:
    """(start, end, step) of the history range query: aligned to whole steps, so every
    placement of a group and every refresh asks for the same instants."""
    step = history_step(span)
    seconds = step.total_seconds()
    end = datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, UTC)
    return end - span, end, step


class RangeQueryError(RuntimeError):
    """A range query that cannot become a replay series."""


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on one query's answer, checked before it is parsed. A placement's query needs
    one series; a shared query one per placement of its shape in one namespace."""

    max_series: int = 1000
    max_bytes: int = 1 << 20  # of the (decompressed) JSON body
    # A history range query answers thousands of samples per series (about 100 kB for 14
    # days at 5 minutes): its body has a bound of its own.
    max_history_bytes: int = 4 << 20
    # A query shared across namespaces answers one series per placement of its shape in its
    # batch: its bounds decide how many placements one query pair serves (a batch is packed
    # to 3/4 of them), so the queries per cycle stay the same up to about 15,000 placements
    # of a shape at the defaults. About 100 bytes a series: 8 MiB is room for longer labels.
    max_batch_series: int = 20_000
    max_batch_bytes: int = 8 << 20


class QueryFailed(Exception):
    """A query without a result: `outcome` and `detail` say why.

    `from_prometheus`: the detail is Prometheus's own words, which may quote label sets of the
    series the query touched."""

    def __init__(self, outcome: Outcome, detail: str, *, from_prometheus: bool = False) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.from_prometheus = from_prometheus

    def reading(self, name: str, query: str) -> Reading:
        return Reading(name, query, self.outcome, detail=self.detail)


Result = list[Series] | Reading  # an instant vector, or why there is none
T = TypeVar("T")
Fetch = Callable[[], Result]


def judge(
    name: str,
    expression: str,
    lookback: timedelta,
    upper: float | None,
    *,
    current: Fetch,
    over_lookback: Fetch,
) -> Reading:
    """One reading from the expression's current samples and its average over the lookback:
    a current sample proves freshness (Prometheus drops series 5 minutes after their last
    sample), the average is the value. Each is fetched only when needed."""
    query = averaged(expression, lookback)
    now = current()
    if isinstance(now, Reading):
        return now
    if not now:
        earlier = over_lookback()
        if isinstance(earlier, Reading):
            return earlier
        return Reading(
            name,
            query,
            Outcome.STALE if earlier else Outcome.EMPTY,
            detail=f"no sample of `{expression}` in the last {promql_duration(STALENESS)}"
            + (
                f", only older ones within the {promql_duration(lookback)} lookback"
                if earlier
                else ""
            ),
        )
    result = over_lookback()
    if isinstance(result, Reading):
        return result
    if not result:
        # Subquery steps align to their resolution: a series that has just started has a
        # current sample but no averaged one yet.
        return Reading(
            name,
            query,
            Outcome.EMPTY,
            detail=f"`{expression}` has samples but none averaged over the lookback yet",
        )
    return _single_value(name, query, result, upper)


class Metrics(Protocol):
    """What the handlers read; `reader` names the placement asking (batching shares results
    between readers, each reading a shared result once)."""

    def utilization(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Useful utilization of the realtime fleet: one number in [0, 1]."""
        ...

    def queue_depth(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Work waiting: one number >= 0."""
        ...

    def demand(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Work arriving per second, whatever the replica count: one number >= 0."""
        ...

    def requests(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Requests (or tokens) processed per second: one number >= 0."""
        ...

    def async_queue(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """The async queue's depth (or oldest item's age): one number >= 0."""
        ...

    def history(
        self, expression: str, span: timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        """`expression` over the past `span` (refreshed once per history refresh, not every
        cycle); None when it cannot be read: the forecast falls back to the lookback."""
        ...


@dataclass(frozen=True, slots=True)
class _Kept:
    """What is kept of one series of a history read until the next refresh."""

    hourly: GridSamples  # hour means: what the forecast learns from
    recent: GridSamples  # the newest hours at the step read (backlog confirms rises there)
    zero_share: float | None  # of the samples as read: the idle hours

    @classmethod
    def of(cls, samples: GridSamples, recent_from: float) -> _Kept:
        return cls(samples.hourly(), samples.since(recent_from), samples.zero_share())


@dataclass(frozen=True)
class _RangeAnswer:
    """A range query's series by key (the shared query's key labels; `()` for one
    placement's own query), each kept as hour means plus its newest hours as read: 14 days
    are about 3 KB a placement (at 5 minutes they were 32), and a series of a few hours (a
    new workload, a new Prometheus) a few hundred bytes."""

    start: float
    step: float
    points: int  # instants on the grid
    fetched_at: datetime
    members: Mapping[tuple[str, ...], list[_Kept]] = field(default_factory=dict)

    def history(self, key: tuple[str, ...], source: str) -> LoadHistory | None:
        """The member's history; its samples are the answer's own (no copy), so the
        forecast's digest of them is learned once per refresh, not per evaluation."""
        series = self.members.get(key)
        if not series or len(series) != 1:
            return None  # absent, or several series where the forecast needs one
        kept = series[0]
        if not kept.hourly:
            return None
        recent = LoadHistory(source, timedelta(seconds=self.step), kept.recent, self.fetched_at)
        return LoadHistory(
            source,
            timedelta(hours=1),
            kept.hourly,
            self.fetched_at,
            recent=recent,
            zero_share=kept.zero_share,
        )


def _on_grid(series: Series, start: float, step: float, points: int) -> GridSamples:
    """A range-query series on the grid; NaN, infinite and negative samples dropped
    (unusable as load)."""
    found: dict[int, float] = {}
    raw = series.get("values")
    for sample in raw if isinstance(raw, list) else ():
        try:
            moment, value = float(sample[0]), float(sample[1])
        except (TypeError, ValueError, IndexError):
            continue
        index = round((moment - start) / step)
        if 0 <= index < points and math.isfinite(value) and value >= 0:
            found[index] = value
    if not found:
        return GridSamples(start, step, array("d"))
    used = sorted(found)  # in time order already, as Prometheus answers: a linear pass
    first = used[0]
    kept = array("d", map(found.__getitem__, used))
    # Offsets only where the series has gaps: most have none (4 bytes a sample spared).
    offsets = None if len(used) == used[-1] - first + 1 else array("I", (i - first for i in used))
    return GridSamples(start + first * step, step, kept, offsets)


class _HistoryBusy(Exception):
    """Another history read holds the one slot past the timeout: try at the next evaluation."""


class MetricsReader:
    """Evaluates each placement's queries on their own against one Prometheus (the way KEDA
    does: queries grow with the number of placements)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        verify_tls: bool = True,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
        limits: QueryLimits | None = None,
        history_refresh: float = 3600.0,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        history_read: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """`headers` go with every query (a bearer token as Authorization, X-Scope-OrgID...);
        `ca_file` is the bundle that verifies an https Prometheus instead of the system's;
        `history_refresh`: seconds a load history is used before it is read again;
        `history_read` is told the outcome of each history range query (for telemetry)."""
        self.url = url
        self.timeout = timeout
        self.limits = limits or QueryLimits()
        self.wall_clock = wall_clock
        self.history_read = history_read
        # One history answer parsed at a time: one at the byte bound takes about 7x its size
        # while parsed, and every namespace's histories fall due at once after a start.
        self._history_slot = threading.BoundedSemaphore(1)
        # One instant answer decoded at a time, and made what is kept of it before the next
        # (`instant_kept`): decoded, an answer is about 8 times its body (a batch's 10,000
        # series 8 MB), and the reader threads, which take turns on the GIL anyway, each held
        # one at the bulk apply.
        self._decoding = threading.Lock()
        # The newest hours kept at the step read: the backlog's confirmation span, back from
        # an evaluation up to one refresh (and an hour) after the read.
        self.recent = CONFIRM_SPAN + timedelta(seconds=history_refresh, hours=1)
        self.histories: RefreshedResults[_RangeAnswer | QueryFailed] = RefreshedResults(
            refresh=history_refresh,
            retry=min(history_refresh, HISTORY_RETRY),
            keep=max(HISTORY_KEEP, 2 * history_refresh),
        )
        session = requests.Session()
        session.verify = (ca_file or True) if verify_tls else False
        # No client-side retries: the next evaluation cycle is the retry.
        self._client = PrometheusConnect(
            url=url,
            headers=dict(headers) if headers else None,
            auth=basic_auth,
            session=session,
            retry=Retry(total=0),
            timeout=timeout,
        )

    def __repr__(self) -> str:  # the client holds credentials: show only where it points
        return f"MetricsReader({_CREDENTIALS.sub('//', self.url)!r})"

    def utilization(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Useful utilization of the realtime fleet: one number in [0, 1]."""
        return self.read("utilization", expression, lookback, upper=1.0)

    def queue_depth(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        """Work waiting: one number >= 0."""
        return self.read("queueDepth", expression, lookback, upper=None)

    def demand(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self.read("demand", expression, lookback, upper=None)

    def requests(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self.read("requests", expression, lookback, upper=None)

    def async_queue(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self.read("async.queue", expression, lookback, upper=None)

    def history(
        self, expression: str, span: timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        """The placement's own range query, read once per refresh (keyed by namespace,
        query and range: a changed query is read at once)."""
        namespace = reader.partition("/")[0]
        answer = self.cached_history(
            ("own", namespace, expression, span), lambda: self.range_answer(expression, span, ())
        )
        if answer is None or isinstance(answer, QueryFailed):
            return None
        return answer.history((), source)

    def cached_history(
        self, key: tuple[object, ...], fetch: Callable[[], _RangeAnswer | QueryFailed]
    ) -> _RangeAnswer | QueryFailed | None:
        """The history cache's answer for `key`, fetched when due; what it holds already (or
        None) while another history read keeps the slot busy."""
        try:
            return self.histories.get(key, fetch, _transient)
        except _HistoryBusy:
            return self.histories.peek(key)

    def range_answer(
        self, query: str, span: timedelta, keys: tuple[str, ...]
    ) -> _RangeAnswer | QueryFailed:
        """As `_range_answer`, in the one history slot; raises _HistoryBusy when it stays
        taken for the timeout (the next evaluation tries again, nothing is cached)."""
        if not self._history_slot.acquire(timeout=self.timeout):
            raise _HistoryBusy
        try:
            return self._range_answer(query, span, keys)
        finally:
            self._history_slot.release()

    def _range_answer(
        self, query: str, span: timedelta, keys: tuple[str, ...]
    ) -> _RangeAnswer | QueryFailed:
        """`query` over the past `span`, its series split by `keys`, or why not (never
        raised: kept in the history cache without a traceback)."""
        fetched_at = self.wall_clock()
        start, end, step = history_range(span, fetched_at)
        try:
            result = self.range_series(query, start, end, step)
        except QueryFailed as failure:
            self.history_read(str(failure.outcome))
            return QueryFailed(
                failure.outcome, failure.detail, from_prometheus=failure.from_prometheus
            )
        self.history_read(str(Outcome.OK))
        first, seconds = start.timestamp(), step.total_seconds()
        points = round((end - start) / step) + 1
        recent_from = (end - self.recent).timestamp()
        members: dict[tuple[str, ...], list[_Kept]] = {}
        for key, series in split(result, keys).items():
            members[key] = [
                _Kept.of(_on_grid(one, first, seconds, points), recent_from) for one in series
            ]
        return _RangeAnswer(first, seconds, points, fetched_at, members)

    def range_series(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """The range-query (matrix) result of `query`, bounded as `instant` is, with the
        history's own byte bound; raises QueryFailed."""
        params = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        bound = (self.limits.max_history_bytes, "PLACEMENT_PROMETHEUS_MAX_HISTORY_BYTES")
        return self._bounded_get("query_range", params, bound, None, _as_is)

    def read(
        self, name: str, expression: str, lookback: timedelta, *, upper: float | None
    ) -> Reading:
        """One reading of `expression`: its own two queries."""
        return judge(
            name,
            expression,
            lookback,
            upper,
            current=lambda: self.query(name, expression),
            over_lookback=lambda: self.query(name, averaged(expression, lookback)),
        )

    def range_values(
        self, expression: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[datetime, float]]:
        """One series over [start, end] every `step` (a range query), for exporting history
        to replay. Bounded as the operator's history reads are (PLACEMENT_PROMETHEUS_MAX_SERIES
        and _MAX_HISTORY_BYTES): a long range or a query that matches every series of a busy
        Prometheus is refused before it is parsed. Raises RangeQueryError unless the query
        returns exactly one series."""
        try:
            result = self.range_series(expression, start, end, step)
        except QueryFailed as error:
            raise RangeQueryError(f"`{expression}`: {error.detail}") from error
        if len(result) != 1:
            raise RangeQueryError(
                f"`{expression}` returned {len(result)} series over the range; it must "
                "return exactly one (aggregate with sum() or avg())"
            )
        values = result[0].get("values")
        if not isinstance(values, list):
            raise RangeQueryError(f"`{expression}`: Prometheus answered with no values")
        points = []
        for moment, value in values:
            number = float(value)
            if not (math.isnan(number) or math.isinf(number)):
                points.append((datetime.fromtimestamp(float(moment), tz=UTC), number))
        return points

    def query(self, name: str, query: str) -> Result:
        """The instant-vector result of `query`, or the Reading that says why there is none."""
        try:
            return self.instant(query)
        except QueryFailed as failure:
            return failure.reading(name, query)

    def instant(self, query: str, *, across: bool = False) -> list[Series]:
        """The instant-vector result of `query` within `self.limits`; raises QueryFailed.
        `across`: a query shared across namespaces, within the batch bounds."""
        return self.instant_kept(query, _as_is, across=across)

    def instant_kept(
        self, query: str, keep: Callable[[list[Series]], T], *, across: bool = False
    ) -> T:
        """`keep` of the instant-vector result of `query` (as `instant`), made while no other
        answer is decoded: the whole decoded answer lives only in there.

        The request is the one `custom_query` sends, on the client's session with its headers,
        auth and TLS settings, but streamed: the body is read only up to the byte bound, and
        the series are counted before the JSON is parsed."""
        if across:
            bound = (self.limits.max_batch_bytes, "PLACEMENT_PROMETHEUS_MAX_BATCH_BYTES")
            series = (self.limits.max_batch_series, "PLACEMENT_PROMETHEUS_MAX_BATCH_SERIES")
        else:
            bound = (self.limits.max_bytes, "PLACEMENT_PROMETHEUS_MAX_BYTES")
            series = (self.limits.max_series, "PLACEMENT_PROMETHEUS_MAX_SERIES")
        return self._bounded_get("query", {"query": query}, bound, series, keep)

    def _bounded_get(
        self,
        endpoint: str,
        params: dict[str, str],
        bound: tuple[int, str],
        series: tuple[int, str] | None,
        keep: Callable[[list[Series]], T],
    ) -> T:
        """`bound`: the most bytes of the body, and the setting that says so; `series`: the
        most series (default: PLACEMENT_PROMETHEUS_MAX_SERIES); `keep`: what is made of the
        result while no other answer is decoded."""
        memoryonly.forbid_fetch()  # every cache refuses first; this is the last guard
        series = series or (self.limits.max_series, "PLACEMENT_PROMETHEUS_MAX_SERIES")
        client = self._client
        started = time.monotonic()
        try:
            response = client._session.request(
                method=client._method,
                url=f"{client.url}/api/v1/{endpoint}",
                params=params,
                verify=client._session.verify,
                headers=client.headers,
                auth=client.auth,
                cert=client._session.cert,
                timeout=self.timeout,
                stream=True,
            )
            with response:
                body = self._bounded_body(response, started, bound)
        except requests.RequestException as error:
            if _is_timeout(error):
                raise QueryFailed(Outcome.TIMEOUT, f"no answer in {self.timeout:g}s") from error
            raise QueryFailed(Outcome.ERROR, _short(error)) from error
        if response.status_code != 200:
            raise QueryFailed(
                Outcome.ERROR, _prometheus_error(response.status_code, body), from_prometheus=True
            )
        # In Prometheus's JSON `"metric":` opens each series and cannot occur inside a string
        # (a quote there is escaped): counted before anything is parsed.
        if body.count(b'"metric":') > series[0]:
            raise self._too_many_series(series)
        with self._decoding:
            return keep(self._decoded(body, series))

    def _decoded(self, body: bytearray, series: tuple[int, str]) -> list[Series]:
        try:
            result = json.loads(body)["data"]["result"]
        except (ValueError, KeyError, TypeError) as error:
            raise QueryFailed(Outcome.ERROR, "Prometheus answered with unreadable JSON") from error
        if not isinstance(result, list):
            raise QueryFailed(Outcome.ERROR, "Prometheus answered with no result list")
        if len(result) > series[0]:
            raise self._too_many_series(series)
        return result

    def _bounded_body(
        self, response: Response, started: float, bound: tuple[int, str]
    ) -> bytearray:
        most = bound[0]
        declared = response.headers.get("Content-Length", "")
        plain = response.headers.get("Content-Encoding") is None  # else the compressed size
        if plain and declared.isdigit() and int(declared) > most:
            raise self._too_many_bytes(bound)
        body = bytearray()
        for chunk in response.iter_content(chunk_size=16 * 1024):
            body += chunk
            if len(body) > most:
                raise self._too_many_bytes(bound)
            if time.monotonic() - started > self.timeout:
                raise QueryFailed(Outcome.TIMEOUT, f"no full answer in {self.timeout:g}s")
        return body  # not copied to bytes: one body fewer alive while it is decoded

    def _too_many_series(self, series: tuple[int, str] | None = None) -> QueryFailed:
        most, setting = series or (self.limits.max_series, "PLACEMENT_PROMETHEUS_MAX_SERIES")
        return QueryFailed(
            Outcome.TOO_LARGE,
            f"the answer has more than {most} series, the bound "
            f"({setting}); narrow the query, e.g. aggregate with sum()",
        )

    @staticmethod
    def _too_many_bytes(bound: tuple[int, str]) -> QueryFailed:
        most, setting = bound
        return QueryFailed(
            Outcome.TOO_LARGE,
            f"the answer is larger than {most} bytes, the bound ({setting}); narrow the "
            "query, e.g. aggregate with sum()",
        )


class _OwnQueryNeeded(Exception):
    """Prometheus refused a shared query in words that may quote other placements' series."""


class _BatchFailed(Exception):
    """A query shared across namespaces has no answer: ask as without batching across."""


Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Shares:
    """A shared answer as its placements read it, kept until the next (up to `max_age`).

    Kept whole, an answer was 830 bytes a series (the series' dict, its labels' dict and
    strings, the sample's list, number and text), where a placement reads one number and its
    time: at 10,000 placements 2.5 series each, 21 MB (docs/scaling.md, stop 23). Here a key's
    one series is its value as a number, when readable and stamped at the answer's
    evaluation time (an instant query stamps every sample with it), about 190 bytes with its
    key; a key of several series, or of an unreadable sample, keeps its series as answered
    (their labels and text are the words its placements get)."""

    moment: float  # the evaluation time of the answer's samples
    values: Mapping[Key, float | list[Series]]

    @classmethod
    def of(cls, members: Mapping[Key, list[Series]]) -> _Shares:
        moment = math.nan
        values: dict[Key, float | list[Series]] = {}
        for key, series in members.items():
            number = _number(series)
            if number is not None and math.isnan(moment):
                moment = number[0]
            values[key] = number[1] if number is not None and number[0] == moment else series
        return cls(moment, values)

    def __contains__(self, key: Key) -> bool:
        return key in self.values

    def series(self, key: Key) -> list[Series]:
        """The series of `key` as `judge` reads them: what the answer had for it."""
        found = self.values.get(key)
        if found is None:
            return []
        if isinstance(found, float):
            return [{"value": (self.moment, found)}]
        return found


def _number(series: list[Series]) -> tuple[float, float] | None:
    """(time, value) of a key's one series when `_single_value` reads both as numbers."""
    if len(series) != 1:
        return None
    sample = series[0].get("value")
    try:
        return float(sample[0]), float(sample[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class _Across:
    """The answer of a query shared across namespaces, split by namespace and key labels."""

    shares: _Shares
    # Namespaces whose share is over their own query's series bound
    # (PLACEMENT_PROMETHEUS_MAX_SERIES, below the batch's): they read their own query, over
    # the bound as without batching across, and ask alone from then on.
    over: frozenset[str]


class BatchedMetricsReader:
    """Placements whose queries share a shape (`grouping.group_query`) share one query per
    shape and cycle across the namespaces of a batch (`sharing.NamespaceBatches`), split by
    the namespace and the key labels; the rest are queried on their own.

    The result a placement gets is what its own query would return: the same series, judged by
    the same `judge`. A failure reaches it only in words about its own series: timeouts and
    bounds are shared as the operator words them; when Prometheus refuses a shared query, the
    placement asks its own query and reports that answer instead.

    Tenancy across namespaces: a placement reads the cross-namespace query only when its own
    query is restricted to its own namespace (the reader names it) and that namespace is a
    namespace name; it gets only the series whose namespace label is its namespace, which are
    the series of its namespace's own shared query (grouping.py says why). When the
    cross-namespace query fails for any reason (a bound, Prometheus's refusal, a timeout) it
    says nothing to anyone: every placement of the batch asks its namespace's shared query,
    as without batching across, and the batch is held off for a while, or halved when it was
    slow (`NamespaceBatches`),
    so one tenant's series can cost another at most that one failed query, never a reading."""

    def __init__(
        self,
        reader: MetricsReader,
        *,
        max_age: float,
        batches: NamespaceBatches | None = None,
        resized: Callable[[str], None] = lambda direction: None,
    ) -> None:
        self.reader = reader
        self.shared: SharedResults[_Shares | _Across | QueryFailed] = SharedResults(max_age=max_age)
        # Room for series that appear between two answers: a batch is packed to 3/4 of the bound.
        self.batches = batches or NamespaceBatches(
            capacity=max(1, reader.limits.max_batch_series * 3 // 4), resized=resized
        )
        # The shared answers' keys of each batch read across namespaces, so that the answers
        # of a batch packed anew are dropped at once, not kept until `max_age`: while new
        # namespaces join the last batch (a bulk apply), each join is a new batch and a new
        # answer of all its series, and at 2,000 placements the superseded answers were
        # 96,000 series, 48 a placement, against 4 read (bench/scale.py; docs/scaling.md).
        self._across_keys: dict[tuple[Hashable, tuple[str, ...]], set[str]] = {}
        self._packed = 0
        self._keys_guard = threading.Lock()

    def utilization(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._read("utilization", expression, lookback, 1.0, reader)

    def queue_depth(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._read("queueDepth", expression, lookback, None, reader)

    def demand(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._read("demand", expression, lookback, None, reader)

    def requests(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._read("requests", expression, lookback, None, reader)

    def async_queue(self, expression: str, lookback: timedelta, *, reader: str = "") -> Reading:
        return self._read("async.queue", expression, lookback, None, reader)

    def history(
        self, expression: str, span: timedelta, *, source: str, reader: str = ""
    ) -> LoadHistory | None:
        """One range query per shape, namespace and range, split by the key labels and
        refreshed once per history refresh for every placement of the group. When Prometheus
        refuses the shared query, or its answer exceeds the bounds (a namespace with many
        series of one shape), each placement reads its own once per refresh instead."""
        grouping = group_query(expression)
        if grouping is None:
            return self.reader.history(expression, span, source=source, reader=reader)
        answer = self.reader.cached_history(
            ("shared", grouping.namespace, grouping.query, span),
            lambda: self.reader.range_answer(grouping.query, span, grouping.keys),
        )
        if answer is None:
            return None
        if isinstance(answer, QueryFailed):
            if answer.from_prometheus or answer.outcome is Outcome.TOO_LARGE:
                return self.reader.history(expression, span, source=source, reader=reader)
            return None
        return answer.history(grouping.values, source)

    def _read(
        self, name: str, expression: str, lookback: timedelta, upper: float | None, reader: str
    ) -> Reading:
        grouping = group_query(expression)
        if grouping is None:
            return self.reader.read(name, expression, lookback, upper=upper)
        if _may_read_across(grouping, reader):
            batch = self.batches.batch(grouping.shape, grouping.namespace, grouping.values)
            if self.batches.packed != self._packed:
                self._drop_superseded()
            if len(batch) > 1:
                try:
                    return self._read_across(
                        name, expression, lookback, upper, reader, grouping, batch
                    )
                except _BatchFailed:
                    pass  # the namespace's own shared query, as without batching across
        return self._read_in_namespace(name, expression, lookback, upper, reader, grouping)

    def _read_across(
        self,
        name: str,
        expression: str,
        lookback: timedelta,
        upper: float | None,
        reader: str,
        grouping: Grouping,
        batch: tuple[str, ...],
    ) -> Reading:
        """The reading from the query shared by the namespaces of `batch`; raises _BatchFailed
        when that query has no answer (nothing of it is shown to anyone)."""
        keys = (NAMESPACE, *grouping.keys)
        own = (grouping.namespace, *grouping.values)

        def fetch(query: str) -> Result:
            def run() -> _Across | QueryFailed:
                with self._keys_guard:
                    self._across_keys.setdefault((grouping.shape, batch), set()).add(query)
                started = time.monotonic()
                try:
                    shares, per_namespace = self.reader.instant_kept(
                        query, functools.partial(_counted_shares, keys=keys), across=True
                    )
                except QueryFailed as failure:
                    if failure.outcome is Outcome.TIMEOUT:
                        self.batches.slow(grouping.shape, batch)
                    else:
                        self.batches.degraded(grouping.shape, batch)
                    return QueryFailed(failure.outcome, "")  # its words are nobody's
                share = (time.monotonic() - started) / self.reader.timeout
                if share > 1 / 2:
                    self.batches.slow(grouping.shape, batch)  # before it times out
                else:
                    self.batches.answered(grouping.shape, share)
                bound = self.reader.limits.max_series
                over = frozenset(n for n in batch if per_namespace[n] > bound)
                alone = self.batches.capacity + 1
                self.batches.counted(
                    grouping.shape, {n: alone if n in over else per_namespace[n] for n in batch}
                )
                return _Across(shares, over)

            answer, fetched = self.shared.get(query, reader, run)
            if (
                not fetched
                and isinstance(answer, _Across)
                and own not in answer.shares
                and grouping.namespace not in answer.over
            ):
                # A shared result from before this placement's series existed.
                answer, _ = self.shared.get(query, reader, run, refresh=True)
            if not isinstance(answer, _Across) or grouping.namespace in answer.over:
                raise _BatchFailed
            return answer.shares.series(own)

        query = grouping.across(batch)
        return judge(
            name,
            expression,
            lookback,
            upper,
            current=lambda: fetch(query),
            over_lookback=lambda: fetch(averaged(query, lookback)),
        )

    def _read_in_namespace(
        self,
        name: str,
        expression: str,
        lookback: timedelta,
        upper: float | None,
        reader: str,
        grouping: Grouping,
    ) -> Reading:
        def fetch(query: str, own: str) -> Result:
            def run() -> _Shares | QueryFailed:
                try:
                    shares, size = self.reader.instant_kept(
                        query, functools.partial(_sized_shares, keys=grouping.keys)
                    )
                except QueryFailed as failure:
                    if failure.outcome is Outcome.TOO_LARGE:
                        self._count(grouping, reader, self.batches.capacity + 1)
                    # Kept without its traceback, whose frames hold the refused body.
                    return QueryFailed(
                        failure.outcome, failure.detail, from_prometheus=failure.from_prometheus
                    )
                self._count(grouping, reader, size)
                return shares

            members, fetched = self.shared.get(query, reader, run)
            if not fetched and isinstance(members, _Shares) and grouping.values not in members:
                # A shared result from before this placement's series existed.
                members, _ = self.shared.get(query, reader, run, refresh=True)
            if isinstance(members, QueryFailed):
                if members.from_prometheus:
                    raise _OwnQueryNeeded
                return Reading(
                    name,
                    own,
                    members.outcome,
                    detail=f"{members.detail} (one query shared by the placements of this "
                    f"shape in namespace {grouping.namespace})"
                    if members.outcome is Outcome.TOO_LARGE
                    else members.detail,
                )
            assert isinstance(members, _Shares)  # a namespace's own query is never one across
            return members.series(grouping.values)

        try:
            return judge(
                name,
                expression,
                lookback,
                upper,
                current=lambda: fetch(grouping.query, expression),
                over_lookback=lambda: fetch(
                    averaged(grouping.query, lookback), averaged(expression, lookback)
                ),
            )
        except _OwnQueryNeeded:
            return self.reader.read(name, expression, lookback, upper=upper)

    def _drop_superseded(self) -> None:
        """Forget the shared answers of batches that are no longer packed so: nobody reads
        them again (a namespace reads its batch as packed now)."""
        with self._keys_guard:
            gone = [key for key in self._across_keys if not self.batches.planned(*key)]
            keys = [query for key in gone for query in self._across_keys.pop(key)]
            self._packed = self.batches.packed
        self.shared.drop(keys)

    def _count(self, grouping: Grouping, reader: str, series: int) -> None:
        """A namespace's own shared answer held `series` series: how its batch is packed."""
        if _may_read_across(grouping, reader):
            self.batches.counted(grouping.shape, {grouping.namespace: series})


def _may_read_across(grouping: Grouping, reader: str) -> bool:
    """Whether `reader` ("namespace/placement") may get its reading of `grouping` from a query
    across namespaces: its query reads its own namespace, a namespace name, and checked out
    in the cross-namespace form."""
    namespace, slash, _ = reader.partition("/")
    return (
        bool(slash and grouping.segments)
        and namespace == grouping.namespace
        and is_namespace_name(namespace)
    )


def _as_is(result: list[Series]) -> list[Series]:
    return result


def _counted_shares(result: list[Series], keys: tuple[str, ...]) -> tuple[_Shares, Counter[str]]:
    """What is kept of an answer across namespaces split by `keys` (the namespace first),
    and its series per namespace."""
    members = split(result, keys)
    counted: Counter[str] = Counter()
    for key, series in members.items():
        counted[key[0]] += len(series)
    return _Shares.of(members), counted


def _sized_shares(result: list[Series], keys: tuple[str, ...]) -> tuple[_Shares, int]:
    """What is kept of a namespace's shared answer split by `keys`, and its series."""
    return _Shares.of(split(result, keys)), len(result)


def _transient(answer: _RangeAnswer | QueryFailed) -> bool:
    """A failed history read worth retrying before the next refresh: not an answer over the
    bounds, which a few minutes do not shrink (and whose refusal is kept for the refresh)."""
    return isinstance(answer, QueryFailed) and answer.outcome is not Outcome.TOO_LARGE


def _single_value(name: str, query: str, result: list[Series], upper: float | None) -> Reading:
    if not result:
        return Reading(name, query, Outcome.EMPTY, detail="the query returned no series")
    if len(result) > 1:
        labels = ", ".join(str(series.get("metric", {})) for series in result[:3])
        return Reading(
            name,
            query,
            Outcome.SEVERAL_SERIES,
            detail=f"{len(result)} series ({labels}...); aggregate to one, e.g. with avg()",
        )
    sample = result[0].get("value")
    try:
        value = float(sample[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return Reading(name, query, Outcome.ERROR, detail=f"unreadable sample {sample!r}")
    if math.isnan(value) or math.isinf(value):
        return Reading(name, query, Outcome.NOT_A_NUMBER, detail=f"value is {value}")
    if value < 0 or (upper is not None and value > upper):
        bound = f"[0, {upper:g}]" if upper is not None else ">= 0"
        return Reading(
            name,
            query,
            Outcome.OUT_OF_RANGE,
            value=value,
            detail=f"{value:.4g} is outside {bound}",
        )
    return Reading(name, query, Outcome.OK, value=value, sampled_at=_sample_time(sample))


def _sample_time(sample: object) -> datetime | None:
    """The evaluation time Prometheus stamped on an instant sample `[time, "value"]`."""
    try:
        moment = float(sample[0])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    return datetime.fromtimestamp(moment, UTC) if math.isfinite(moment) else None


def _prometheus_error(status: int, body: bytes | bytearray) -> str:
    """Prometheus's errorType and error, or the start of a body that is not Prometheus's."""
    try:
        answer = json.loads(body)
        text = f"{answer['errorType']}: {answer['error']}"
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", errors="replace")
    return _short(Exception(f"HTTP {status} {text}"))


def _is_timeout(error: Exception) -> bool:
    # Without client retries, urllib3 reports a read timeout as MaxRetryError(reason=
    # ReadTimeoutError), which requests wraps in a ConnectionError, not a Timeout; a timeout
    # while the body streams is a ConnectionError of the ReadTimeoutError itself.
    if isinstance(error, requests.Timeout):
        return True
    cause = error.args[0] if error.args else None
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return True
    reason = getattr(cause, "reason", None)
    # NewConnectionError (refused) subclasses ConnectTimeoutError for old callers' sake.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(reason, urllib3.exceptions.TimeoutError)


def _short(error: Exception) -> str:
    # requests quotes the URL in its errors; user:password@ must not reach status or Events.
    text = _CREDENTIALS.sub("//", str(error))
    return text if len(text) <= 300 else text[:297] + "..."
