"""The spool's configured bounds are exported beside its depth, so an alert can say "near full"."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from services.auth.metrics import AuthMetrics
from services.auth.wiring import AuthGateway
from services.common.config import load_config


def test_gateway_exports_the_configured_spool_bounds(tmp_path: Path) -> None:
    cfg = load_config(
        env={},
        overrides={
            "auth.mode": "none",
            "auth.http.port": 0,
            "auth.grpc.port": 0,
            "auth.spool.dir": str(tmp_path / "spool"),
            "auth.spool.max_batches": 1234,
            "auth.spool.max_bytes": 5_000_000,
        },
    ).auth
    registry = CollectorRegistry()
    gateway = AuthGateway(cfg, None, registry)
    try:
        assert registry.get_sample_value("logops_auth_spool_limit_batches") == 1234
        assert registry.get_sample_value("logops_auth_spool_limit_bytes") == 5_000_000
        # The depth starts at zero beside them: the near-full ratio is 0, not absent.
        assert registry.get_sample_value("logops_auth_spool_batches") == 0
    finally:
        gateway.core.close()


def test_bounds_appear_in_the_exposition_text() -> None:
    registry = CollectorRegistry()
    AuthMetrics(registry).spool_limits(100_000, 1 << 30)
    text = generate_latest(registry).decode()
    assert "logops_auth_spool_limit_batches 100000.0" in text
    assert "logops_auth_spool_limit_bytes 1.073741824e+09" in text


def test_a_request_refused_before_it_was_timed_is_counted_without_a_latency_sample() -> None:
    registry = CollectorRegistry()
    metrics = AuthMetrics(registry)
    metrics.request_done("http", "UNAVAILABLE", None, 0)
    metrics.request_done("http", "OK", 0.002, 10)
    value = registry.get_sample_value
    assert value("logops_auth_requests_total", {"front": "http", "code": "UNAVAILABLE"}) == 1
    assert value("logops_auth_request_duration_seconds_count", {"front": "http"}) == 1
