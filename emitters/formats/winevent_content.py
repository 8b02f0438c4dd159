"""Realistic Windows events for the ``winevent_xml`` and ``winevent_json`` formats.

:func:`sample_event` draws one of five kinds: Sysmon event 1 (process create) and 3
(network connection), and Security-Auditing 4624 (logon), 4625 (failed logon) and 4688
(process creation). The share of 4625 is ``opts.error_ratio``; the rest is split 30/30/
20/20 between Sysmon 1, Sysmon 3, 4624 and 4688 (``level_mix`` and the missing-field
ratios do not apply: Windows always writes ``Level`` and ``SystemTime``, and a failed
logon is an audit failure at level 0, not an error level). The ``<System>`` values are those
Windows writes for each kind (provider GUID, version, level, task, keywords, the
logging process); the event data names come in the documented order, with values as
Windows renders them (hex logon ids, ``%%1833`` message references, ``-`` for none).

Executables carry a hash computed from their path, so one image always has one hash,
as on a real fleet. Everything else is drawn from the ``random.Random`` given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from emitters.content import USERS, ContentOptions, ipv4

SYSMON = "Microsoft-Windows-Sysmon"
SYSMON_GUID = "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"
SYSMON_CHANNEL = "Microsoft-Windows-Sysmon/Operational"
SECURITY = "Microsoft-Windows-Security-Auditing"
SECURITY_GUID = "{54849625-5478-4994-A5BA-3E3B0328C30D}"
KEYWORDS_CLASSIC = "0x8000000000000000"
KEYWORDS_SUCCESS = "0x8020000000000000"
KEYWORDS_FAILURE = "0x8010000000000000"

# The Data names of each kind, in the order the provider's manifest gives them.
DATA_NAMES: Mapping[tuple[str, int], tuple[str, ...]] = MappingProxyType(
    {
        (SYSMON, 1): (
            *("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion"),
            *("Description", "Product", "Company", "OriginalFileName", "CommandLine"),
            *("CurrentDirectory", "User", "LogonGuid", "LogonId", "TerminalSessionId"),
            *("IntegrityLevel", "Hashes", "ParentProcessGuid", "ParentProcessId"),
            *("ParentImage", "ParentCommandLine", "ParentUser"),
        ),
        (SYSMON, 3): (
            *("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User"),
            *("Protocol", "Initiated", "SourceIsIpv6", "SourceIp", "SourceHostname"),
            *("SourcePort", "SourcePortName", "DestinationIsIpv6", "DestinationIp"),
            *("DestinationHostname", "DestinationPort", "DestinationPortName"),
        ),
        (SECURITY, 4624): (
            *("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId"),
            *("TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId"),
            *("LogonType", "LogonProcessName", "AuthenticationPackageName"),
            *("WorkstationName", "LogonGuid", "TransmittedServices", "LmPackageName"),
            *("KeyLength", "ProcessId", "ProcessName", "IpAddress", "IpPort"),
            *("ImpersonationLevel", "RestrictedAdminMode", "TargetOutboundUserName"),
            *("TargetOutboundDomainName", "VirtualAccount", "TargetLinkedLogonId"),
            "ElevatedToken",
        ),
        (SECURITY, 4625): (
            *("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId"),
            *("TargetUserSid", "TargetUserName", "TargetDomainName", "Status"),
            *("FailureReason", "SubStatus", "LogonType", "LogonProcessName"),
            *("AuthenticationPackageName", "WorkstationName", "TransmittedServices"),
            *("LmPackageName", "KeyLength", "ProcessId", "ProcessName", "IpAddress", "IpPort"),
        ),
        (SECURITY, 4688): (
            *("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId"),
            *("NewProcessId", "NewProcessName", "TokenElevationType", "ProcessId"),
            *("CommandLine", "TargetUserSid", "TargetUserName", "TargetDomainName"),
            *("TargetLogonId", "ParentProcessName", "MandatoryLabel"),
        ),
    }
)


class Program(NamedTuple):
    """An executable as Sysmon describes it from its version resource."""

    image: str
    file_version: str
    description: str
    product: str
    company: str
    original: str
    command_lines: tuple[str, ...]


_WINDOWS = "Microsoft® Windows® Operating System"
_MS = "Microsoft Corporation"
_BUILD = "10.0.19041.1 (WinBuild.160101.0800)"
_SYS32 = "C:\\Windows\\System32\\"
PROGRAMS = (
    Program(
        _SYS32 + "cmd.exe",
        _BUILD,
        "Windows Command Processor",
        _WINDOWS,
        _MS,
        "Cmd.Exe",
        (
            '"C:\\Windows\\system32\\cmd.exe" /c whoami /all',
            "cmd.exe /c dir C:\\Users\\Public",
            'cmd /c "ping -n 1 10.0.0.1 & echo done"',
        ),
    ),
    Program(
        _SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
        "10.0.19041.546 (WinBuild.160101.0800)",
        "Windows PowerShell",
        _WINDOWS,
        _MS,
        "PowerShell.EXE",
        (
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\ops\\inventory.ps1",
            'powershell -c "Get-Process | Sort-Object CPU -Descending | Select -First 5"',
        ),
    ),
    Program(
        _SYS32 + "rundll32.exe",
        _BUILD,
        "Windows host process (Rundll32)",
        _WINDOWS,
        _MS,
        "RUNDLL32.EXE",
        ("rundll32.exe shell32.dll,Control_RunDLL desk.cpl",),
    ),
    Program(
        _SYS32 + "whoami.exe",
        _BUILD,
        "whoami - displays logged on user information",
        _WINDOWS,
        _MS,
        "whoami.exe",
        ("whoami /priv", "whoami /groups"),
    ),
    Program(
        _SYS32 + "net.exe",
        _BUILD,
        "Net Command",
        _WINDOWS,
        _MS,
        "net.exe",
        ("net use Z: \\\\fs01.corp.example\\share", "net user alice /domain"),
    ),
    Program(
        _SYS32 + "curl.exe",
        "8.4.0",
        "The curl executable",
        "The curl executable",
        "curl, https://curl.se/",
        "curl.exe",
        ("curl.exe -s https://updates.example.com/manifest.json -o manifest.json",),
    ),
    Program(
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        "122.0.6261.112",
        "Google Chrome",
        "Google Chrome",
        "Google LLC",
        "chrome.exe",
        (
            '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer',
            '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" https://intranet.example.com/',
        ),
    ),
    Program(
        "C:\\Program Files\\Git\\cmd\\git.exe",
        "2.44.0.windows.1",
        "Git for Windows",
        "Git",
        "The Git Development Community",
        "git.exe",
        ("git fetch --all --prune", 'git commit -m "fix: handle empty cart"'),
    ),
    Program(
        _SYS32 + "notepad.exe",
        _BUILD,
        "Notepad",
        _WINDOWS,
        _MS,
        "NOTEPAD.EXE",
        ('"C:\\Windows\\system32\\notepad.exe" C:\\Users\\Public\\notes.txt',),
    ),
)
PARENTS = (
    ("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE"),
    (_SYS32 + "services.exe", "C:\\Windows\\system32\\services.exe"),
    (_SYS32 + "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
    (_SYS32 + "cmd.exe", '"C:\\Windows\\system32\\cmd.exe"'),
    (
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
        '"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE" /n',
    ),
)
_DOMAIN = "CORP"
_FQDN = "corp.example"
WORKSTATIONS = (*(f"WS{n:02d}" for n in range(1, 13)), "SRV-APP01", "SRV-FS01", "DC01")
# The SID of the example domain in Microsoft's own documentation.
_DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"
_PORTS = ((443, "https"), (80, "http"), (445, "microsoft-ds"), (53, "domain"), (3389, "-"))
_LOGONS = (  # type, process, package, weight
    ("2", "User32 ", "Negotiate", 3),
    ("3", "NtLmSsp ", "NTLM", 4),
    ("3", "Kerberos", "Kerberos", 4),
    ("5", "Advapi  ", "Negotiate", 2),
    ("7", "User32 ", "Negotiate", 1),
    ("10", "User32 ", "Negotiate", 1),
    ("11", "User32 ", "Negotiate", 1),
)
_FAILED_NAMES = ("administrator", "admin", "test", "guest", "scanner", "backup")
# Wrong password, locked out, disabled; an unknown name always gets 0xc0000064.
_SUB_STATUS = ("0xc000006a", "0xc000006a", "0xc0000234", "0xc0000072")
_NULL_SID = "S-1-0-0"


def _hashes(image: str) -> str:
    data = image.lower().encode()
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest().upper()
    return f"MD5={md5},SHA256={hashlib.sha256(data).hexdigest().upper()}"


_HASHES = MappingProxyType({p.image: _hashes(p.image) for p in PROGRAMS})


def sample_event(rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
    """One Windows event record (the shape both Windows formats render)."""
    if rng.random() < opts.error_ratio:
        make: Callable[[random.Random, _Host], dict[str, Any]] = _logon_failure
    else:
        make = rng.choices(_MAKERS, weights=(3, 3, 2, 2))[0]
    host = _Host(rng.choice(WORKSTATIONS), rng.choice(USERS))
    rec = make(rng, host)
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    millis = f"{moment.microsecond // 1000:03d}"
    # Windows keeps 100 ns ticks (seven fractional digits); ``now`` has milliseconds.
    rec["ts"] = f"{moment:%Y-%m-%dT%H:%M:%S}.{millis}{rng.randint(0, 9999):04d}Z"
    if rec["provider"] == SYSMON:
        rec["event_data"]["UtcTime"] = f"{moment:%Y-%m-%d %H:%M:%S}.{millis}"
    rec["host"] = f"{host.computer}.{_FQDN}"
    rec["record_id"] = rng.randint(10_000, 9_999_999)
    rec["msg"] = summary(rec["event_id"], rec["provider"], rec["event_data"])
    return {key: rec[key] for key in RECORD_KEYS if key in rec}


# The keys of an event record, in the order records list them.
RECORD_KEYS = (
    *("ts", "level", "msg", "host", "event_id", "version", "task", "opcode", "keywords"),
    *("channel", "provider", "provider_guid", "record_id", "activity_id", "pid", "thread_id"),
    *("user_id", "outcome", "event_data"),
)


def number_or_text(text: str) -> int | str:
    """``text`` as an int when it is a plain decimal number (as ids are), else as it is."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else text


