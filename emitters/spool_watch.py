"""The Auth Gateway's spool depth, read from its ``/metrics``: after an outage the scenario
runner waits for the spool to drain before it reconciles the run with the sink."""

from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

SPOOL_BATCHES = "logops_auth_spool_batches"


def spool_depth(auth_http: str) -> float | None:
    """The spool's depth in batches (None: no answer, or no such series)."""
    url = auth_http.rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode("utf-8", "replace")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == SPOOL_BATCHES:
                    return float(sample.value)
    except ValueError:  # not the exposition format
        return None
    return None


def wait_spool_empty(auth_http: str, timeout: float, stop: threading.Event) -> bool:
    """True once the spool is seen empty; False at ``timeout`` or when ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spool_depth(auth_http) == 0:
            return True
        if stop.wait(0.25):
            return False
    return False
