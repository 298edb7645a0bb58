"""Words users read: Event reasons and condition types.

Both are part of the API (alerts and dashboards match on them): add new members, never rename
or reuse one.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Event reason and `status.decision.reason`. CamelCase, stable."""

    # Staying realtime, and why.
    STAY_REALTIME = "StayRealtime"  # latency.userVisible: a user waits on every answer
    OWNER_MISSING = "OwnerMissing"
    DELAY_NOT_TOLERATED = "DelayNotTolerated"
    SAVINGS_NEGATIVE = "SavingsNegative"
    WINDOW_TOO_SHORT = "WindowTooShort"  # batch pod-hours do not fit the window
    HOLD_PLANNED = "HoldPlanned"  # batch pays, realtime until the planned hold starts
    BATCH_RECOMMENDED = "BatchRecommended"  # batch pays, but Recommend mode or High risk
    # Moving to batch and running it.
    MOVED_TO_BATCH = "MovedToBatch"
    BATCH_JOB_CREATED = "BatchJobCreated"
    BATCH_SUCCEEDED = "BatchSucceeded"
    BATCH_JOB_FAILED = "BatchJobFailed"  # failed, retryWindow still open
    BATCH_WINDOW_MISSED = "BatchWindowMissed"
    KUEUE_NOT_ADMITTED = "KueueNotAdmitted"  # the window's Job stayed suspended past its window
    # Back to realtime.
    FALLBACK_RESTORED = "FallbackRestored"
    # Warning: held, the projected backlog no longer fits the window; realtime restored early.
    BACKLOG_WILL_MISS_WINDOW = "BacklogWillMissWindow"
    RESTORED = "Restored"
    # What only the operator can see; phase Blocked or no change.
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    TARGET_MISSING = "TargetMissing"
    CONFLICTING_AUTOSCALER = "ConflictingAutoscaler"  # an HPA, a ScaledObject, or another placement
    BATCH_JOB_REJECTED = "BatchJobRejected"  # the API server refused the Job: nothing scaled
    MANUAL_OVERRIDE = "ManualOverride"  # the held Deployment was changed outside the operator
    INVALID_SPEC = "InvalidSpec"  # what only the operator can check (e.g. unknown time zone)
    RECOVERED = "Recovered"  # a hold found in the Deployment's annotations, not in status
    # Async serving (a KEDA ScaledObject on the queue sets the replicas).
    MOVED_TO_ASYNC = "MovedToAsync"  # original replicas recorded, the ScaledObject created
    ASYNC_RECOMMENDED = "AsyncRecommended"  # async pays, but Recommend mode or High risk
    ASYNC_NEEDS_KEDA = "AsyncNeedsKeda"  # async would pay; KEDA's CRD is not served: realtime
    LEFT_ASYNC = "LeftAsync"  # ScaledObject deleted, replicas restored (the message says why)
    SCALE_UP_TOO_SLOW = "ScaleUpTooSlow"  # acceptableDelay not longer than async.scaleUpTime
    ASYNC_QUEUE_UNAVAILABLE = "AsyncQueueUnavailable"  # async.queue cannot be read: no scaler
    # The API server or KEDA's admission webhook refused the ScaledObject (a 4xx for good).
    SCALED_OBJECT_REJECTED = "ScaledObjectRejected"


class ConditionType(StrEnum):
    """`status.conditions[].type`."""

    READY = "Ready"
    OWNER_RECORDED = "OwnerRecorded"
    METRICS_AVAILABLE = "MetricsAvailable"
    SAVINGS_POSITIVE = "SavingsPositive"
    ACTUATED = "Actuated"
    FALLBACK_ACTIVE = "FallbackActive"


class EventType(StrEnum):
    """Kubernetes Event type."""

    NORMAL = "Normal"
    WARNING = "Warning"