class _Host(NamedTuple):
    computer: str
    user: str


def summary(event_id: object, provider: object, data: Mapping[str, Any]) -> str:
    """The short human line for an event: what happened, and to what."""
    get = data.get
    if provider == SYSMON and event_id == 1:
        return f"Process Create: {get('Image', '-')}"
    if provider == SYSMON and event_id == 3:
        target = f"{get('DestinationIp', '-')}:{get('DestinationPort', '-')}"
        return f"Network connection detected: {get('Image', '-')} -> {target}"
    if provider == SECURITY and event_id == 4624:
        return f"An account was successfully logged on: {get('TargetUserName', '-')}"
    if provider == SECURITY and event_id == 4625:
        return f"An account failed to log on: {get('TargetUserName', '-')}"
    if provider == SECURITY and event_id == 4688:
        return f"A new process has been created: {get('NewProcessName', '-')}"
    return f"{provider} event {event_id}"


def _guid(rng: random.Random, upper: bool = False) -> str:
    text = "-".join(f"{rng.getrandbits(n * 4):0{n}x}" for n in (8, 4, 4, 4, 12))
    return "{" + (text.upper() if upper else text) + "}"


def _sid(user: str) -> str:
    return f"{_DOMAIN_SID}-{1104 + USERS.index(user)}"


