"""Cost per request: total compute cost over the requests (or tokens) processed. Pure.

    measured now = current replicas * realtimeReplicaHourly / (requests/s * 3600) * per
    forecast     = (replicas * realtimeReplicaHourly * 24 - the mode's savings per day)
                   / (requests/s * 86400) * per

`per` is 1,000 for metrics.requestsUnit Requests and 1,000,000 for Tokens. The forecast is
for the mode the decision chose (or recommends): realtime saves nothing, batch and async
their savings per day, so it carries every term of their formulas (Jobs, staging, queue,
operations). It assumes the rate measured now holds all day, as the savings do. While held
in batch the rate counts only what the warm replicas serve now, the Jobs' work not at all:
both figures then describe the warm fleet, and are left out when it serves nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from placement.core.api import CostsSpec, Phase
from placement.core.costs import HOURS_PER_DAY

SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class CostPerRequest:
    unit: str  # "1,000 requests" or "1M tokens"
    per: int  # 1000 or 1_000_000
    requests_per_second: float
    measured: float | None  # now, from the replicas running now
    forecast: float | None  # for `mode`, over a day
    mode: Phase  # Realtime, Batch or Async: what the forecast is for

    def format(self, currency: str) -> str:
        """'cost per 1,000 requests 0.0712 USD now, 0.0284 USD in Async'."""
        now = "unknown" if self.measured is None else f"{_figure(self.measured)} {currency}"
        text = f"cost per {self.unit} {now} now"
        if self.forecast is not None:
            text += f", {_figure(self.forecast)} {currency} in {self.mode}"
        return text

    def rounded(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "requestsPerSecond": _significant(self.requests_per_second),
            "measured": None if self.measured is None else _significant(self.measured),
            "forecast": None if self.forecast is None else _significant(self.forecast),
            "mode": str(self.mode),
        }


def _figure(value: float) -> str:
    return f"{value:.4g}"


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


def unit_of(requests_unit: str) -> tuple[str, int]:
    if requests_unit == "Tokens":
        return "1M tokens", 1_000_000
    return "1,000 requests", 1000


def cost_per_request(
    costs: CostsSpec,
    *,
    requests_unit: str,
    requests_per_second: float | None,
    current_replicas: int | None,
    replicas: int | None,
    mode: Phase,
    savings_per_day: float | None,
) -> CostPerRequest | None:
    """None without a usable rate (not configured, failed, not a number, negative)."""
    if requests_per_second is None or not math.isfinite(requests_per_second):
        return None
    if requests_per_second < 0:
        return None
    unit, per = unit_of(requests_unit)
    price = costs.realtime_replica_hourly
    measured = forecast = None
    if requests_per_second > 0:
        if current_replicas is not None:
            measured = current_replicas * price / (requests_per_second * SECONDS_PER_HOUR) * per
        if replicas is not None and (mode is Phase.REALTIME or savings_per_day is not None):
            daily = replicas * price * HOURS_PER_DAY
            if mode is not Phase.REALTIME and savings_per_day is not None:
                daily -= savings_per_day
            requests_per_day = requests_per_second * SECONDS_PER_HOUR * HOURS_PER_DAY
            forecast = max(daily, 0.0) / requests_per_day * per
    result = CostPerRequest(unit, per, requests_per_second, measured, forecast, mode)
    finite = all(v is None or math.isfinite(v) for v in (result.measured, result.forecast))
    return result if finite else None
