"""Names the operator writes onto other objects. They are an API: changing one strands the
objects that carry the old name, so they are chosen once, under the API group."""

from placement.core.api import GROUP, KUEUE_QUEUE_LABEL

FINALIZER = f"{GROUP}/finalizer"
ORIGINAL_REPLICAS_ANNOTATION = f"{GROUP}/original-replicas"  # on the Deployment while held
MANAGED_BY_ANNOTATION = f"{GROUP}/placement"  # which placement holds the Deployment
HELD_SINCE_ANNOTATION = f"{GROUP}/held-since"  # when it was scaled down (ISO 8601)
BASELINE_ANNOTATION = f"{GROUP}/baseline-utilization"  # measured just before the move
HOLD_ANNOTATIONS = (
    ORIGINAL_REPLICAS_ANNOTATION,
    MANAGED_BY_ANNOTATION,
    HELD_SINCE_ANNOTATION,
    BASELINE_ANNOTATION,
)
PLACEMENT_LABEL = f"{GROUP}/placement"  # on Jobs: the placement that created them
WINDOW_LABEL = f"{GROUP}/window"  # on Jobs: the batch window they belong to
WORK_ANNOTATION = f"{GROUP}/work-replica-hours"  # on Jobs: the work they were given

__all__ = [
    "BASELINE_ANNOTATION",
    "FINALIZER",
    "HELD_SINCE_ANNOTATION",
    "HOLD_ANNOTATIONS",
    "KUEUE_QUEUE_LABEL",
    "MANAGED_BY_ANNOTATION",
    "ORIGINAL_REPLICAS_ANNOTATION",
    "PLACEMENT_LABEL",
    "WINDOW_LABEL",
    "WORK_ANNOTATION",
]