def _system(provider: str, event_id: int, version: int, task: int, keywords: str) -> dict[str, Any]:
    sysmon = provider == SYSMON
    return {
        "level": 4 if sysmon else 0,
        "event_id": event_id,
        "version": version,
        "task": task,
        "opcode": 0,
        "keywords": keywords,
        "channel": SYSMON_CHANNEL if sysmon else "Security",
        "provider": provider,
        "provider_guid": SYSMON_GUID if sysmon else SECURITY_GUID,
    }


def _sysmon_execution(rng: random.Random, rec: dict[str, Any]) -> None:
    rec["pid"] = rng.randint(2000, 4000)
    rec["thread_id"] = rng.randint(2000, 9000)
    rec["user_id"] = "S-1-5-18"


def _process_create(rng: random.Random, host: _Host) -> dict[str, Any]:
    program = rng.choice(PROGRAMS)
    parent, parent_cmd = rng.choice(PARENTS)
    user = f"{_DOMAIN}\\{host.user}"
    rec = _system(SYSMON, 1, 5, 1, KEYWORDS_CLASSIC)
    _sysmon_execution(rng, rec)
    values = (
        *("-", "", _guid(rng), str(rng.randint(1000, 30000)), program.image),
        *(program.file_version, program.description, program.product, program.company),
        *(program.original, rng.choice(program.command_lines), f"C:\\Users\\{host.user}\\"),
        *(user, _guid(rng), hex(rng.randint(0x10000, 0xFFFFFF)), str(rng.choice((0, 1, 2)))),
        *(rng.choice(("Medium", "High", "System")), _HASHES[program.image], _guid(rng)),
        *(str(rng.randint(500, 30000)), parent, parent_cmd, user),
    )
    rec["event_data"] = dict(zip(DATA_NAMES[SYSMON, 1], values, strict=True))
    return rec


def _network_connect(rng: random.Random, host: _Host) -> dict[str, Any]:
    program = rng.choice(PROGRAMS)
    port, port_name = rng.choice(_PORTS)
    rec = _system(SYSMON, 3, 5, 3, KEYWORDS_CLASSIC)
    _sysmon_execution(rng, rec)
    values = (
        *("-", "", _guid(rng), str(rng.randint(1000, 30000)), program.image),
        *(f"{_DOMAIN}\\{host.user}", rng.choice(("tcp", "tcp", "udp")), "true", "false"),
        *(ipv4(rng, public=False), f"{host.computer}.{_FQDN}", str(rng.randint(49152, 65535))),
        *("-", "false", ipv4(rng), rng.choice(("-", "updates.example.com", "cdn.example.net"))),
        *(str(port), port_name),
    )
    rec["event_data"] = dict(zip(DATA_NAMES[SYSMON, 3], values, strict=True))
    return rec


