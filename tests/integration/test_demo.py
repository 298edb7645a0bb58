"""`make demo` is one of the README's two promises: it must show the decisions it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_shows_a_move_to_batch_and_a_stay_with_numbers(tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "placement.localenv.demo", "--dir", str(tmp_path), "--settle", "90"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = demo.stdout
    assert demo.returncode == 0, demo.stderr[-3000:]
    # Events as `kubectl get events` columns: the reason, then the message without it.
    assert re.search(r"MovedToBatch +saves", out) and "deployment/enricher 6 -> 1" in out
    assert "BatchSucceeded" in out
    assert re.search(r"StayRealtime +latency.userVisible is true", out)
    assert "SavingsNegative" in out and "loses" in out
    assert "OwnerMissing" in out
    # The async example, beside the others, in Recommend: async recommended with KEDA's CRD
    # installed, AsyncNeedsKeda without it; an operator that does not know async yet says
    # batch cannot wait that long.
    async_events = out.split("Events of wp/async-summarizer", 1)[1].split("\n==", 1)[0]
    assert re.search(r"(AsyncRecommended|AsyncNeedsKeda|DelayNotTolerated) +\S", async_events)
    assert "MovedToAsync" not in out
    assert "MetricsUnavailable" not in out  # the demo waits for data before applying
    assert out.rstrip().endswith("== stopping everything")
