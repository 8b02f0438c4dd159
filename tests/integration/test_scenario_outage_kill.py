"""The shipped ``outage`` scenario with Ingest killed (SIGKILL) mid-run and restarted.

Ingest runs as its own process (``logops ingest``), the Auth Gateway in this one. The
scenario's ``stop_ingest`` step kills Ingest with no chance to clean up; ``start_ingest``
starts a new process on the same ports and sink, which repairs what the kill left. The Auth
Gateway spools what it cannot forward meanwhile and drains it after. Nothing acknowledged
may be missing from the sink, and nothing may be stored twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from clients.launcher import GatewayProcess
from emitters.runner import Targets
from services.auth.wiring import AuthGateway
from services.common.keys import KeyRing
from tests.conftest import AuthFactory
from tests.integration.test_scenario_run import (
    FAST_HOP,
    KEY,
    acknowledged,
    check_folder,
    holds,
    run,
    shipped,
    stored,
    verdicts,
)


class KilledIngestStack:
    """What ``run`` needs of a stack: targets, a sink, and the outage steps."""

    def __init__(self, auth_gateway: AuthFactory, sink: Path) -> None:
        self.sink = sink
        self.ingest = self._start("0", "0")
        self.http_port = self.ingest.http_url.rsplit(":", 1)[1]
        self.grpc_port = self.ingest.grpc_target.rsplit(":", 1)[1]
        self.auth: AuthGateway = auth_gateway(
            f"grpc://{self.ingest.grpc_target}", KeyRing([KEY]), **FAST_HOP
        )
        self.kills = 0

    def _start(self, http: str, grpc: str) -> GatewayProcess:
        args = ["ingest", "--http-port", http, "--grpc-port", grpc, "--no-syslog"]
        return GatewayProcess([*args, "--sink-dir", str(self.sink)]).start()

    def targets(self) -> Targets:
        a = self.auth.addresses
        assert a is not None
        # The outage scenario sends nothing over syslog.
        return Targets(self.ingest.http_url, self.ingest.grpc_target, "127.0.0.1:9",
                       a.http_url, a.grpc_target)

    def perform(self, action: str) -> str:
        if action == "stop_ingest":
            self.ingest.kill()
            self.kills += 1
            return "Ingest killed (SIGKILL)"
        self.ingest = self._start(self.http_port, self.grpc_port)
        return "Ingest started"

    def close(self) -> None:
        self.ingest.stop()


def test_outage_with_ingest_killed_loses_nothing_and_stores_nothing_twice(
    auth_gateway: AuthFactory, tmp_path: Path
) -> None:
    stack = KilledIngestStack(auth_gateway, tmp_path / "sink")
    try:
        scenario = shipped("outage", 0.25)
        result = run(stack, scenario, tmp_path, "run-killed")  # type: ignore[arg-type]
    finally:
        stack.close()
    assert stack.kills == 1
    sends = check_folder(result, scenario)
    summary = result.summary
    assert [s["ok"] for s in summary["steps"]] == [True, True]
    assert Counter(s["outcome"] for s in sends)["spooled"] > 0
    holds(summary)
    ok = verdicts(summary)
    assert ok["lost == 0"] is True and ok["duplicates == 0"] is True
    assert stored(stack.sink, "run-killed") == acknowledged(sends)
