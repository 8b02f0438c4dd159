"""The ``syslog3164`` format: BSD syslog exactly as RFC 3164 section 4.1 lays it out.

``<PRI>Mmm dd HH:MM:SS HOSTNAME TAG[pid]: MSG``, for example
``<38>Mar  2 04:05:06 web01 sshd[4412]: Accepted publickey for alice from 192.0.2.44``.

Rendering: PRI from the level and facility (:mod:`emitters.formats.syslog_header`), no
leading zeros; the time in UTC with the day padded by a space, no year and no zone (a
record whose ``ts`` cannot be read gets the clock's time, as an RFC 3164 relay would);
HOSTNAME without its domain (section 4.1.2: an IP address stays whole), ``-`` when
absent; TAG the service's letters and digits, at most 32 (none when that leaves
nothing); ``[pid]`` when there is a pid and a TAG. Control characters in MSG are written
as ``#ooo`` (octal, as rsyslog does) so a record stays on one line, and MSG is cut (on
a UTF-8 character boundary) so the whole packet is at most 1024 bytes.

Parsing takes what real senders write (util-linux ``logger --rfc3164``, rsyslog's
traditional forward format): a strict PRI, timestamp and HOSTNAME, then ``TAG:`` or
``TAG[pid]:`` with any printable TAG (``postfix/smtpd``, ``CRON``, ``systemd-logind``),
or no TAG at all (then all of it is ``msg``, so a message of a record with no service
that starts with ``word:`` reads back as a TAG). Lines over 1024 bytes are read too, as
receivers do. ``level`` is the ``<PRI>`` text (the Ingest Gateway maps it by its
severity), beside ``syslog_facility`` and ``syslog_severity``; ``ts`` the 3164 text.
Lines with an RFC 3339 time (rsyslog's ``RSYSLOG_ForwardFormat``, ``loggen`` without
``-P``) or no HOSTNAME are the lenient ``syslog`` format's.

The format has no place for ``run_id``, ``stream`` or ``seq``: such records travel as
``raw`` with those fields beside the line.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any

from emitters.content import HOSTS, USERS, ContentOptions, ipv4, pick_level, rfc3339_ms
from emitters.formats.base import FormatError
from emitters.formats.syslog_header import (
    MAX_PRI,
    TS_3164,
    epoch_ms,
    host_3164,
    now_ms,
    pri_text,
    split_pri,
    text_3164,
    text_of,
)

MAX_PACKET = 1024
MAX_TAG = 32
_MAX_PID = 20
# [!-~] less "[" and "]"; the last character of a HOSTNAME is no ":" either, so that a
# line without HOSTNAME ("... sshd[7]: x" or "... cron: x") is not read as having one.
_HOST = r"[!-Z\\^-~]{0,254}[!-9;-Z\\^-~]"
_HEAD = re.compile(rf"<(?P<pri>0|[1-9][0-9]{{0,2}})>(?P<ts>{TS_3164}) (?P<host>{_HOST}) ")
_STRICT_TS = re.compile(TS_3164)
_TAG = re.compile(r"(?P<tag>[!-9;-Z\\^-~]+)(?:\[(?P<pid>[!-Z\\^-~]*)\])?: ?")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class Syslog3164Format:
    """RFC 3164 BSD syslog; sampled records are sshd, sudo, cron and kernel events."""

    name = "syslog3164"

    def render(self, rec: dict[str, Any]) -> str:
        head = f"{pri_text(rec)}{_ts_text(rec.get('ts'))} {host_3164(text_of(rec.get('host')))} "
        tag = _tag(text_of(rec.get("service")))
        if tag:
            pid = _pid(text_of(rec.get("pid")))
            head = f"{head}{tag}[{pid}]: " if pid else f"{head}{tag}: "
        msg = text_of(rec.get("msg"))
        if not msg.isprintable():
            msg = _CONTROL.sub(_escape_one, msg)
        # The head is ASCII; a message of at most budget/4 characters always fits.
        budget = MAX_PACKET - len(head)
        if len(msg) * 4 > budget:
            msg = _cut(msg, budget)
        return head + msg

    def parse(self, line: str) -> dict[str, Any]:
        head = _HEAD.match(line)
        if head is None:
            raise FormatError(_why_not(line))
        pri, ts, host = head.group("pri", "ts", "host")
        rec: dict[str, Any] = {"ts": ts, "level": f"<{pri}>"}
        try:
            rec["syslog_facility"], rec["syslog_severity"] = split_pri(pri)
        except ValueError as exc:
            raise FormatError(str(exc)) from None
        if host != "-":
            rec["host"] = host
        start = head.end()
        tag = _TAG.match(line, start)
        if tag is not None:
            rec["service"] = tag.group("tag")
            pid = tag.group("pid")
            if pid:
                rec["pid"] = int(pid) if pid.isdigit() and len(pid) < 19 else pid
            start = tag.end()
        if start < len(line):
            rec["msg"] = line[start:]
        return rec

    def looks_like(self, line: str) -> bool:
        head = _HEAD.match(line)
        # A CEF event behind a BSD header is the cef format's.
        return (
            head is not None
            and int(head.group("pri")) <= MAX_PRI
            and not line.startswith("CEF:", head.end())
        )

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return _sample(rng, opts, now)


def _why_not(line: str) -> str:
    if not line.startswith("<"):
        return "not an RFC 3164 line: expected '<PRI>Mmm dd HH:MM:SS HOSTNAME'"
    match = re.match(r"<([0-9]{1,3})>", line)
    if match is None or (match.group(1).startswith("0") and match.group(1) != "0"):
        return "RFC 3164 PRI must be 1-3 digits without leading zeros in '<>'"
    if _STRICT_TS.match(line, match.end()) is None:
        return "RFC 3164 timestamp must be 'Mmm dd HH:MM:SS' with a space-padded day"
    return "RFC 3164 HOSTNAME missing or not followed by a space"


def _ts_text(value: Any) -> str:
    if type(value) is str and len(value) == 15 and _STRICT_TS.fullmatch(value):
        return value
    clock = now_ms()
    ms = epoch_ms(value, clock)
    return text_3164((clock if ms is None else ms) // 1000)


@lru_cache(maxsize=1024)
def _tag(service: str) -> str:
    return _NOT_ALNUM.sub("", service)[:MAX_TAG]


def _pid(text: str) -> str:
    return text if text.isdigit() and len(text) <= _MAX_PID else _tag(text)[:_MAX_PID]


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if char >= "\ud800" else f"#{ord(char):03o}"


def _cut(msg: str, budget: int) -> str:
    data = msg.encode()
    if len(data) <= budget:
        return msg
    # Dropping the bytes of a character cut in two leaves valid UTF-8.
    return data[: max(budget, 0)].decode("utf-8", "ignore")


# -- sample ----------------------------------------------------------------------------

_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_KERN, _AUTH, _DAEMON, _AUTHPRIV, _CRON = 0, 4, 3, 10, 9
# (program, facility, has pid, template) by level.
_EVENTS: dict[str, tuple[tuple[str, int, bool, str], ...]] = {
    "TRACE": (
        ("sshd", _AUTH, True, "debug3: receive packet: type 50 from {ip} port {port}"),
        ("dhclient", _DAEMON, True, "DHCPREQUEST for {lan} on eth0 to {lan_gw} port 67"),
    ),
    "DEBUG": (
        ("sshd", _AUTH, True, "debug1: Connection from {ip} port {port} on {lan} port 22"),
        ("kernel", _KERN, False, "[{uptime}] e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps"),
    ),
    "INFO": (
        (
            "sshd",
            _AUTH,
            True,
            "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{fp}",
        ),
        (
            "sshd",
            _AUTH,
            True,
            "pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)",
        ),
        (
            "sudo",
            _AUTHPRIV,
            False,
            "{user} : TTY=pts/{tty} ; PWD=/home/{user} ; USER=root ; "
            "COMMAND=/usr/bin/systemctl restart nginx.service",
        ),
        (
            "CRON",
            _CRON,
            True,
            "(root) CMD (/usr/local/bin/backup.sh --incremental >/dev/null 2>&1)",
        ),
        ("systemd", _DAEMON, True, "Started Session {tty} of User {user}."),
        (
            "kernel",
            _KERN,
            False,
            "[{uptime}] usb 1-1: new high-speed USB device number {usb} using xhci_hcd",
        ),
    ),
    "WARN": (
        ("sshd", _AUTH, True, "Failed password for invalid user {user} from {ip} port {port} ssh2"),
        (
            "sudo",
            _AUTHPRIV,
            False,
            "{user} : 3 incorrect password attempts ; TTY=pts/{tty} ; "
            "PWD=/home/{user} ; USER=root ; COMMAND=/bin/bash",
        ),
        (
            "kernel",
            _KERN,
            False,
            "[{uptime}] TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
        ),
    ),
    "ERROR": (
        (
            "sshd",
            _AUTH,
            True,
            "error: maximum authentication attempts exceeded for root from {ip}"
            " port {port} ssh2 [preauth]",
        ),
        ("CRON", _CRON, True, "(CRON) error (grandchild #{pid} failed with exit status 1)"),
        (
            "kernel",
            _KERN,
            False,
            "[{uptime}] EXT4-fs error (device sda1): ext4_find_entry:1455: "
            "inode #{uid}: comm updatedb: reading directory lblock 0",
        ),
    ),
    "FATAL": (
        (
            "kernel",
            _KERN,
            False,
            "[{uptime}] Out of memory: Killed process {pid} (java) "
            "total-vm:{kb}kB, anon-rss:{kb}kB",
        ),
        ("kernel", _KERN, False, "[{uptime}] Kernel panic - not syncing: Fatal exception"),
    ),
}


def _sample(rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
    """A system event; ``ts`` and ``level`` are always there (3164 cannot leave them out)."""
    level = pick_level(rng, opts)
    program, facility, has_pid, template = rng.choice(_EVENTS[level])
    pid = rng.randint(300, 65_000)
    msg = template.format(
        ip=ipv4(rng),
        port=rng.randint(1024, 65_535),
        lan=ipv4(rng, public=False),
        lan_gw=ipv4(rng, public=False),
        user=rng.choice(USERS),
        uid=rng.randint(1000, 1999),
        tty=rng.randint(0, 9),
        usb=rng.randint(2, 12),
        fp="".join(rng.choices(_BASE64, k=43)),
        uptime=f"{rng.randint(1_000_000, 9_999_999_999) / 1_000_000:12.6f}",
        pid=pid + 1,
        kb=rng.randint(100_000, 9_000_000),
    )
    rec: dict[str, Any] = {
        "ts": rfc3339_ms(now),
        "level": level,
        "msg": msg,
        "service": program,
        "host": rng.choice(HOSTS).partition(".")[0],
        "syslog_facility": facility,
    }
    if has_pid:
        rec["pid"] = pid
    return rec
