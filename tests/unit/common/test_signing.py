"""LOGOPS1-HMAC-SHA256: every refusal reason, the order of the checks, rotation and skew."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from email.message import Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import Unauthenticated, Unavailable
from services.common.keys import ApiKey, KeyRing
from services.common.nonces import MemoryNonceStore
from services.common.signing import (
    AUTH_HEADERS,
    GRPC_MEDIA_TYPE,
    H_CONTENT_SHA256,
    H_KEY_ID,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    Verifier,
    media_type_of,
    new_nonce,
    sign_headers,
    string_to_sign,
)
from tests.signing_testing import KEY, OLD_SECRET, SECRET, make_keyring

NOW = 1_700_000_000.0
BODY = b'{"batch_id":"b1","records":[{"msg":"hi"}]}'
JSON = "application/json"


class RecordingStore(MemoryNonceStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def remember(self, key_id: str, nonce: str, ttl_sec: float) -> bool:
        self.calls.append((key_id, nonce))
        return super().remember(key_id, nonce, ttl_sec)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def verifier(store: RecordingStore) -> Verifier:
    return Verifier(make_keyring(), store, clock=lambda: NOW)


def signed(body: bytes = BODY, media_type: str = JSON, **kw: object) -> dict[str, str]:
    return sign_headers(KEY, body, media_type, now=kw.pop("now", NOW), **kw)  # type: ignore[arg-type]


def reason_of(call: Callable[[], object]) -> str:
    with pytest.raises(Unauthenticated) as info:
        call()
    return info.value.reason


def test_a_signed_request_verifies_and_names_its_key(verifier: Verifier) -> None:
    assert verifier.verify(signed(), BODY, JSON) is KEY


def test_the_headers_are_the_five_of_the_contract() -> None:
    headers = signed()
    assert tuple(headers) == AUTH_HEADERS
    assert headers[H_TIMESTAMP] == "1700000000"
    assert headers[H_CONTENT_SHA256] == hashlib.sha256(BODY).hexdigest()
    assert headers[H_SIGNATURE].startswith("v1=") and len(headers[H_SIGNATURE]) == 67


def test_a_fresh_nonce_is_16_random_bytes_in_base64url() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 22 and "=" not in n and "+" not in n and "/" not in n for n in nonces)
    assert signed()[H_NONCE] != signed()[H_NONCE]


# -- missing_auth: absent or malformed headers ---------------------------------------------


def test_no_headers_at_all_is_missing_auth(verifier: Verifier) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify({"content-type": JSON}, BODY, JSON)
    assert info.value.reason == "missing_auth"
    assert info.value.http_status == 401
    assert all(name in info.value.message for name in AUTH_HEADERS)


@pytest.mark.parametrize("name", AUTH_HEADERS)
def test_each_header_is_required(verifier: Verifier, name: str) -> None:
    headers = signed()
    del headers[name]
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "missing_auth"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (H_KEY_ID, ""),
        (H_KEY_ID, "has space"),
        (H_KEY_ID, "k" * 65),
        (H_TIMESTAMP, "1700000000.5"),
        (H_TIMESTAMP, "-1700000000"),
        (H_TIMESTAMP, "2023-11-14T22:13:20Z"),
        (H_NONCE, "c2hvcnQ"),  # 5 bytes
        (H_NONCE, "AAECAwQFBgcICQoLDA0ODw=="),  # padded
        (H_NONCE, "AAECAwQFBgcICQoLDA0OD+/"),  # base64, not base64url
        (H_CONTENT_SHA256, hashlib.sha256(BODY).hexdigest().upper()),
        (H_CONTENT_SHA256, hashlib.sha256(BODY).hexdigest()[:63]),
        (H_SIGNATURE, "deadbeef"),
        (H_SIGNATURE, "v1=nothex"),
        (H_SIGNATURE, "v2=" + "a" * 64),
        (H_SIGNATURE, ",".join(["v1=" + "a" * 64] * 9)),
    ],
)
def test_malformed_headers_are_missing_auth(verifier: Verifier, name: str, value: str) -> None:
    headers = {**signed(), name: value}
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "missing_auth"


def test_a_header_repeated_with_two_values_is_refused(verifier: Verifier) -> None:
    pairs = [*signed().items(), (H_NONCE, new_nonce())]
    assert reason_of(lambda: verifier.verify(pairs, BODY, JSON)) == "missing_auth"


def test_a_header_repeated_with_the_same_value_is_accepted(verifier: Verifier) -> None:
    headers = signed()
    assert verifier.verify([*headers.items(), (H_NONCE, headers[H_NONCE])], BODY, JSON) is KEY


def test_binary_metadata_values_are_refused(verifier: Verifier) -> None:
    pairs: list[tuple[str, object]] = [*signed().items()]
    pairs[0] = (H_KEY_ID, b"test-key")
    assert reason_of(lambda: verifier.verify(pairs, BODY, JSON)) == "missing_auth"  # type: ignore[arg-type]


# -- unknown_key, clock_skew ------------------------------------------------------------------


def test_an_unknown_key_is_refused(verifier: Verifier) -> None:
    headers = sign_headers(("nobody", SECRET), BODY, JSON, now=NOW)
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(headers, BODY, JSON)
    assert info.value.reason == "unknown_key"
    assert "nobody" in info.value.message


@pytest.mark.parametrize("offset", [-300, 300, 0, -299.5])
def test_a_timestamp_within_300_s_either_way_is_accepted(verifier: Verifier, offset: float) -> None:
    assert verifier.verify(signed(now=NOW + offset), BODY, JSON) is KEY


@pytest.mark.parametrize(("offset", "word"), [(-301, "behind"), (301, "ahead of"), (-86400, "")])
def test_a_timestamp_past_300_s_either_way_is_clock_skew(
    verifier: Verifier, offset: float, word: str
) -> None:
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(signed(now=NOW + offset), BODY, JSON)
    assert info.value.reason == "clock_skew"
    assert word in info.value.message
    assert str(int(NOW)) in info.value.message  # the server's clock, to fix the client's


def test_the_skew_limit_is_configurable(store: RecordingStore) -> None:
    strict = Verifier(make_keyring(), store, clock=lambda: NOW, max_skew_sec=5, nonce_ttl_sec=10)
    assert strict.verify(signed(now=NOW - 5), BODY, JSON) is KEY
    assert reason_of(lambda: strict.verify(signed(now=NOW - 6), BODY, JSON)) == "clock_skew"


def test_a_nonce_ttl_shorter_than_the_acceptance_window_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Verifier(make_keyring(), MemoryNonceStore(), max_skew_sec=300, nonce_ttl_sec=599)


# -- bad_content_hash, bad_signature, replay -------------------------------------------------


def test_a_body_changed_in_transit_is_bad_content_hash(verifier: Verifier) -> None:
    headers = signed()
    assert reason_of(lambda: verifier.verify(headers, BODY + b" ", JSON)) == "bad_content_hash"


@pytest.mark.parametrize(
    "forge",
    [
        lambda: sign_headers(("test-key", b"not-the-secret-0123456789"), BODY, JSON, now=NOW),
        lambda: signed(media_type="text/plain"),
        lambda: {**signed(), H_SIGNATURE: "v1=" + "0" * 64},
        lambda: {**signed(), H_TIMESTAMP: str(int(NOW) + 1)},
        lambda: {**signed(), H_NONCE: new_nonce()},
        lambda: {**signed(), H_KEY_ID: "other-key"},
    ],
    ids=["wrong-secret", "other-media-type", "made-up", "timestamp", "nonce", "key-id"],
)
def test_a_forged_or_altered_signature_is_bad_signature(
    verifier: Verifier, forge: Callable[[], dict[str, str]]
) -> None:
    headers = forge()
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "bad_signature"


def test_a_refusal_never_shows_the_secret_or_the_expected_signature(verifier: Verifier) -> None:
    good = signed()
    forged = {**good, H_SIGNATURE: "v1=" + "0" * 64}
    with pytest.raises(Unauthenticated) as info:
        verifier.verify(forged, BODY, JSON)
    shown = str(info.value) + repr(info.value.to_dict())
    assert good[H_SIGNATURE][3:] not in shown
    assert SECRET.decode() not in shown and OLD_SECRET.decode() not in shown


def test_the_same_request_twice_is_a_replay(verifier: Verifier) -> None:
    headers = signed()
    verifier.verify(headers, BODY, JSON)
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "replay"


def test_a_nonce_store_that_cannot_tell_fails_closed_with_its_own_error() -> None:
    verifier = Verifier(make_keyring(), MemoryNonceStore(max_entries=1), clock=lambda: NOW)
    verifier.verify(signed(), BODY, JSON)
    with pytest.raises(Unavailable) as info:
        verifier.verify(signed(), BODY, JSON)
    assert info.value.reason == "overloaded"


def test_a_nonce_is_per_key(verifier: Verifier) -> None:
    nonce = new_nonce()
    verifier.verify(signed(nonce=nonce), BODY, JSON)
    other_key = ("other-key", b"other-secret-0123456789")
    other = sign_headers(other_key, BODY, JSON, now=NOW, nonce=nonce)
    assert verifier.verify(other, BODY, JSON).key_id == "other-key"


# -- the order of the checks -----------------------------------------------------------------


def test_a_malformed_header_is_reported_before_an_unknown_key(verifier: Verifier) -> None:
    headers = {**sign_headers(("nobody", SECRET), BODY, JSON, now=NOW), H_NONCE: "short"}
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "missing_auth"


def test_an_unknown_key_is_reported_before_the_clock(verifier: Verifier) -> None:
    headers = sign_headers(("nobody", SECRET), BODY, JSON, now=NOW - 9999)
    assert reason_of(lambda: verifier.verify(headers, BODY, JSON)) == "unknown_key"


def test_the_clock_is_checked_before_the_body(verifier: Verifier) -> None:
    headers = signed(now=NOW - 9999)
    assert reason_of(lambda: verifier.verify(headers, b"other body", JSON)) == "clock_skew"


def test_a_wrong_body_hash_with_a_bad_signature_is_bad_content_hash(verifier: Verifier) -> None:
    headers = {**signed(), H_SIGNATURE: "v1=" + "0" * 64}
    assert reason_of(lambda: verifier.verify(headers, b"other", JSON)) == "bad_content_hash"


def test_a_replayed_nonce_with_a_bad_signature_is_bad_signature_and_burns_nothing(
    verifier: Verifier, store: RecordingStore
) -> None:
    good = signed()
    forged = {**good, H_SIGNATURE: "v1=" + "0" * 64}
    assert reason_of(lambda: verifier.verify(forged, BODY, JSON)) == "bad_signature"
    assert reason_of(lambda: verifier.verify(forged, b"x", JSON)) == "bad_content_hash"
    assert store.calls == []
    assert verifier.verify(good, BODY, JSON) is KEY  # the real request still goes through
    assert reason_of(lambda: verifier.verify(forged, BODY, JSON)) == "bad_signature"


def test_cheap_refusals_never_reach_the_nonce_store(
    verifier: Verifier, store: RecordingStore
) -> None:
    for headers in (
        {},
        sign_headers(("nobody", SECRET), BODY, JSON, now=NOW),
        signed(now=NOW + 400),
    ):
        with pytest.raises(Unauthenticated):
            verifier.verify(headers, BODY, JSON)
    assert store.calls == []


def test_headers_can_be_checked_before_the_body_is_read(verifier: Verifier) -> None:
    headers = signed(body=b"\x00\x01raw", media_type=GRPC_MEDIA_TYPE)
    pending = verifier.check_headers(headers, GRPC_MEDIA_TYPE)
    assert pending.key is KEY
    assert verifier.check_body(pending, b"\x00\x01raw") is KEY
    assert reason_of(lambda: verifier.check_body(pending, b"\x00\x01raw")) == "replay"


# -- rotation, header case, several signatures, media types ---------------------------------


def test_both_the_new_and_the_old_secret_verify(verifier: Verifier) -> None:
    assert verifier.verify(sign_headers(("test-key", SECRET), BODY, JSON, now=NOW), BODY, JSON)
    assert verifier.verify(sign_headers(("test-key", OLD_SECRET), BODY, JSON, now=NOW), BODY, JSON)


def test_the_first_secret_signs() -> None:
    headers = signed(nonce="AAECAwQFBgcICQoLDA0ODw")
    text = string_to_sign(JSON, "test-key", headers[H_TIMESTAMP], headers[H_NONCE],
                          headers[H_CONTENT_SHA256])
    assert headers[H_SIGNATURE] == "v1=" + hmac.new(SECRET, text.encode(), "sha256").hexdigest()


def test_a_retired_secret_no_longer_verifies(store: RecordingStore) -> None:
    rotated = KeyRing([ApiKey("test-key", "test-emitter", (b"brand-new-secret-0123456789",))])
    verifier = Verifier(rotated, store, clock=lambda: NOW)
    assert reason_of(lambda: verifier.verify(signed(), BODY, JSON)) == "bad_signature"


@pytest.mark.parametrize("case", [str.upper, str.title, lambda s: s])
def test_header_names_match_in_any_case(verifier: Verifier, case: Callable[[str], str]) -> None:
    headers = {case(name): value for name, value in signed().items()}
    assert verifier.verify(headers, BODY, JSON) is KEY


def test_http_server_message_headers_verify(verifier: Verifier) -> None:
    message = Message()  # what http.server and email parsing give: not a Mapping
    for name, value in signed().items():
        message[name.title()] = value
    assert verifier.verify(message, BODY, JSON) is KEY  # type: ignore[arg-type]
    message["X-LogOps-Nonce"] = new_nonce()  # a second, different nonce header
    assert reason_of(lambda: verifier.verify(message, BODY, JSON)) == "missing_auth"  # type: ignore[arg-type]


def test_grpc_metadata_pairs_verify(verifier: Verifier) -> None:
    body = b"\x0a\x02b1"
    pairs = [("user-agent", "grpc-python"), *signed(body, GRPC_MEDIA_TYPE).items()]
    assert verifier.verify(tuple(pairs), body, GRPC_MEDIA_TYPE) is KEY


@pytest.mark.parametrize(
    "template",
    ["v1={bad}, v1={good}", "v1={good},v1={bad}", "v0=abc, v1={good}", "  v1={good}  "],
)
def test_any_of_several_v1_values_may_match(verifier: Verifier, template: str) -> None:
    headers = signed()
    value = template.format(good=headers[H_SIGNATURE][3:], bad="f" * 64)
    assert verifier.verify({**headers, H_SIGNATURE: value}, BODY, JSON) is KEY


@pytest.mark.parametrize(
    "sent", ["application/json", "Application/JSON", "application/json; charset=utf-8"]
)
def test_the_media_type_is_signed_without_parameters_or_case(
    verifier: Verifier, sent: str
) -> None:
    assert verifier.verify(signed(media_type="APPLICATION/json;q=1"), BODY, sent) is KEY


def test_sign_headers_refuses_what_the_verifier_would() -> None:
    with pytest.raises(ValueError, match="nonce"):
        signed(nonce="short")
    with pytest.raises(ValueError, match="key id"):
        sign_headers(("bad key", SECRET), BODY, JSON)
    with pytest.raises(ValueError, match="secret"):
        sign_headers(("k", b""), BODY, JSON)


MEDIA_TYPES = st.from_regex(r"[A-Za-z][A-Za-z0-9.+-]{0,20}/[A-Za-z0-9.+-]{1,30}", fullmatch=True)
PARAMS = st.sampled_from(["", "; charset=utf-8", ";v=1", " ; a=b; c=d"])


@given(body=st.binary(max_size=2048), media_type=MEDIA_TYPES, params=PARAMS,
       skew=st.integers(-300, 300), use_old=st.booleans())
def test_any_signed_body_and_media_type_verifies(
    body: bytes, media_type: str, params: str, skew: int, use_old: bool
) -> None:
    verifier = Verifier(make_keyring(), MemoryNonceStore(), clock=lambda: NOW)
    key = ("test-key", OLD_SECRET if use_old else SECRET)
    headers = sign_headers(key, body, media_type, now=NOW + skew)
    assert verifier.verify(headers, body, media_type + params) is KEY


# -- what each refusal tells the client ------------------------------------------------------


def message_of(call: Callable[[], object]) -> str:
    with pytest.raises(Unauthenticated) as info:
        call()
    assert info.value.reason in ("missing_auth", "clock_skew", "bad_content_hash",
                                 "bad_signature", "replay")
    return info.value.message


def test_each_refusal_says_what_is_wrong(verifier: Verifier) -> None:
    def verify(headers: object, body: bytes = BODY) -> Callable[[], object]:
        return lambda: verifier.verify(headers, body, JSON)  # type: ignore[arg-type]

    good = signed()
    binary: list[tuple[str, object]] = [*good.items()]
    binary[0] = (H_KEY_ID, b"test-key")
    nine_signatures = ",".join(["v1=" + "0" * 64] * 9)
    cases = {
        "x-logops-key-id must be text": verify(binary),
        "x-logops-nonce given more than once": verify([*good.items(), (H_NONCE, new_nonce())]),
        "request is not signed: missing x-logops-nonce, x-logops-signature (see docs/signing.md)":
            verify({k: v for k, v in good.items() if k not in (H_NONCE, H_SIGNATURE)}),
        "x-logops-timestamp must be Unix seconds as a decimal integer":
            verify({**good, H_TIMESTAMP: "soon"}),
        "x-logops-signature must be v1=<64 lowercase hex digits>, comma-separated":
            verify({**good, H_SIGNATURE: "v2=abc"}),
        "x-logops-signature: at most 8 values": verify({**good, H_SIGNATURE: nine_signatures}),
        f"x-logops-content-sha256 does not match the body received ({len(BODY) + 1} bytes)":
            verify(good, BODY + b" "),
        "signature does not match (check the secret, the media type and the string to sign "
        "in docs/signing.md)": verify({**good, H_SIGNATURE: "v1=" + "0" * 64}),
        "timestamp 1699999699 is 301 s behind the server clock (1700000000); at most 300 s "
        "allowed": verify(signed(now=NOW - 301)),
        "timestamp 1700000301 is 301 s ahead of the server clock (1700000000); at most 300 s "
        "allowed": verify(signed(now=NOW + 301)),
    }
    for expected, call in cases.items():
        assert message_of(call) == expected
    verifier.verify(good, BODY, JSON)
    assert message_of(verify(good)) == "nonce already used (replayed request)"


def test_eight_signatures_are_enough_for_any_rotation(verifier: Verifier) -> None:
    headers = signed()
    others = ["v1=" + "0" * 64] * 7
    headers[H_SIGNATURE] = ",".join([*others, headers[H_SIGNATURE]])
    assert verifier.verify(headers, BODY, JSON) is KEY


def test_only_the_media_type_before_the_first_parameter_is_signed() -> None:
    assert media_type_of("Application/JSON; charset=utf-8; q=1") == "application/json"


def test_signing_refuses_what_no_gateway_would_accept_saying_why() -> None:
    cases = {
        "key id: 1-64 printable ASCII characters without spaces": (("a key", SECRET), None),
        "nonce: 22-128 base64url characters (>= 16 bytes, unpadded)": (KEY, "short"),
        "secret: must not be empty": (("k", b""), None),
    }
    for expected, (key, nonce) in cases.items():
        with pytest.raises(ValueError) as info:
            sign_headers(key, BODY, JSON, now=NOW, nonce=nonce)  # type: ignore[arg-type]
        assert str(info.value) == expected
    with pytest.raises(ValueError) as info:
        Verifier(make_keyring(), MemoryNonceStore(), max_skew_sec=300, nonce_ttl_sec=599)
    assert str(info.value) == "nonce_ttl_sec must be at least twice max_skew_sec"