def _security_execution(rng: random.Random, rec: dict[str, Any], pid: int) -> None:
    rec["pid"] = pid
    rec["thread_id"] = rng.randint(700, 9000)


def _logon(rng: random.Random, host: _Host) -> dict[str, Any]:
    logon_type, process, package, _ = rng.choices(_LOGONS, weights=[x[3] for x in _LOGONS])[0]
    local = logon_type in ("2", "5", "7", "11")
    rec = _system(SECURITY, 4624, 2, 12544, KEYWORDS_SUCCESS)
    rec["activity_id"] = _guid(rng, upper=True)
    _security_execution(rng, rec, rng.randint(600, 800))
    ntlm = package == "NTLM"
    values = (
        *("S-1-5-18", f"{host.computer}$", _DOMAIN, "0x3e7", _sid(host.user), host.user),
        *(_DOMAIN, hex(rng.randint(0x10000, 0xFFFFFFF)), logon_type, process, package),
        host.computer if not ntlm else rng.choice(WORKSTATIONS),
        *(("{00000000-0000-0000-0000-000000000000}" if ntlm else _guid(rng, upper=True)), "-"),
        *(("NTLM V2", "128") if ntlm else ("-", "0")),
        *(hex(rng.randint(0x200, 0x3FF)) if local else "0x0", _logon_process(local)),
        *(
            ("127.0.0.1", "0")
            if local
            else (ipv4(rng, public=False), str(rng.randint(49152, 65535)))
        ),
        *("%%1833", "-" if local else "%%1843", "-", "-", "%%1843", "0x0"),
        rng.choice(("%%1842", "%%1843")),
    )
    rec["event_data"] = dict(zip(DATA_NAMES[SECURITY, 4624], values, strict=True))
    rec["outcome"] = "success"
    return rec


def _logon_process(local: bool) -> str:
    return _SYS32 + "winlogon.exe" if local else "-"


def _logon_failure(rng: random.Random, host: _Host) -> dict[str, Any]:
    rec = _system(SECURITY, 4625, 0, 12544, KEYWORDS_FAILURE)
    rec["activity_id"] = _guid(rng, upper=True)
    _security_execution(rng, rec, rng.randint(600, 800))
    remote = rng.random() < 0.7
    target = rng.choice(_FAILED_NAMES) if remote and rng.random() < 0.6 else host.user
    sub_status = rng.choice(_SUB_STATUS) if target in USERS else "0xc0000064"
    subject = (
        (_NULL_SID, "-", "-", "0x0")
        if remote
        else ("S-1-5-18", f"{host.computer}$", _DOMAIN, "0x3e7")
    )
    values = (
        *subject,
        *(_NULL_SID, target, _DOMAIN if target in USERS else "", "0xc000006d", "%%2313"),
        *(sub_status, "3" if remote else "2", "NtLmSsp " if remote else "User32 "),
        *("NTLM" if remote else "Negotiate", "-" if remote else host.computer, "-", "-", "0"),
        *("0x0" if remote else hex(rng.randint(0x200, 0x3FF)), _logon_process(not remote)),
        *((ipv4(rng), str(rng.randint(1024, 65535))) if remote else ("127.0.0.1", "0")),
    )
    rec["event_data"] = dict(zip(DATA_NAMES[SECURITY, 4625], values, strict=True))
    rec["outcome"] = "failure"
    return rec


def _process_creation(rng: random.Random, host: _Host) -> dict[str, Any]:
    program = rng.choice(PROGRAMS)
    parent, _ = rng.choice(PARENTS)
    rec = _system(SECURITY, 4688, 2, 13312, KEYWORDS_SUCCESS)
    # The kernel logs process creation: Execution names the System process.
    _security_execution(rng, rec, 4)
    elevated = rng.random() < 0.2
    values = (
        *(_sid(host.user), host.user, _DOMAIN, hex(rng.randint(0x10000, 0xFFFFFF))),
        *(hex(rng.randint(0x100, 0x7FFF)), program.image, "%%1937" if elevated else "%%1938"),
        *(hex(rng.randint(0x100, 0x7FFF)), rng.choice(program.command_lines), _NULL_SID, "-"),
        *("-", "0x0", parent, "S-1-16-12288" if elevated else "S-1-16-8192"),
    )
    rec["event_data"] = dict(zip(DATA_NAMES[SECURITY, 4688], values, strict=True))
    rec["outcome"] = "success"
    return rec


_MAKERS = (_process_create, _network_connect, _logon, _process_creation)
