"""Hand-made mutants of the C hot path, each run against the differential suites.

mutmut mutates Python only, so the C path (``services/ingest/_native.c`` and ``csrc/``) is
checked with mutants written by hand: each is one small edit of the kind a slip makes
(a bound off by one, a test negated, a branch dropped). For each, the sources are copied
into a temporary folder, the edit applied, the extension compiled there (as ``make
sanitize`` does) and loaded in place of the built one, and the C-path tests run
(``tests/unit/ingest/test_native_*.py`` and ``test_batch_index.py``: the Python reference
beside the C path on generated and hand-picked inputs). A mutant is killed when a test
fails; one that does not compile is reported as such (the list is then wrong).

    .venv/bin/python -m tests.mutation.c_mutants            # every mutant
    .venv/bin/python -m tests.mutation.c_mutants wire-63    # some, by id

``make mutation-c`` runs it. Run alone, it takes about a minute per mutant on two cores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "services" / "ingest"
TESTS = [
    # First: the quickest, so that the mutants of the raw-line readers die in seconds.
    "tests/unit/ingest/test_native_raw_layouts.py",
    "tests/unit/ingest/test_native_api.py",
    "tests/unit/ingest/test_native_bodies.py",
    "tests/unit/ingest/test_native_equivalence.py",
    "tests/unit/ingest/test_native_syslog.py",
    "tests/unit/ingest/test_native_syslog_sd.py",
    "tests/unit/ingest/test_native_raw.py",
    "tests/unit/ingest/test_batch_index.py",
]
CFLAGS = ["-O1", "-shared", "-fPIC", "-w"]


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # under services/ingest
    old: str  # must occur exactly once in the file
    new: str
    why: str  # what a user would lose
    # Set when the output cannot differ (the record only leaves the C path for the Python
    # one, which gives the same line): why, in one line. Such a survivor is explained.
    equivalent: str = ""


MUTANTS = (
    Mutant("wire-63", "csrc/wire.c", "if (shift == 63 && b > 1)", "if (shift == 63 && b > 2)",
           "a 10-byte varint overflowing 64 bits read as a number instead of refused"),
    Mutant("wire-len", "csrc/wire.c", "n > (uint64_t)(end - *pp)", "n > (uint64_t)(end - *pp) + 1",
           "a length running one byte past the message read out of bounds"),
    Mutant("wire-fixed64", "csrc/wire.c", "if (end - *pp < 8)", "if (end - *pp < 7)",
           "a truncated fixed64 field skipped past the end"),
    Mutant("wire-meta-field", "csrc/wire.c", "if (field >= 1 && field <= 4)",
           "if (field >= 1 && field <= 3)",
           "run_id (field 4) of a LogBatch ignored by the C path"),
    Mutant("json-surrogate", "csrc/json.c", "(hi >= 0xDC00 && hi <= 0xDFFF)",
           "(hi >= 0xDC00 && hi < 0xDFFF)",
           "a lone low surrogate \\uDFFF accepted instead of left to orjson"),
    Mutant("json-control", "csrc/json.c", "if (ch < 0x20) {", "if (ch < 0x1F) {",
           "a raw 0x1F control character inside a JSON string accepted"),
    Mutant("json-ws", "csrc/json.c",
           "(*c->p == ' ' || *c->p == '\\n' || *c->p == '\\r' || *c->p == '\\t')",
           "(*c->p == ' ' || *c->p == '\\n' || *c->p == '\\r')",
           "a tab between JSON tokens refused on the C path"),
    Mutant("text-year", "csrc/text.c", "if (year < 1970 || month < 1",
           "if (year < 1969 || month < 1",
           "a 1969 timestamp taken as canonical instead of normalised"),
    Mutant("text-month", "csrc/text.c", "month > 12 || day < 1", "month > 13 || day < 1",
           "month 13 taken as a canonical timestamp"),
    Mutant("text-leap", "csrc/text.c", "year % 400 == 0;", "year % 400 == 1;",
           "29 February 2000 not taken as canonical by the C path",
           "only the fast path is lost: the Python path stores the same line for that day"),
    Mutant("text-utf8-lead", "csrc/text.c", "if (c >= 0xC2 && c <= 0xDF)",
           "if (c >= 0xC0 && c <= 0xDF)",
           "overlong UTF-8 (0xC0 0x80) taken as valid text"),
    Mutant("mask-octet-255", "csrc/mask.c", 'memcmp(s + at[k], "255", 3) > 0',
           'memcmp(s + at[k], "256", 3) > 0',
           "999.256.1.1-style numbers with a 256 octet masked as addresses"),
    Mutant("mask-digit-before", "csrc/mask.c",
           "if (is_digit(before) || (before == '.' && start > 1",
           "if ((before == '.' && start > 1",
           "a version number like 11.2.3.4.5 masked as an address"),
    Mutant("mask-run", "csrc/mask.c", "if (run < 1 || run > 3 || p + run >= n",
           "if (run < 1 || run > 4 || p + run >= n",
           "1234.5.6.7 masked as an address"),
    Mutant("idtable-probe", "csrc/idtable.c", "if (e->k0 == k0 && e->k1 == k1) {",
           "if (e->k0 == k0) {",
           "two batch ids sharing half their digest taken as one: a batch lost as a duplicate"),
    Mutant("text-control-word", "csrc/text.c", "return (w - ONES * 0x20) & ~w & HIGHS;",
           "return (w - ONES * 0x1F) & ~w & HIGHS;",
           "a 0x1F byte in an 8-byte word written unescaped: a stored line that is not JSON"),
    Mutant("text-escape-quote", "csrc/text.c",
           "has_byte(w, '\"') | has_byte(w, '\\\\') | has_control(w)",
           "has_byte(w, '\\\\') | has_control(w)",
           "a quote inside an 8-byte run written bare: a stored line that is not JSON"),
    Mutant("records-level-missing", "csrc/records.c",
           "int level_missing = (flags & (LEVEL_ABSENT | LEVEL_INVALID)) != 0;",
           "int level_missing = (flags & LEVEL_ABSENT) != 0;",
           "an invalid level stored with level_missing false"),
    Mutant("records-syslog-severity", "csrc/records.c",
           "if (sev != NULL || PyErr_Occurred()) {\n            return PyErr_Occurred() ? -1 : 0;",
           "if (PyErr_Occurred()) {\n            return PyErr_Occurred() ? -1 : 0;",
           "a syslog_severity field ignored when the record has no level"),
    Mutant("mask-dots", "csrc/mask.c", "if (count_dots(*res, *res_n) >= 3) {",
           "if (count_dots(*res, *res_n) >= 4) {",
           "an address alone in a message (three dots) stored unmasked"),
    Mutant("mask-tld", "csrc/mask.c", "if (k - start >= 2) {", "if (k - start >= 3) {",
           "an address at a two-letter top-level domain (.io, .de) stored unmasked"),
    Mutant("idtable-evict", "csrc/idtable.c", "if (t->count == t->max_ids) {",
           "if (t->count == t->max_ids + 1) {",
           "the idempotency index growing one past its cap"),
    Mutant("records-int-sign", "csrc/records.c",
           'if (n < 0 && PUT_LIT(&r->out, "-") < 0) {', 'if (n > 0 && PUT_LIT(&r->out, "-") < 0) {',
           "a positive int field (a syslog pid, facility, severity) stored negative"),
    Mutant("records-int-overflow", "csrc/records.c", "if (!overflow) {", "if (overflow >= 0) {",
           "an int field from 2**63 to 2**64-1 stored as -1 instead of its value"),
    Mutant("records-int-magnitude", "csrc/records.c",
           "n < 0 ? 0 - (uint64_t)n : (uint64_t)n", "(uint64_t)n",
           "a negative int field stored as a huge positive number"),
    Mutant("syslog-pri-max", "csrc/syslog.c", "L->pri > 191", "L->pri > 192",
           "a syslog line with PRI 192 stored as parsed instead of as the core reads it"),
    Mutant("syslog-leap", "csrc/syslog.c", "year % 100 != 0)", "year % 100 != 1)",
           "29 February 1900 taken as a real day in an RFC 5424 TIMESTAMP"),
    Mutant("syslog-fraction", "csrc/syslog.c", "i - start > 6", "i - start > 7",
           "an RFC 5424 TIMESTAMP with 7 fractional digits taken"),
    Mutant("syslog-field-limit", "csrc/syslog.c", "i >= 1 && i <= max && i < n", "i >= 1 && i < n",
           "a HOSTNAME of 256 characters taken"),
    Mutant("syslog-pid-digits", "csrc/syslog.c", "if (pid && n < 19", "if (pid && n < 20",
           "a 19-digit PROCID stored as a number instead of text"),
    Mutant("syslog-bom", "csrc/syslog.c", "if (n - msg >= 3 && memcmp",
           "if (n - msg >= 4 && memcmp",
           "a MSG that is only the UTF-8 BOM stored as a message"),
    Mutant("syslog-sd", "csrc/syslog.c", "s[i] == '-' && (i + 1 == n || s[i + 1] == ' ')",
           "s[i] == '-' && (i + 1 == n || s[i + 1] != '[')",
           "a line whose STRUCTURED-DATA is '-x' taken, its MSG cut"),
    Mutant("syslog-utf8", "csrc/syslog.c", "!utf8_valid(s + line.sd, n - line.sd)",
           "!utf8_valid(s + line.sd, n - line.sd - 1)",
           "a message ending in a byte that is not UTF-8 raises instead of being read in Python"),
    Mutant("sd-name-33", "csrc/syslog.c", "return i <= 32 ? i : 0;", "return i <= 33 ? i : 0;",
           "an SD-ID or PARAM-NAME of 33 characters taken"),
    Mutant("sd-unescape-bracket", "csrc/syslog.c",
           "(s[i + 1] == '\"' || s[i + 1] == '\\\\' || s[i + 1] == ']')",
           "(s[i + 1] == '\"' || s[i + 1] == '\\\\')",
           "an escaped ] in a PARAM-VALUE stored with its backslash"),
    Mutant("sd-value-bracket", "csrc/syslog.c", "if (c == ']') {\n            return -1;",
           "if (c == '\\0') {\n            return -1;",
           "a bare ] inside a PARAM-VALUE taken although the grammar refuses it"),
    Mutant("sd-twice", "csrc/syslog.c", "id == NULL ? -1 : PyDict_Contains(sd, id)",
           "id == NULL ? -1 : 0 * PyDict_Contains(sd, id)",
           "a line with an SD-ID given twice stored instead of refused"),
    Mutant("sd-lift-list", "csrc/syslog.c", "if (v != NULL && PyUnicode_CheckExact(v) &&",
           "if (v != NULL &&",
           "a repeated run_id (a list) lifted out as the record's run_id"),
    Mutant("sd-sequence-id-zero", "csrc/syslog.c", "if (v >= 1 && v <= 2147483647LL)",
           "if (v >= 0 && v <= 2147483647LL)",
           "meta sequenceId=\"0\" taken as the seq"),
    Mutant("raw-alias-group", "csrc/raw.c", "K_FORMAT) || (groups & (1 << alias_group(key)) & ~1)",
           "K_FORMAT) || (groups & (1 << alias_group(key)) & ~3)",
           "a record's timestamp alias stored beside the time its raw line gives"),
    Mutant("raw-flat-run-id", "csrc/raw.c", "if (rc == 1 && f->has_run_id) {",
           "if (rc == 1 && 0) {",
           "a JSON or protobuf record's run_id lost when its raw line names none"),
    Mutant("raw-level", "csrc/raw.c",
           "parsed = sl_parse(s, n, &pri);\n        *level = SYSLOG_LEVELS[pri % 8];",
           "parsed = sl_parse(s, n, &pri);\n        *level = SYSLOG_LEVELS[(pri + 1) % 8];",
           "a raw RFC 5424 line stored with the wrong level"),
    Mutant("raw-named", "csrc/raw.c", "if (raw_is(name, name_n, RAW_NAMES[i])) {",
           "if (!raw_is(name, name_n, RAW_NAMES[i])) {",
           "a line named text or json read as RFC 5424"),
    Mutant("flat-run-id-empty", "csrc/flat.c",
           "run = f->run_id.text.n > 0 ? f->run_id.text : run;", "run = f->run_id.text;",
           "a JSON record's empty run_id stored instead of the batch's"),
    Mutant("flat-run-id-type", "csrc/flat.c", "if (f->run_id.kind != V_STRING ||",
           "if (f->run_id.kind == V_NULL ||",
           "a JSON record's numeric run_id stored as the run instead of as src_run_id"),
    Mutant("records-run-id-empty", "csrc/records.c", "if (run.n > 0) {", "if (run.n >= 0) {",
           "a record's empty run_id stored instead of the batch's"),
    Mutant("records-head", "csrc/records.c", "buf_put(&r->out, r->head, r->run_at) < 0",
           "buf_put(&r->out, r->head, r->run_at - 1) < 0",
           "a record's own run_id written into a broken line"),
    Mutant("syslog-strip", "csrc/syslog.c", "(s[n - 1] == '\\n' || s[n - 1] == '\\r')",
           "(s[n - 1] == '\\n')",
           "a trailing CR kept in the message"),
    Mutant("syslog-offset-hour", "csrc/syslog.c", "num2(s + i + 1) <= 23", "num2(s + i + 1) <= 24",
           "an RFC 5424 TIMESTAMP with offset +24:00 taken"),
    Mutant("frames-first-digit", "csrc/syslog.c", "if (s[i] < '1' || s[i] > '9')",
           "if (s[i] < '0' || s[i] > '9')",
           "an octet count with a leading zero read instead of closing the connection"),
    Mutant("frames-limit", "csrc/syslog.c", "size > limit ||", "size > limit + 1 ||",
           "a message one byte over the size limit kept"),
    Mutant("frames-crlf", "csrc/syslog.c", "s[stop - 2] == '\\r' ? 2 : 1",
           "s[stop - 2] == '\\r' ? 1 : 1",
           "the CR of a CR LF inside a counted frame kept in the message"),
    # The RFC 3164 and access-log readers and their times (csrc/layouts.c, csrc/raw.c),
    # against test_native_raw_layouts.py.
    Mutant("tl-leap", "csrc/layouts.c", "year % 100 != 0)", "year % 100 != 1)",
           "29 February 2100 in an access time stored as a day (Python: no time)"),
    Mutant("tl-offset-hours", "csrc/layouts.c", "oh > 23 || om > 59", "oh > 24 || om > 59",
           "an access time with offset +2400 stored instead of kept as src_ts"),
    Mutant("tl-offset-sign", "csrc/layouts.c", "s[21] == '-' ? local + offset : local - offset",
           "s[21] == '+' ? local + offset : local - offset",
           "an access time stored with its offset applied the wrong way"),
    Mutant("tl-max", "csrc/layouts.c", "ms < 0 || ms >= TL_MAX_MS", "ms < 0 || ms > TL_MAX_MS",
           "an access time at 10000-01-01T00:00:00Z stored (Python: no time)"),
    Mutant("tl-nearest-tie", "csrc/layouts.c", "llabs(ms - now_ms) < llabs(best - now_ms)",
           "llabs(ms - now_ms) <= llabs(best - now_ms)",
           "an RFC 3164 time halfway between two years put in the later one"),
    Mutant("tl-this-year", "csrc/layouts.c", "tl_civil(now_ms / 86400000,",
           "tl_civil(now_ms / 86400000 + 365,",
           "RFC 3164 years picked around the wrong year"),
    Mutant("ac-user-lf", "csrc/layouts.c",
           "if (s[p] == '\\r' || s[p] == '\\n') {\n            return -1;",
           "if (s[p] == '\\r') {\n            return -1;",
           "an access line with a line feed in its user field stored instead of refused"),
    Mutant("ac-quoted-escape", "csrc/layouts.c", "i += c == '\\\\' ? 2 : 1;", "i += 1;",
           "a request with an escaped quote cut at the quote"),
    Mutant("ac-bytes-19", "csrc/layouts.c", "j == i || j - i > 19", "j == i || j - i > 20",
           "an access line with a 20-digit body taken, its size wrapped"),
    Mutant("ac-decode-hex", "csrc/layouts.c", "tl_in(c, 'a', 'f') || tl_in(c, 'A', 'F')",
           "tl_in(c, 'a', 'e') || tl_in(c, 'A', 'F')",
           "\\xff in an access field kept as text instead of decoded"),
    Mutant("ac-decode-simple", "csrc/layouts.c", 'bytes[] = "\\\\\\"\\b\\n\\r\\t\\v"',
           'bytes[] = "\\\\\\"\\b\\r\\n\\t\\v"',
           "\\n and \\r in an access field decoded the one as the other"),
    Mutant("ac-protocol", "csrc/layouts.c", "v - 6 >= m + 1", "v - 6 >= m",
           "'GET HTTP/1.1' split into a protocol instead of a path"),
    Mutant("ac-status-level", "csrc/layouts.c", "status >= 500 && status <= 599",
           "status >= 500 && status <= 600", "an access line with status 600 stored as ERROR"),
    Mutant("ac-user-quotes", "csrc/layouts.c", 'ac_is(s, *user, "\\"\\"")',
           'ac_is(s, *user, "\\"\\"x")', 'Apache\'s "" user stored as two quotes'),
    Mutant("ac-nginx-hex", "csrc/layouts.c",
           "return is_digit((unsigned char)c) || tl_in(c, 'A', 'F');",
           "return is_digit((unsigned char)c) || tl_in(c, 'A', 'f');",
           "a line with a lower-case \\xhh detected as nginx_access"),
    Mutant("ac-body-zero", "csrc/raw.c", '!ac_is(s, L->bytes, "0")     ? RAW_COMBINED',
           '1                              ? RAW_COMBINED',
           "a detected line with a 0 body labelled apache_combined instead of nginx_access"),
    Mutant("bsd-pri-max", "csrc/layouts.c", "!bsd_head(s, n, &h) || h.pri > 191",
           "!bsd_head(s, n, &h) || h.pri > 192", "an RFC 3164 line with PRI 192 stored"),
    Mutant("bsd-day-pad", "csrc/layouts.c", "int day = (t[4] == ' ' && tl_in(t[5], '1', '9'))",
           "int day = ((t[4] == ' ' || t[4] == '0') && tl_in(t[5], '1', '9'))",
           "an RFC 3164 line with a zero-padded day taken"),
    Mutant("bsd-host-colon", "csrc/layouts.c", "h->host_n > 255 || s[j - 1] == ':' ||",
           "h->host_n > 255 ||", "an RFC 3164 HOSTNAME ending in ':' taken"),
    Mutant("bsd-host-255", "csrc/layouts.c", "h->host_n > 255", "h->host_n > 256",
           "an RFC 3164 HOSTNAME of 256 characters taken"),
    Mutant("bsd-tag-space", "csrc/layouts.c", "start = end < n && s[end] == ' ' ? end + 1 : end;",
           "start = end;", "the space after an RFC 3164 TAG kept in the message"),
    Mutant("bsd-pid-dash", "csrc/layouts.c", "rc = pid_n == 1 && s[pid] == '-'",
           "rc = pid_n == 0 && s[pid] == '-'", "an RFC 3164 pid written '-' dropped"),
    Mutant("bsd-cef", "csrc/layouts.c", "!(n - h.end >= 4 && memcmp",
           "!(n - h.end >= 400 && memcmp",
           "a detected BSD line whose message starts 'CEF:' read as syslog3164"),
    Mutant("bsd-level", "csrc/raw.c",
           "&pri);\n            *level = SYSLOG_LEVELS[pri % 8];\n        }",
           "&pri);\n            *level = SYSLOG_LEVELS[pri / 8 % 8];\n        }",
           "a raw RFC 3164 line stored with its facility's level"),
)


def build(mutant: Mutant | None, into: Path) -> str | None:
    """Copy the sources, apply ``mutant``, compile; the compiler's complaint, or None."""
    shutil.copy2(SRC / "_native.c", into / "_native.c")
    shutil.copytree(SRC / "csrc", into / "csrc")
    if mutant is not None:
        target = into / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            return f"{mutant.path}: the original text occurs {text.count(mutant.old)} times"
        target.write_text(text.replace(mutant.old, mutant.new))
    include = sysconfig.get_paths()["include"]
    out = into / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = ["gcc", *CFLAGS, f"-I{include}", str(into / "_native.c"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.stderr.strip()[-400:] or "gcc failed" if done.returncode else None


_RUN_TESTS = (
    "import sys, pytest, services.ingest as pkg; pkg.__path__.insert(0, sys.argv[1]);"
    "from services.ingest import _native; assert _native.__file__.startswith(sys.argv[1]);"
    "sys.exit(pytest.main(sys.argv[2:]))"
)


def run_tests(folder: Path) -> int:
    cmd = [sys.executable, "-c", _RUN_TESTS, str(folder), "-x", "-q", "-p", "no:cacheprovider",
           *TESTS]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False).returncode


def check(mutant: Mutant | None) -> str:
    with tempfile.TemporaryDirectory(prefix="logops-cmut-") as tmp:
        problem = build(mutant, Path(tmp))
        if problem is not None:
            return f"not built: {problem}"
        return "survived" if run_tests(Path(tmp)) == 0 else "killed"


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or m.id in argv]
    unknown = sorted(set(argv) - {m.id for m in MUTANTS})
    if unknown:
        print(f"unknown mutants: {', '.join(unknown)}", file=sys.stderr)
        return 2
    baseline = check(None)
    if baseline != "survived":
        print(f"the unmutated build does not pass its tests: {baseline}", file=sys.stderr)
        return 1
    results: list[tuple[Mutant, str]] = []
    for mutant in chosen:
        start = time.monotonic()
        outcome = check(mutant)
        if outcome == "survived" and mutant.equivalent:
            outcome = "equivalent"
        results.append((mutant, outcome))
        print(f"{mutant.id:<20} {outcome:<9} {time.monotonic() - start:5.0f} s  {mutant.why}",
              flush=True)  # fmt: skip
    killed = sum(outcome == "killed" for _, outcome in results)
    equivalent = [m for m, outcome in results if outcome == "equivalent"]
    print(f"\nC path: {killed} of {len(results) - len(equivalent)} hand-made mutants killed, "
          f"{len(equivalent)} equivalent")  # fmt: skip
    for mutant in equivalent:
        print(f"  {mutant.id}: {mutant.equivalent}")
    return 0 if killed + len(equivalent) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
