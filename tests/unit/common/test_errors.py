"""The one error table: statuses, codes, retry hints, and rebuilding errors client-side."""

import pytest

from services.common.errors import (
    REASONS,
    BadRequest,
    Internal,
    LogOpsError,
    RateLimited,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
    error_from_reason,
)


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        ("bad_request", 400, "INVALID_ARGUMENT"),
        ("unsupported_media_type", 415, "INVALID_ARGUMENT"),
        ("bad_signature", 401, "UNAUTHENTICATED"),
        ("replay", 401, "UNAUTHENTICATED"),
        ("too_large", 413, "RESOURCE_EXHAUSTED"),
        ("too_many_records", 413, "RESOURCE_EXHAUSTED"),
        ("rate_limited", 429, "RESOURCE_EXHAUSTED"),
        ("overloaded", 503, "UNAVAILABLE"),
        ("sink_unavailable", 503, "UNAVAILABLE"),
    ],
)
def test_product_table(reason: str, status: int, code: str) -> None:
    err = LogOpsError("x", reason=reason)
    assert (err.http_status, err.code) == (status, code)


def test_only_throttling_and_unavailability_are_retryable() -> None:
    retryable = {r for r, m in REASONS.items() if m.retryable}
    assert retryable == {"rate_limited", "overloaded", "sink_unavailable", "downstream_unavailable"}


def test_unknown_reason_is_a_programming_error_that_names_it() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        LogOpsError("x", reason="nope")


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert Unavailable("x", retry_after=0.2).retry_after_seconds == 1
    assert Unavailable("x", retry_after=2.5).retry_after_seconds == 3
    assert Unavailable("x").retry_after_seconds is None
    body = Unavailable("busy", retry_after=2).to_dict("rid-1")
    assert body == {
        "error": {
            "code": "UNAVAILABLE",
            "reason": "overloaded",
            "message": "busy",
            "request_id": "rid-1",
            "retry_after_seconds": 2,
        }
    }


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("bad_request", BadRequest),
        ("unsupported_media_type", UnsupportedMediaType),
        ("too_many_records", TooLarge),
        ("rate_limited", RateLimited),
        ("sink_unavailable", Unavailable),
    ],
)
def test_clients_rebuild_the_same_exception(reason: str, cls: type) -> None:
    err = error_from_reason(reason, "m", 3)
    assert type(err) is cls
    assert err.reason == reason
    assert err.retry_after == 3


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_reason_in_the_table_survives_the_trip_to_a_client(reason: str) -> None:
    err = error_from_reason(reason, "the server's words")
    assert isinstance(err, LogOpsError)
    assert (err.reason, err.code, err.http_status) == (
        reason,
        REASONS[reason].code,
        REASONS[reason].http_status,
    )
    assert err.message == "the server's words"
    assert str(err) == "the server's words"


def test_a_reason_the_client_does_not_know_becomes_an_internal_error() -> None:
    # A newer server may answer with a reason this client predates.
    err = error_from_reason("quota_exceeded", "over quota")
    assert type(err) is Internal
    assert (err.reason, err.code, err.http_status) == ("internal", "INTERNAL", 500)
    assert err.message == "over quota"


def test_an_error_body_without_a_request_id_has_an_empty_one() -> None:
    body = BadRequest("bad").to_dict()
    assert body == {
        "error": {
            "code": "INVALID_ARGUMENT",
            "reason": "bad_request",
            "message": "bad",
            "request_id": "",
        }
    }
