"""The KEDA ScaledObject an async placement hands its Deployment's replica count to. Pure.

KEDA, not the operator, scales the Deployment in async mode: one Prometheus trigger on the
placement's queue query (already scoped to its namespace by core/tenancy), between
`minReplicaCount` = warmReplicas (0 is scale to zero) and `maxReplicaCount` = the replicas the
Deployment had before the move.

How often KEDA looks and how long it keeps an idle replica follow from acceptableDelay (a
result may wait that long, so neither needs to be tighter than a fraction of it):

- pollingInterval = acceptableDelay / 10, within [5s, 60s]: a filled queue is seen within a
  tenth of the delay, never busier than every 5 s, never later than a minute;
- cooldownPeriod = acceptableDelay, within [30s, 1h]: after the last queued item the fleet
  stays up as long as results may wait anyway, so a burst a little later finds it warm;
  never less than 30 s (no flapping between polls), never more than an hour of idle pay.

On deletion (the placement leaves async) KEDA's finalizer first stops its scale loop and,
with `advanced.restoreToOriginalReplicaCount: true`, then sets the replicas it found when it
took over. That is the count the operator recorded and restores itself after the delete,
so both writes agree, and a last tick of KEDA's loop between the delete and the finalizer
cannot leave the Deployment at minReplicaCount.

When Prometheus fails, KEDA's scale loop does not scale the fleet down on the error; with
`fallback`, after 3 failed polls the HPA KEDA made runs the original replicas (through KEDA's
metrics API server, so only while the fleet is above zero: a fleet already at zero stays
there until the queue reads again, KEDA's documented limit).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from placement.core.labels import PLACEMENT_LABEL

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
NAME_PREFIX = "placement-"
# KEDA copies the name into the label scaledobject.keda.sh/name on the ScaledObject and on
# its HPA: a label value, so 63 characters at most, not a subdomain's 253.
NAME_MAX = 63
MIN_POLLING = timedelta(seconds=5)
MAX_POLLING = timedelta(seconds=60)
MIN_COOLDOWN = timedelta(seconds=30)
MAX_COOLDOWN = timedelta(hours=1)
# Failed Prometheus polls after which KEDA runs the fallback replicas (the original count).
FALLBACK_FAILURES = 3

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def scaled_object_name(placement: str) -> str:
    """'placement-<placement>', deterministic and a valid DNS label (at most 63 characters,
    lowercase alphanumerics and '-'): a longer or dotted name is cut and given a short hash
    of the full one, so two placements never share a ScaledObject."""
    name = NAME_PREFIX + placement
    cleaned = _NOT_DNS.sub("-", name.lower())
    if cleaned == name and len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(placement.encode()).hexdigest()[:8]
    return f"{cleaned[: NAME_MAX - len(digest) - 1].rstrip('-')}-{digest}"


def keda_hpa_name(scaled_object: str) -> str:
    """The name KEDA gives the HPA it makes for the ScaledObject: keda-hpa-<name>, never cut
    (KEDA 2.21's getDefaultHpaName; an HPA's name may have 253 characters)."""
    return f"keda-hpa-{scaled_object}"


def others_autoscalers(
    autoscalers: Iterable[str], own: str | None, *, placement: str | None = None
) -> tuple[str, ...]:
    """The autoscalers on the target ("Kind/name") less the ScaledObject the operator made
    for the placement, `own` (found by its name and label; None: there is none) and the HPA
    KEDA makes for it: those two scale the Deployment for the placement, not against it. A
    name alone proves nothing (anyone may create placement-<name> or keda-hpa-placement-<name>),
    so without `own` nothing is left out. `placement`: its own was looked for and is not
    there, so a ScaledObject with its name is said to be someone else's."""
    if own is None:
        if placement is None:
            return tuple(autoscalers)
        name = f"{KIND}/{scaled_object_name(placement)}"
        return tuple(
            f"{found} (not this placement's: no label {PLACEMENT_LABEL}={placement})"
            if found == name
            else found
            for found in autoscalers
        )
    ours = {f"{KIND}/{own}", f"HorizontalPodAutoscaler/{keda_hpa_name(own)}"}
    return tuple(found for found in autoscalers if found not in ours)


