"""E-mail and IPv4 addresses never reach the sink readable, unless PII masking is off."""

from __future__ import annotations

import hashlib
import hmac
import re

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.common.config import ConfigError, PiiConfig
from services.common.model import Batch
from services.ingest import native
from services.ingest.native import make_normaliser
from services.ingest.pii import Masker

MASK = Masker(PiiConfig())
HASH = Masker(PiiConfig(mode="hash", hash_salt="pepper"))
HASH_RE = re.compile(r"<hash:[0-9a-f]{12}>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login by john.doe@example.com ok", "login by j***@example.com ok"),
        ("a@b.co", "a***@b.co"),
        ("mail a@b.co, b@c.io.", "mail a***@b.co, b***@c.io."),
        ("<jane+tag@mail.example.org>", "<j***@mail.example.org>"),
        ("from 83.11.45.6 port 22", "from 83.11.x.x port 22"),
        ("peer=10.0.0.1:8080", "peer=10.0.x.x:8080"),
        ("last hop 192.168.0.1.", "last hop 192.168.x.x."),
        ("0.0.0.0 and 255.255.255.255", "0.0.x.x and 255.255.x.x"),
        ("u@example.com from 1.2.3.4", "u***@example.com from 1.2.x.x"),
        ("a@b.co, c@d.io and e@f.de", "a***@b.co, c***@d.io and e***@f.de"),
        # A mention or a bare "@domain" does not hide the addresses after it.
        ("@here mail john.doe@example.com", "@here mail j***@example.com"),
        ("cc: @example.com, john@example.com", "cc: @example.com, j***@example.com"),
        ("waiting...10.0.0.1 answered", "waiting...10.0.x.x answered"),
        (".10.0.0.1", ".10.0.x.x"),
        # Not addresses: versions, out-of-range octets, longer digit runs, bare names.
        ("version 1.2.3.4.5", "version 1.2.3.4.5"),
        ("1.2.3.256", "1.2.3.256"),
        ("11.2.3.4.5 and 1234.5.6.7", "11.2.3.4.5 and 1234.5.6.7"),
        ("1.2.3.4.55.6.7.8", "1.2.3.4.55.6.7.8"),
        ("user@localhost", "user@localhost"),
        ("@example.com", "@example.com"),
        ("no addresses here", "no addresses here"),
    ],
)
def test_mask(text: str, expected: str) -> None:
    assert MASK.apply(text) == expected


def test_hash_is_stable_keyed_and_unreadable() -> None:
    text = "john.doe@example.com from 83.11.45.6"
    hashed = HASH.apply(text)
    assert HASH_RE.fullmatch(hashed.split(" from ")[0])
    assert HASH_RE.fullmatch(hashed.split(" from ")[1])
    assert HASH.apply(text) == hashed
    other = Masker(PiiConfig(mode="hash", hash_salt="salt"))
    assert other.apply(text) != hashed
    assert HASH.apply("83.11.45.6") == hashed.split(" from ")[1]


def test_a_hash_is_the_documented_keyed_digest_of_the_whole_address() -> None:
    # Operators find an address's records by computing the same digest themselves.
    def expected(address: str) -> str:
        mac = hmac.new(b"pepper", address.encode(), hashlib.sha256).hexdigest()
        return f"<hash:{mac[:12]}>"

    text = "login by john.doe@example.com from 83.11.45.6"
    want = f"login by {expected('john.doe@example.com')} from {expected('83.11.45.6')}"
    assert HASH.apply(text) == want


@pytest.mark.skipif(not native.AVAILABLE, reason="services.ingest._native is not built")
@pytest.mark.parametrize("masker", [MASK, HASH], ids=["mask", "hash"])
def test_the_c_path_stores_messages_masked_as_the_masker_masks_them(masker: Masker) -> None:
    pii = PiiConfig(mode=masker.mode, hash_salt="pepper" if masker.mode == "hash" else "")
    c_path = make_normaliser(pii, 1 << 16, native=True)
    assert c_path.native
    texts = ["@here mail john.doe@example.com", "a@b.co, c@d.io and e@f.de from 10.0.0.1"]
    batch = Batch(records=[{"msg": text} for text in texts], batch_id="b-1", emitter="em")
    lines = c_path.normalise_batch(batch, 0).data.splitlines()
    stored = [orjson.loads(line)["msg"] for line in lines]
    assert stored == [masker.apply(text) for text in texts]


def test_off_leaves_text_alone() -> None:
    off = Masker(PiiConfig(mode="off"))
    text = "john.doe@example.com from 83.11.45.6"
    assert off.apply(text) == text
    assert not off.enabled


def test_hash_needs_a_salt() -> None:
    with pytest.raises(ConfigError, match=r"^ingest\.pii\.hash_salt: "):
        Masker(PiiConfig(mode="hash"))


def test_unknown_mode_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^ingest\.pii\.mode: expected one of mask, hash, off$"):
        Masker(PiiConfig(mode="scramble"))


def test_long_hostile_text_stays_fast() -> None:
    for text in ("a" * 200_000 + "@", "@" + "a." * 100_000, "1." * 100_000, "x@" * 50_000):
        assert isinstance(MASK.apply(text), str)


_LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True)
_DOMAIN = st.from_regex(r"([a-z0-9-]{1,10}\.){1,3}[a-z]{2,6}", fullmatch=True)
EMAILS = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN)
IPS = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
# Surrounding text cannot extend an address: no digits, dots, "@" or e-mail characters.
FILLER = st.text(st.characters(blacklist_characters="@.0123456789_%+-", codec="utf-8"), max_size=30)


@given(FILLER, st.one_of(EMAILS, IPS), FILLER, st.sampled_from([MASK, HASH]))
def test_address_never_survives(before: str, address: str, after: str, masker: Masker) -> None:
    assume(not re.search(r"\w$", before) and not re.search(r"^\w", after))
    out = masker.apply(f"{before} {address} {after}")
    assert address not in out


@given(
    st.one_of(
        st.text(st.characters(blacklist_characters="@", codec="utf-8"), max_size=120),
        st.text("0123456789.:x ", max_size=40),
    )
)
def test_text_without_addresses_is_unchanged(text: str) -> None:
    assume(not re.search(r"(?<![0-9.])[0-9]{1,3}(\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])", text))
    assert MASK.apply(text) == text
    assert HASH.apply(text) == text
