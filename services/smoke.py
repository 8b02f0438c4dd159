"""``make auth-smoke``: does the running Auth Gateway accept what it should and refuse the rest?

Against ``make up`` (the Auth Gateway's addresses from ``data/run/up.log``, else
127.0.0.1:8081 and :50052; the throwaway key ``demo`` in ``data/run/keys/``): a signed
push on each protocol, a bad secret, an old timestamp, a replayed request and a burst
over the per-key request limit. Each check prints what was expected and what came back
(status and reason); the exit code is 1 if any differs, 2 when there is no key to sign
with.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clients.signed import Signer, secret_file
from clients.transports import GrpcTransport, HttpTransport, http_error
from services.background import RUN_DIR, up_event
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult
from services.common.signing import sign_headers
from services.devkeys import CLIENT_KEY_ID

MEDIA_JSON = "application/json"
# More than any sane per-key request burst: a limit that never answers 429 fails the check.
BURST_MAX_REQUESTS = 2000


@dataclass(frozen=True)
class Answer:
    status: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.reason}" + (f" ({self.detail})" if self.detail else "")


Check = Callable[[], Answer]


def _batch(records: int = 1) -> Batch:
    return Batch(
        records=[{"level": "INFO", "msg": f"auth-smoke {i}"} for i in range(records)],
        batch_id="smoke-" + uuid.uuid4().hex, emitter="auth-smoke", scenario_id="auth-smoke",
    )


def _answer_of(send: Callable[[], PushResult], ok: str) -> Answer:
    """What the SDK's ``send`` came back with: ``ok`` and the counts, or the refusal."""
    try:
        result = send()
    except LogOpsError as exc:
        return Answer(str(exc.http_status), exc.reason)
    if result.spooled:
        return Answer("202", "spooled", "Ingest is away: the batch waits in the spool")
    return Answer(ok, "accepted", f"{result.accepted} record(s)")


def _raw_answer(status: int, headers: dict[str, str], data: bytes) -> Answer:
    if 200 <= status < 300:
        return Answer(str(status), "accepted")
    return Answer(str(status), http_error(status, headers, data).reason)


class Smoke:
    def __init__(self, auth_url: str, auth_grpc: str, signer: Signer, secret: bytes) -> None:
        self.auth_url, self.auth_grpc = auth_url, auth_grpc
        self.signer, self._secret = signer, secret

    def checks(self) -> list[tuple[str, str, Check]]:
        return [
            ("signed push, HTTP", "200 accepted", self.signed_http),
            ("signed push, gRPC", "200 accepted", self.signed_grpc),
            ("bad secret", "401 bad_signature", self.bad_secret),
            ("old timestamp (-400 s)", "401 clock_skew", self.old_timestamp),
            ("replay of a request", "401 replay", self.replay),
            ("burst over the limit", "429 rate_limited", self.burst),
        ]

    def signed_http(self) -> Answer:
        client = HttpTransport(self.auth_url, signer=self.signer)
        try:
            return _answer_of(lambda: client.send(_batch(2)), "200")
        finally:
            client.close()

    def signed_grpc(self) -> Answer:
        client = GrpcTransport(self.auth_grpc, signer=self.signer)
        try:
            # gRPC's OK is HTTP's 200 in the one error table; shown the same way.
            return _answer_of(lambda: client.send(_batch(2)), "200")
        finally:
            client.close()

    def bad_secret(self) -> Answer:
        wrong = Signer(self.signer.key_id, secrets.token_hex(32))
        client = HttpTransport(self.auth_url, signer=wrong)
        try:
            return _answer_of(lambda: client.send(_batch()), "200")
        finally:
            client.close()

    def _signed_request(self, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        body = HttpTransport(self.auth_url).prepare(_batch()).body
        signed = sign_headers((self.signer.key_id, self._secret), body, MEDIA_JSON, now=now)
        return body, {"Content-Type": MEDIA_JSON, **signed}

    def old_timestamp(self) -> Answer:
        body, headers = self._signed_request(now=time.time() - 400)
        return self._post(body, headers)

    def replay(self) -> Answer:
        """The same bytes and headers twice: the first passes, the second is a replay."""
        body, headers = self._signed_request()
        first = self._post(body, headers)
        if first.status != "200":
            return Answer(first.status, first.reason, "the first sending was refused")
        return self._post(body, headers)

    def burst(self) -> Answer:
        """Empty batches as fast as one connection goes: they cost requests, not records,
        and store nothing."""
        client = HttpTransport(self.auth_url, signer=self.signer)
        try:
            for sent in range(1, BURST_MAX_REQUESTS + 1):
                try:
                    client.send(Batch(records=[], batch_id=uuid.uuid4().hex, emitter="smoke"))
                except LogOpsError as exc:
                    return Answer(str(exc.http_status), exc.reason, f"request {sent}")
        finally:
            client.close()
        return Answer("200", "accepted", f"all {BURST_MAX_REQUESTS} requests passed")

    def _post(self, body: bytes, headers: dict[str, str]) -> Answer:
        client = HttpTransport(self.auth_url)
        try:
            return _raw_answer(*client.post(body, headers))
        except LogOpsError as exc:  # no answer at all: the SDK's 503
            return Answer(str(exc.http_status), exc.reason)
        finally:
            client.close()


def run_checks(smoke: Smoke) -> int:
    print(f"auth-smoke: Auth Gateway {smoke.auth_url} and {smoke.auth_grpc}, "
          f"key {smoke.signer.key_id!r}", flush=True)
    print(f"  {'check':<24} {'expected':<19} actual", flush=True)
    failed = 0
    for name, expected, check in smoke.checks():
        answer = check()
        good = f"{answer.status} {answer.reason}" == expected
        failed += not good
        mark = "ok" if good else "DIFFERS"
        print(f"  {name:<24} {expected:<19} {answer!s:<40} {mark}", flush=True)
    total = len(smoke.checks())
    print(f"auth-smoke: {total - failed} of {total} checks as expected", flush=True)
    return 1 if failed else 0


def _running_auth() -> tuple[str, str]:
    """The Auth Gateway's addresses as ``make up`` last announced them, else the defaults."""
    event = up_event(RUN_DIR / "up.log")
    if event is None or "auth" not in event:
        return "http://127.0.0.1:8081", "127.0.0.1:50052"
    return str(event["auth"]["http"]), str(event["auth"]["grpc"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.smoke", description=__doc__)
    http, grpc = _running_auth()
    parser.add_argument("--auth-http", default=http, metavar="URL",
                        help=f"the Auth Gateway's HTTP address (default {http})")
    parser.add_argument("--auth-grpc", default=grpc, metavar="HOST:PORT",
                        help=f"its gRPC address (default {grpc})")
    parser.add_argument("--key-id", default=CLIENT_KEY_ID)
    parser.add_argument("--secret-file", default=str(Path("data/run/keys/demo.secret")))
    args = parser.parse_args(argv)
    try:
        secret = secret_file(args.secret_file)
        signer = Signer(args.key_id, secret)
    except ValueError as exc:
        print(f"auth-smoke: {exc}; give --key-id K --secret-file F", file=sys.stderr)
        return 2
    return run_checks(Smoke(args.auth_http, args.auth_grpc, signer, secret))


if __name__ == "__main__":
    sys.exit(main())