def keda_made(owner_references: Iterable[Mapping[str, Any]], scaled_object: str) -> bool:
    """Whether an HPA's owner references say KEDA made it for the ScaledObject
    `scaled_object`: KEDA sets the ScaledObject as its controller. Labels prove nothing here
    (KEDA copies the ScaledObject's, and anyone may set them)."""
    return any(
        ref.get("kind") == KIND
        and str(ref.get("apiVersion") or "").startswith("keda.sh/")
        and ref.get("name") == scaled_object
        and ref.get("controller") is True
        for ref in owner_references
    )


def foreign_keda_hpa(
    name: str,
    owner_references: Iterable[Mapping[str, Any]],
    target: str,
    scaled_object: str,
) -> str | None:
    """The HPA `name` described for a ConflictingAutoscaler message when KEDA did not make it
    for `scaled_object` (`target`: what it scales, "Kind/name"); None when it did."""
    if keda_made(owner_references, scaled_object):
        return None
    return f"HorizontalPodAutoscaler/{name} (scaling {target}, not KEDA's for {scaled_object})"


def polling_interval(acceptable_delay: timedelta) -> timedelta:
    """acceptableDelay / 10 within [5s, 60s] (whole seconds: KEDA counts seconds)."""
    return _whole_seconds(_clamp(acceptable_delay / 10, MIN_POLLING, MAX_POLLING))


def cooldown_period(acceptable_delay: timedelta) -> timedelta:
    """acceptableDelay within [30s, 1h] (whole seconds)."""
    return _whole_seconds(_clamp(acceptable_delay, MIN_COOLDOWN, MAX_COOLDOWN))


def scaled_object_manifest(
    *,
    placement: str,
    namespace: str,
    deployment: str,
    query: str,
    queue_per_replica: float,
    min_replicas: int,
    max_replicas: int,
    acceptable_delay: timedelta,
    prometheus_url: str,
) -> dict[str, Any]:
    """The keda.sh/v1alpha1 ScaledObject for `placement`'s Deployment, as server-side
    applied by the operator. `query` must already be scoped to `namespace`.

    Counts outside what KEDA accepts are brought within it rather than refused (the plan
    must never fail on them): min at least 0, max at least min and at least 1."""
    if not math.isfinite(queue_per_replica) or queue_per_replica <= 0:
        raise ValueError(f"async.queuePerReplica must be a number > 0, not {queue_per_replica}")
    low = max(int(min_replicas), 0)
    high = max(int(max_replicas), low, 1)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": scaled_object_name(placement),
            "namespace": namespace,
            "labels": {PLACEMENT_LABEL: placement},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": low,
            "maxReplicaCount": high,
            "pollingInterval": int(polling_interval(acceptable_delay).total_seconds()),
            "cooldownPeriod": int(cooldown_period(acceptable_delay).total_seconds()),
            "fallback": {"failureThreshold": FALLBACK_FAILURES, "replicas": high},
            "advanced": {"restoreToOriginalReplicaCount": True},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query,
                        "threshold": decimal_text(queue_per_replica),
                        "activationThreshold": "0",
                    },
                }
            ],
        },
    }


def decimal_text(value: float) -> str:
    """A number as KEDA's trigger metadata wants it: plain decimal, no exponent ("2.5",
    "1000000")."""
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text.removesuffix(".0") if text.endswith(".0") else text


def _clamp(value: timedelta, low: timedelta, high: timedelta) -> timedelta:
    return min(max(value, low), high)


def _whole_seconds(value: timedelta) -> timedelta:
    return timedelta(seconds=math.ceil(value.total_seconds()))
