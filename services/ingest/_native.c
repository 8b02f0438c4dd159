/*
 * The Ingest Gateway's hot path in C: records in, stored NDJSON lines out.
 *
 * It does, for the records of the common shape, exactly what the pure-Python
 * Normaliser in normalize.py does, and hands everything else back to it:
 *
 * - Engine.normalise_dicts() takes decoded records (dicts, as JSON bodies arrive);
 * - scan_wire() checks a serialized LogBatch or PushRequest and reads its metadata,
 *   and Engine.normalise_wire() turns its records into lines without building a
 *   Python object per field.
 *
 * A record off the common path (a raw line, an alias in place of ts/level/msg, a
 * field named like a fixed key, a value of an odd type, a message over the size
 * guard, text the UTF-8 codec refuses) goes whole to the `slow` callback, which is
 * the Python implementation; a timestamp that is not canonical goes to `ts_fn`, a
 * level spelling not in the table to `level_fn`, non-ASCII text that may hold an
 * address to `mask_fn`. So the C code only decides what it can decide exactly, and
 * tests/unit/ingest/test_native_equivalence.py compares both paths byte for byte.
 *
 * scan_wire() refuses (returns None) anything it does not read exactly as upb does
 * (a repeated singular field, groups, invalid UTF-8, bad framing); the caller then
 * decodes with the protobuf runtime, which gives the precise error or semantics.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT_LIT(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static void
buf_free(Buf *b)
{
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* JSON string escaping, byte for byte as orjson writes it. */
static const char HEX[] = "0123456789abcdef";
static unsigned char NEEDS_ESCAPE[256];

static int
put_json_str(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n * 6 + 2) < 0) {
        return -1;
    }
    char *o = b->p + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!NEEDS_ESCAPE[c]) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

static int
put_u64(Buf *b, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    return buf_put(b, tmp, n);
}

/* ------------------------------------------------------------------ text checks */

static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_word(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '_';
}

static int
is_ascii(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static int
num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Exactly YYYY-MM-DDTHH:MM:SS.mmmZ, a real UTC instant from 1970 on (timeparse.py's
 * MS_SUFFIXES + canonical_second). */
static int
is_canonical_ts(const char *s, Py_ssize_t n)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (n != 24) {
        return 0;
    }
    for (int i = 0; i < 24; i++) {
        if (pattern[i] == 'd' ? !is_digit((unsigned char)s[i]) : s[i] != pattern[i]) {
            return 0;
        }
    }
    int year = num2(s) * 100 + num2(s + 2);
    int month = num2(s + 5), day = num2(s + 8);
    if (year < 1970 || month < 1 || month > 12 || day < 1) {
        return 0;
    }
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = days[month - 1] + (month == 2 && leap);
    return day <= last && num2(s + 11) <= 23 && num2(s + 14) <= 59 && num2(s + 17) <= 59;
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as upb checks strings. */
static int
utf8_valid(const char *str, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        }
        else if (c == 0xE0) {
            more = 2;
            lo = 0xA0;
        }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            more = 2;
        }
        else if (c == 0xED) {
            more = 2;
            hi = 0x9F;
        }
        else if (c == 0xF0) {
            more = 3;
            lo = 0x90;
        }
        else if (c >= 0xF1 && c <= 0xF3) {
            more = 3;
        }
        else if (c == 0xF4) {
            more = 3;
            hi = 0x8F;
        }
        else {
            return 0;
        }
        if (n - i - 1 < more) {
            return 0; /* truncated sequence */
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (int k = 2; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += more + 1;
    }
    return 1;
}

/* ------------------------------------------------------------------ engine */

typedef struct {
    PyObject_HEAD
    PyObject *levels;      /* dict: every known spelling -> canonical level */
    PyObject *level_names; /* tuple of the six canonical levels, in order */
    PyObject *level_fn;    /* canonical_level(value) -> str | None */
    PyObject *hash_fn;     /* digest(text) -> str, for mask_mode 2 */
    PyObject *mask_fn;     /* Masker.apply(text) -> str, for non-ASCII text */
    PyObject *dumps;       /* orjson.dumps */
    PyObject *reserved;    /* frozenset of the fixed output keys */
    int mask_mode;         /* 0 off, 1 mask, 2 hash */
    Py_ssize_t max_chars;
} Engine;

enum { TS_ABSENT = 1, TS_INVALID = 2, LEVEL_ABSENT = 4, LEVEL_INVALID = 8 };
enum { NLEVELS = 6, INFO_LEVEL = 2 };

/* Interned keys. */
static PyObject *K_TS, *K_LEVEL, *K_MSG, *K_SERVICE, *K_HOST, *K_STREAM, *K_SEQ, *K_RAW,
    *K_FORMAT, *K_SYSLOG_SEVERITY, *K_SRC_TS, *K_SRC_LEVEL;
static PyObject *TS_ALIASES[3], *LEVEL_ALIASES[2], *MSG_ALIASES[3];
static PyObject *CONSUMED; /* frozenset of LogRecord's own keys */

/* One call's state: the output, scratch space for masking, the counts. */
typedef struct {
    Engine *e;
    Buf out;
    Buf scratch1;
    Buf scratch2;
    const char *head; /* "emitter":..,"scenario_id":..,"run_id":.., */
    Py_ssize_t head_n;
    const char *tail; /* "batch_id":..,"ingest_ts":".." */
    Py_ssize_t tail_n;
    const char *fmt; /* the batch's format label, as a JSON string */
    Py_ssize_t fmt_n;
    const char *ingest_ts;
    Py_ssize_t ingest_ts_n;
    PyObject *ts_fn;
    PyObject *slow;
    Py_ssize_t accepted;
    Py_ssize_t levels[NLEVELS];
    Py_ssize_t missing[4];
    PyObject *rejections;
} Run;

static void
count_missing(Run *r, int flags)
{
    if (flags & TS_ABSENT) {
        r->missing[0]++;
    }
    else if (flags & TS_INVALID) {
        r->missing[1]++;
    }
    if (flags & LEVEL_ABSENT) {
        r->missing[2]++;
    }
    else if (flags & LEVEL_INVALID) {
        r->missing[3]++;
    }
}

/* Index of a canonical level name, or -1. */
static int
level_index(Engine *e, PyObject *name)
{
    for (int i = 0; i < NLEVELS; i++) {
        if (PyTuple_GET_ITEM(e->level_names, i) == name) {
            return i;
        }
    }
    for (int i = 0; i < NLEVELS; i++) {
        int eq = PyUnicode_Compare(PyTuple_GET_ITEM(e->level_names, i), name);
        if (eq == 0) {
            return i;
        }
        if (eq == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ PII masking */

static int
is_label(unsigned char c)
{
    return is_word(c) || c == '-';
}

static int
is_local(unsigned char c)
{
    return is_word(c) || c == '.' || c == '%' || c == '+' || c == '-';
}

/* End of pii._DOMAIN matched at `pos` (anchored, with the regex's backtracking): labels
 * of [\w-] split by single dots; the match ends in the letters (2 to 63) that start the
 * last label, after the first, that begins with at least two letters. -1: no match. */
static Py_ssize_t
match_domain(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t i = pos;
    while (i < n && is_label((unsigned char)s[i])) {
        i++;
    }
    if (i == pos) {
        return -1;
    }
    Py_ssize_t best = -1;
    while (i + 1 < n && s[i] == '.' && is_label((unsigned char)s[i + 1])) {
        Py_ssize_t start = i + 1, k = start;
        while (k < n && k - start < 63 && is_alpha((unsigned char)s[k])) {
            k++;
        }
        if (k - start >= 2) {
            best = k;
        }
        i = start;
        while (i < n && is_label((unsigned char)s[i])) {
            i++;
        }
    }
    return best;
}

/* The digest of s[0:n] as hash mode writes it, appended to `out`. */
static int
put_digest(Run *r, Buf *out, const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_DecodeASCII(s, n, NULL);
    if (text == NULL) {
        return -1;
    }
    PyObject *digest = PyObject_CallOneArg(r->e->hash_fn, text);
    Py_DECREF(text);
    if (digest == NULL) {
        return -1;
    }
    Py_ssize_t dn;
    const char *d = PyUnicode_AsUTF8AndSize(digest, &dn);
    int rc = d == NULL ? -1 : buf_put(out, d, dn);
    Py_DECREF(digest);
    return rc;
}

/* pii.Masker._emails on ASCII text. */
static int
mask_emails(Run *r, const char *s, Py_ssize_t n, Buf *out)
{
    Py_ssize_t done = 0;
    const char *hit = memchr(s, '@', (size_t)n);
    Py_ssize_t at = hit ? hit - s : -1;
    while (at > 0) {
        Py_ssize_t end = match_domain(s, n, at + 1);
        if (end >= 0) {
            Py_ssize_t lo = at - 64 > done ? at - 64 : done;
            Py_ssize_t start = at;
            while (start > lo && is_local((unsigned char)s[start - 1])) {
                start--;
            }
            if (start < at) {
                if (buf_put(out, s + done, start - done) < 0) {
                    return -1;
                }
                if (r->e->mask_mode == 2) {
                    if (put_digest(r, out, s + start, end - start) < 0) {
                        return -1;
                    }
                }
                else if (buf_put(out, s + start, 1) < 0 || PUT_LIT(out, "***@") < 0 ||
                         buf_put(out, s + at + 1, end - at - 1) < 0) {
                    return -1;
                }
                done = end;
            }
        }
        Py_ssize_t from = at + 1 > done ? at + 1 : done;
        hit = from < n ? memchr(s + from, '@', (size_t)(n - from)) : NULL;
        at = hit ? hit - s : -1;
    }
    return buf_put(out, s + done, n - done);
}

static Py_ssize_t
digit_run(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t j = i;
    while (j < n && is_digit((unsigned char)s[j])) {
        j++;
    }
    return j - i;
}

/* pii._DOTTED_QUAD at i: the four octets' starts and lengths; 0 when it does not match. */
static int
match_quad(const char *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t at[4], Py_ssize_t len[4])
{
    Py_ssize_t p = i;
    for (int k = 0; k < 3; k++) {
        Py_ssize_t run = digit_run(s, n, p);
        if (run < 1 || run > 3 || p + run >= n || s[p + run] != '.') {
            return 0;
        }
        at[k] = p;
        len[k] = run;
        p += run + 1;
    }
    Py_ssize_t run = digit_run(s, n, p);
    if (run < 1) {
        return 0;
    }
    at[3] = p;
    len[3] = run > 3 ? 3 : run;
    return 1;
}

/* Whether a dotted quad at [start, end) is an address (pii.Masker._ipv4). */
static int
is_address(const char *s, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
           const Py_ssize_t at[4], const Py_ssize_t len[4])
{
    if (start > 0) {
        unsigned char before = (unsigned char)s[start - 1];
        if (is_digit(before) || (before == '.' && start > 1 && is_digit((unsigned char)s[start - 2]))) {
            return 0;
        }
    }
    if (end < n) {
        unsigned char after = (unsigned char)s[end];
        if (is_digit(after) || (after == '.' && end + 1 < n && is_digit((unsigned char)s[end + 1]))) {
            return 0;
        }
    }
    for (int k = 0; k < 4; k++) {
        if (len[k] == 3 && memcmp(s + at[k], "255", 3) > 0) {
            return 0;
        }
    }
    return 1;
}

/* pii._DOTTED_QUAD.sub(Masker._ipv4, text) on ASCII text. */
static int
mask_ipv4(Run *r, const char *s, Py_ssize_t n, Buf *out)
{
    Py_ssize_t done = 0, i = 0;
    while (i < n) {
        Py_ssize_t at[4], len[4];
        if (!is_digit((unsigned char)s[i]) || !match_quad(s, n, i, at, len)) {
            i++;
            continue;
        }
        Py_ssize_t end = at[3] + len[3];
        if (is_address(s, n, i, end, at, len)) {
            if (buf_put(out, s + done, i - done) < 0) {
                return -1;
            }
            if (r->e->mask_mode == 2) {
                if (put_digest(r, out, s + i, end - i) < 0) {
                    return -1;
                }
            }
            else if (buf_put(out, s + at[0], len[0]) < 0 || PUT_LIT(out, ".") < 0 ||
                     buf_put(out, s + at[1], len[1]) < 0 || PUT_LIT(out, ".x.x") < 0) {
                return -1;
            }
            done = end;
        }
        i = end;
    }
    return buf_put(out, s + done, n - done);
}

static Py_ssize_t
count_dots(const char *s, Py_ssize_t n)
{
    Py_ssize_t dots = 0;
    for (const char *p = s; (p = memchr(p, '.', (size_t)(n - (p - s)))) != NULL; p++) {
        dots++;
    }
    return dots;
}

/* Masker.apply on ASCII text: the result in *res (maybe `s` itself, maybe scratch). */
static int
mask_ascii(Run *r, const char *s, Py_ssize_t n, const char **res, Py_ssize_t *res_n)
{
    *res = s;
    *res_n = n;
    if (memchr(s, '@', (size_t)n) != NULL) {
        r->scratch1.len = 0;
        if (mask_emails(r, s, n, &r->scratch1) < 0) {
            return -1;
        }
        *res = r->scratch1.p;
        *res_n = r->scratch1.len;
    }
    if (count_dots(*res, *res_n) >= 3) {
        r->scratch2.len = 0;
        if (mask_ipv4(r, *res, *res_n, &r->scratch2) < 0) {
            return -1;
        }
        *res = r->scratch2.p;
        *res_n = r->scratch2.len;
    }
    return 0;
}

/* The message as stored: masked when it may hold an address. `*keep` owns any new
 * object the result points into. `obj` may be NULL (built from the bytes if needed). */
static int
resolve_msg(Run *r, PyObject *obj, const char *s, Py_ssize_t n, int ascii, const char **res,
            Py_ssize_t *res_n, PyObject **keep)
{
    *res = s;
    *res_n = n;
    *keep = NULL;
    if (r->e->mask_mode == 0 || n == 0 ||
        (memchr(s, '@', (size_t)n) == NULL && memchr(s, '.', (size_t)n) == NULL)) {
        return 0;
    }
    if (ascii) {
        return mask_ascii(r, s, n, res, res_n);
    }
    PyObject *text = obj;
    if (text == NULL) {
        text = PyUnicode_DecodeUTF8(s, n, NULL);
        if (text == NULL) {
            return -1;
        }
    }
    else {
        Py_INCREF(text);
    }
    PyObject *masked = PyObject_CallOneArg(r->e->mask_fn, text);
    Py_DECREF(text);
    if (masked == NULL) {
        return -1;
    }
    *res = PyUnicode_AsUTF8AndSize(masked, res_n);
    if (*res == NULL) {
        Py_DECREF(masked);
        return -1;
    }
    *keep = masked;
    return 0;
}

/* ------------------------------------------------------------------ line assembly */

/* {"ts":"..","level":"..","msg":..,<head> */
static int
put_start(Run *r, const char *ts, Py_ssize_t ts_n, int level, const char *msg, Py_ssize_t msg_n)
{
    Py_ssize_t ln;
    const char *lv = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r->e->level_names, level), &ln);
    if (lv == NULL) {
        return -1;
    }
    if (PUT_LIT(&r->out, "{\"ts\":\"") < 0 || buf_put(&r->out, ts, ts_n) < 0 ||
        PUT_LIT(&r->out, "\",\"level\":\"") < 0 || buf_put(&r->out, lv, ln) < 0 ||
        PUT_LIT(&r->out, "\",\"msg\":") < 0 || put_json_str(&r->out, msg, msg_n) < 0 ||
        PUT_LIT(&r->out, ",") < 0) {
        return -1;
    }
    return buf_put(&r->out, r->head, r->head_n);
}

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

/* "service":..,"host":..,"format":..,"stream":..,"seq":..,<tail> ; fmt NULL: the batch's */
static int
put_middle(Run *r, Span service, Span host, const Span *fmt, Span stream, int has_seq,
           unsigned long long seq)
{
    Buf *o = &r->out;
    if (PUT_LIT(o, "\"service\":") < 0 || put_json_str(o, service.p, service.n) < 0 ||
        PUT_LIT(o, ",\"host\":") < 0 || put_json_str(o, host.p, host.n) < 0 ||
        PUT_LIT(o, ",\"format\":") < 0) {
        return -1;
    }
    if ((fmt == NULL ? buf_put(o, r->fmt, r->fmt_n) : put_json_str(o, fmt->p, fmt->n)) < 0) {
        return -1;
    }
    if (PUT_LIT(o, ",\"stream\":") < 0 || put_json_str(o, stream.p, stream.n) < 0 ||
        PUT_LIT(o, ",\"seq\":") < 0) {
        return -1;
    }
    if ((has_seq ? put_u64(o, seq) : PUT_LIT(o, "null")) < 0 || PUT_LIT(o, ",") < 0) {
        return -1;
    }
    return buf_put(o, r->tail, r->tail_n);
}

static int
put_end(Run *r, int flags)
{
    Buf *o = &r->out;
    int ts_missing = (flags & (TS_ABSENT | TS_INVALID)) != 0;
    int level_missing = (flags & (LEVEL_ABSENT | LEVEL_INVALID)) != 0;
    if ((ts_missing ? PUT_LIT(o, ",\"ts_missing\":true") : PUT_LIT(o, ",\"ts_missing\":false")) < 0) {
        return -1;
    }
    return level_missing ? PUT_LIT(o, ",\"level_missing\":true}\n")
                         : PUT_LIT(o, ",\"level_missing\":false}\n");
}

static void
record_accepted(Run *r, int level, int flags)
{
    r->accepted++;
    r->levels[level]++;
    if (flags) {
        count_missing(r, flags);
    }
}

/* ------------------------------------------------------------------ slow path */

/* Hand one record to the Python implementation and take in its answer:
 * (line, level, flags) or (None, reason, message). */
static int
run_slow(Run *r, Py_ssize_t index, PyObject *rec)
{
    PyObject *res = PyObject_CallOneArg(r->slow, rec);
    if (res == NULL) {
        return -1;
    }
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3) {
        Py_DECREF(res);
        PyErr_SetString(PyExc_TypeError, "slow() must return a 3-tuple");
        return -1;
    }
    PyObject *line = PyTuple_GET_ITEM(res, 0);
    int rc = 0;
    if (line == Py_None) {
        PyObject *item = Py_BuildValue("(nOO)", index, PyTuple_GET_ITEM(res, 1),
                                       PyTuple_GET_ITEM(res, 2));
        rc = item == NULL ? -1 : PyList_Append(r->rejections, item);
        Py_XDECREF(item);
    }
    else {
        char *data;
        Py_ssize_t n;
        int level = -1;
        long flags = PyLong_AsLong(PyTuple_GET_ITEM(res, 2));
        if (PyBytes_AsStringAndSize(line, &data, &n) < 0 || (flags == -1 && PyErr_Occurred())) {
            rc = -1;
        }
        else if ((level = level_index(r->e, PyTuple_GET_ITEM(res, 1))) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "slow() returned an unknown level");
            }
            rc = -1;
        }
        else if ((rc = buf_put(&r->out, data, n)) == 0) {
            record_accepted(r, level, (int)flags);
        }
    }
    Py_DECREF(res);
    return rc;
}

/* ------------------------------------------------------------------ dict records */

/* A value that counts as given: not None and not "". */
static int
present(PyObject *v)
{
    return v != NULL && v != Py_None && !(PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) == 0);
}

static int
any_key(PyObject *rec, PyObject **keys, int n)
{
    for (int i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(rec, keys[i]);
        if (v == NULL && PyErr_Occurred()) {
            return -1;
        }
        if (present(v)) {
            return 1;
        }
    }
    return 0;
}

/* A str value's UTF-8, or NULL (error cleared) when it has none (lone surrogates). */
static const char *
utf8_of(PyObject *s, Py_ssize_t *n)
{
    const char *p = PyUnicode_AsUTF8AndSize(s, n);
    if (p == NULL) {
        PyErr_Clear();
    }
    return p;
}

/* Append any JSON value as orjson writes it. 1 done, 0 not writable here, -1 error. */
static int
put_value(Run *r, PyObject *v)
{
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *p = utf8_of(v, &n);
        return p == NULL ? 0 : (put_json_str(&r->out, p, n) < 0 ? -1 : 1);
    }
    if (v == Py_None) {
        return PUT_LIT(&r->out, "null") < 0 ? -1 : 1;
    }
    if (v == Py_True || v == Py_False) {
        return (v == Py_True ? PUT_LIT(&r->out, "true") : PUT_LIT(&r->out, "false")) < 0 ? -1 : 1;
    }
    PyObject *dumped = PyObject_CallOneArg(r->e->dumps, v);
    if (dumped == NULL) {
        PyErr_Clear(); /* not JSON-writable: the slow path says why */
        return 0;
    }
    int rc = buf_put(&r->out, PyBytes_AS_STRING(dumped), PyBytes_GET_SIZE(dumped)) < 0 ? -1 : 1;
    Py_DECREF(dumped);
    return rc;
}

/* A text field (service, host, stream): absent/None -> "", str as is; else not ours. */
static int
text_field(PyObject *rec, PyObject *key, Span *out)
{
    PyObject *v = PyDict_GetItemWithError(rec, key);
    out->p = "";
    out->n = 0;
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 1;
    }
    if (v == Py_None) {
        return 1;
    }
    if (!PyUnicode_CheckExact(v)) {
        return 0;
    }
    out->p = utf8_of(v, &out->n);
    return out->p != NULL;
}

typedef struct {
    /* the timestamp written, and what keeps it alive */
    const char *ts;
    Py_ssize_t ts_n;
    PyObject *ts_obj;
    int level;
    int flags;
} Stamp;

/* ts and level of a dict record. 1 resolved, 0 not ours, -1 error. */
static int
dict_stamp(Run *r, PyObject *rec, PyObject *ts_val, PyObject *level_val, Stamp *st)
{
    Engine *e = r->e;
    st->ts_obj = NULL;
    st->flags = 0;
    if (!present(ts_val)) {
        st->ts = r->ingest_ts;
        st->ts_n = r->ingest_ts_n;
        st->flags |= TS_ABSENT;
    }
    else {
        const char *p = NULL;
        Py_ssize_t n = 0;
        if (PyUnicode_CheckExact(ts_val) && PyUnicode_IS_ASCII(ts_val)) {
            p = (const char *)PyUnicode_DATA(ts_val);
            n = PyUnicode_GET_LENGTH(ts_val);
        }
        if (p != NULL && is_canonical_ts(p, n)) {
            st->ts = p;
            st->ts_n = n;
        }
        else {
            PyObject *ts = PyObject_CallOneArg(r->ts_fn, ts_val);
            if (ts == NULL) {
                return -1;
            }
            if (ts == Py_None) {
                Py_DECREF(ts);
                st->ts = r->ingest_ts;
                st->ts_n = r->ingest_ts_n;
                st->flags |= TS_INVALID;
            }
            else {
                st->ts_obj = ts;
                st->ts = PyUnicode_AsUTF8AndSize(ts, &st->ts_n);
                if (st->ts == NULL) {
                    return -1;
                }
            }
        }
    }
    if (!present(level_val)) {
        PyObject *sev = PyDict_GetItemWithError(rec, K_SYSLOG_SEVERITY);
        if (sev != NULL || PyErr_Occurred()) {
            return PyErr_Occurred() ? -1 : 0;
        }
        st->level = INFO_LEVEL;
        st->flags |= LEVEL_ABSENT;
        return 1;
    }
    PyObject *canon = NULL;
    if (PyUnicode_CheckExact(level_val)) {
        canon = PyDict_GetItemWithError(e->levels, level_val);
        if (canon == NULL && PyErr_Occurred()) {
            return -1;
        }
        Py_XINCREF(canon);
    }
    if (canon == NULL) {
        canon = PyObject_CallOneArg(e->level_fn, level_val);
        if (canon == NULL) {
            return -1;
        }
    }
    if (canon == Py_None) {
        st->level = INFO_LEVEL;
        st->flags |= LEVEL_INVALID;
    }
    else {
        st->level = level_index(e, canon);
    }
    Py_DECREF(canon);
    if (st->level < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "level_fn returned an unknown level");
        }
        return -1;
    }
    return 1;
}

/* seq of a dict record: absent/None -> no seq; an int 0..2**64-1; else not ours. */
static int
dict_seq(PyObject *rec, int *has, unsigned long long *seq)
{
    PyObject *v = PyDict_GetItemWithError(rec, K_SEQ);
    *has = 0;
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 1;
    }
    if (v == Py_None) {
        return 1;
    }
    if (!PyLong_CheckExact(v)) {
        return 0;
    }
    *seq = PyLong_AsUnsignedLongLong(v);
    if (*seq == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or too big: the slow path rejects it */
        return 0;
    }
    *has = 1;
    return 1;
}

/* The record's other fields, then src_ts/src_level for invalid originals. */
static int
dict_extras(Run *r, PyObject *rec, const Stamp *st, PyObject *ts_val, PyObject *level_val)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(rec, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return 0;
        }
        int hit = PySet_Contains(CONSUMED, key);
        if (hit) {
            if (hit < 0) {
                return -1;
            }
            continue;
        }
        if ((hit = PySet_Contains(r->e->reserved, key)) != 0) {
            return hit < 0 ? -1 : 0;
        }
        if (((st->flags & TS_INVALID) && PyUnicode_Compare(key, K_SRC_TS) == 0) ||
            ((st->flags & LEVEL_INVALID) && PyUnicode_Compare(key, K_SRC_LEVEL) == 0)) {
            return 0;
        }
        Py_ssize_t kn;
        const char *k = utf8_of(key, &kn);
        if (k == NULL) {
            return 0;
        }
        if (PUT_LIT(&r->out, ",") < 0 || put_json_str(&r->out, k, kn) < 0 ||
            PUT_LIT(&r->out, ":") < 0) {
            return -1;
        }
        int rc = put_value(r, value);
        if (rc <= 0) {
            return rc;
        }
    }
    if (st->flags & TS_INVALID) {
        int rc = PUT_LIT(&r->out, ",\"src_ts\":") < 0 ? -1 : put_value(r, ts_val);
        if (rc <= 0) {
            return rc;
        }
    }
    if (st->flags & LEVEL_INVALID) {
        int rc = PUT_LIT(&r->out, ",\"src_level\":") < 0 ? -1 : put_value(r, level_val);
        if (rc <= 0) {
            return rc;
        }
    }
    return 1;
}

/* ts, level and msg as given, or 0 when an alias stands in for one of them. */
static int
dict_primary(PyObject *rec, PyObject **ts, PyObject **level, PyObject **msg)
{
    *ts = PyDict_GetItemWithError(rec, K_TS);
    *level = PyDict_GetItemWithError(rec, K_LEVEL);
    *msg = PyDict_GetItemWithError(rec, K_MSG);
    if (PyErr_Occurred()) {
        return -1;
    }
    int rc;
    if (!present(*ts) && (rc = any_key(rec, TS_ALIASES, 3)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (!present(*level) && (rc = any_key(rec, LEVEL_ALIASES, 2)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (!present(*msg) && (rc = any_key(rec, MSG_ALIASES, 3)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    return 1;
}

/* One dict record on the fast path: 1 written, 0 not ours (nothing written), -1 error. */
static int
dict_record(Run *r, PyObject *rec)
{
    PyObject *ts_val, *level_val, *msg_val;
    int rc = dict_primary(rec, &ts_val, &level_val, &msg_val);
    if (rc <= 0) {
        return rc;
    }
    int has_raw = PyDict_Contains(rec, K_RAW);
    if (has_raw) {
        return has_raw < 0 ? -1 : 0;
    }
    const char *msg = "";
    Py_ssize_t msg_n = 0;
    if (present(msg_val)) {
        if (!PyUnicode_CheckExact(msg_val) || PyUnicode_GET_LENGTH(msg_val) > r->e->max_chars) {
            return 0;
        }
        if ((msg = utf8_of(msg_val, &msg_n)) == NULL) {
            return 0;
        }
    }
    else {
        msg_val = NULL;
    }
    Span service, host, stream, fmt;
    const Span *fmt_ptr = NULL;
    if ((rc = text_field(rec, K_SERVICE, &service)) <= 0 ||
        (rc = text_field(rec, K_HOST, &host)) <= 0 ||
        (rc = text_field(rec, K_STREAM, &stream)) <= 0) {
        return rc;
    }
    PyObject *fmt_val = PyDict_GetItemWithError(rec, K_FORMAT);
    if (fmt_val != NULL) {
        if (!PyUnicode_CheckExact(fmt_val) || (fmt.p = utf8_of(fmt_val, &fmt.n)) == NULL) {
            return 0;
        }
        fmt_ptr = fmt.n ? &fmt : NULL;
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    int has_seq;
    unsigned long long seq = 0;
    if ((rc = dict_seq(rec, &has_seq, &seq)) <= 0) {
        return rc;
    }
    Stamp st;
    if ((rc = dict_stamp(r, rec, ts_val, level_val, &st)) <= 0) {
        Py_XDECREF(st.ts_obj);
        return rc;
    }
    const char *text;
    Py_ssize_t text_n;
    PyObject *keep;
    Py_ssize_t mark = r->out.len;
    rc = resolve_msg(r, msg_val, msg, msg_n, msg_val == NULL || PyUnicode_IS_ASCII(msg_val), &text,
                     &text_n, &keep);
    if (rc == 0) {
        rc = put_start(r, st.ts, st.ts_n, st.level, text, text_n) < 0 ||
                     put_middle(r, service, host, fmt_ptr, stream, has_seq, seq) < 0
                 ? -1
                 : dict_extras(r, rec, &st, ts_val, level_val);
        if (rc == 1 && put_end(r, st.flags) < 0) {
            rc = -1;
        }
    }
    else {
        rc = -1;
    }
    Py_XDECREF(keep);
    Py_XDECREF(st.ts_obj);
    if (rc != 1) {
        r->out.len = mark;
        return rc;
    }
    record_accepted(r, st.level, st.flags);
    return 1;
}

/* ------------------------------------------------------------------ protobuf wire */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static int
read_varint(const char **pp, const char *end, uint64_t *out)
{
    const unsigned char *p = (const unsigned char *)*pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if ((const char *)p >= end) {
            return -1;
        }
        unsigned char b = *p++;
        if (shift == 63 && b > 1) {
            return -1;
        }
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *pp = (const char *)p;
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int
read_tag(const char **pp, const char *end, uint32_t *field, int *wt)
{
    uint64_t tag;
    if (read_varint(pp, end, &tag) < 0 || tag > UINT32_MAX || (tag >> 3) == 0) {
        return -1;
    }
    *field = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    return 0;
}

static int
read_len(const char **pp, const char *end, Span *s)
{
    uint64_t n;
    if (read_varint(pp, end, &n) < 0 || n > (uint64_t)(end - *pp)) {
        return -1;
    }
    s->p = *pp;
    s->n = (Py_ssize_t)n;
    *pp += n;
    return 0;
}

static int
skip_field(const char **pp, const char *end, int wt)
{
    uint64_t v;
    Span s;
    switch (wt) {
    case WT_VARINT:
        return read_varint(pp, end, &v);
    case WT_I64:
        if (end - *pp < 8) {
            return -1;
        }
        *pp += 8;
        return 0;
    case WT_LEN:
        return read_len(pp, end, &s);
    case WT_I32:
        if (end - *pp < 4) {
            return -1;
        }
        *pp += 4;
        return 0;
    default:
        return -1; /* groups and reserved wire types: left to the protobuf runtime */
    }
}

/* A string field, read once: a second occurrence is left to the protobuf runtime. */
static int
read_string(const char **pp, const char *end, int wt, Span *s, int *seen)
{
    if (wt != WT_LEN || *seen || read_len(pp, end, s) < 0 || !utf8_valid(s->p, s->n)) {
        return -1;
    }
    *seen = 1;
    return 0;
}

enum { MAX_FIELDS = 64 };

typedef struct {
    Span ts, level, msg, service, host, stream, raw, format;
    int has_ts, has_level, has_seq;
    int seen_msg, seen_service, seen_host, seen_stream, seen_raw, seen_format;
    uint64_t seq;
    Py_ssize_t nfields;
    Span fkey[MAX_FIELDS];
    Span fval[MAX_FIELDS];
} WireRecord;

static int
read_map_entry(Span entry, Span *key, Span *value)
{
    const char *p = entry.p, *end = entry.p + entry.n;
    int seen_key = 0, seen_value = 0;
    key->p = value->p = "";
    key->n = value->n = 0;
    while (p < end) {
        uint32_t field;
        int wt;
        if (read_tag(&p, end, &field, &wt) < 0) {
            return -1;
        }
        int rc = field == 1   ? read_string(&p, end, wt, key, &seen_key)
                 : field == 2 ? read_string(&p, end, wt, value, &seen_value)
                              : skip_field(&p, end, wt);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Parse and check one LogRecord. Fields past MAX_FIELDS are checked and counted only. */
static int
read_record(Span span, WireRecord *w)
{
    const char *p = span.p, *end = span.p + span.n;
    memset(w, 0, offsetof(WireRecord, fkey));
    w->ts.p = w->level.p = w->msg.p = w->service.p = w->host.p = w->stream.p = w->raw.p =
        w->format.p = "";
    while (p < end) {
        uint32_t field;
        int wt, rc;
        if (read_tag(&p, end, &field, &wt) < 0) {
            return -1;
        }
        switch (field) {
        case 1: rc = read_string(&p, end, wt, &w->ts, &w->has_ts); break;
        case 2: rc = read_string(&p, end, wt, &w->level, &w->has_level); break;
        case 3: rc = read_string(&p, end, wt, &w->msg, &w->seen_msg); break;
        case 4: rc = read_string(&p, end, wt, &w->service, &w->seen_service); break;
        case 5: rc = read_string(&p, end, wt, &w->host, &w->seen_host); break;
        case 6: {
            Span entry, key, value;
            rc = wt != WT_LEN || read_len(&p, end, &entry) < 0 ||
                         read_map_entry(entry, &key, &value) < 0
                     ? -1
                     : 0;
            if (rc == 0 && w->nfields < MAX_FIELDS) {
                w->fkey[w->nfields] = key;
                w->fval[w->nfields] = value;
            }
            w->nfields++;
            break;
        }
        case 7: rc = read_string(&p, end, wt, &w->stream, &w->seen_stream); break;
        case 8:
            rc = wt != WT_VARINT || w->has_seq || read_varint(&p, end, &w->seq) < 0 ? -1 : 0;
            w->has_seq = 1;
            break;
        case 9: rc = read_string(&p, end, wt, &w->raw, &w->seen_raw); break;
        case 10: rc = read_string(&p, end, wt, &w->format, &w->seen_format); break;
        default: rc = skip_field(&p, end, wt);
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

typedef struct {
    Span batch_id, emitter, scenario_id, run_id;
    Py_ssize_t count;
    const char *records; /* the LogBatch's bytes */
    const char *end;
} WireBatch;

/* Check a whole LogBatch (every record included) and read its metadata. */
static int
read_batch(const char *p, const char *end, WireBatch *b, WireRecord *scratch)
{
    int seen[4] = {0, 0, 0, 0};
    Span *meta[4] = {&b->batch_id, &b->emitter, &b->scenario_id, &b->run_id};
    for (int i = 0; i < 4; i++) {
        meta[i]->p = "";
        meta[i]->n = 0;
    }
    b->count = 0;
    b->records = p;
    b->end = end;
    while (p < end) {
        uint32_t field;
        int wt;
        if (read_tag(&p, end, &field, &wt) < 0) {
            return -1;
        }
        if (field >= 1 && field <= 4) {
            if (read_string(&p, end, wt, meta[field - 1], &seen[field - 1]) < 0) {
                return -1;
            }
        }
        else if (field == 5) {
            Span rec;
            if (wt != WT_LEN || read_len(&p, end, &rec) < 0 || read_record(rec, scratch) < 0) {
                return -1;
            }
            b->count++;
        }
        else if (skip_field(&p, end, wt) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The LogBatch inside a PushRequest (an empty one when absent). */
static int
unwrap_request(const char **p, const char **end)
{
    const char *q = *p;
    Span batch = {"", 0};
    int seen = 0;
    while (q < *end) {
        uint32_t field;
        int wt;
        if (read_tag(&q, *end, &field, &wt) < 0) {
            return -1;
        }
        if (field == 1) {
            /* A repeated message field is merged by protobuf: left to the runtime. */
            if (wt != WT_LEN || seen || read_len(&q, *end, &batch) < 0) {
                return -1;
            }
            seen = 1;
        }
        else if (skip_field(&q, *end, wt) < 0) {
            return -1;
        }
    }
    *p = batch.p;
    *end = batch.p + batch.n;
    return 0;
}

static int
wire_batch(Py_buffer *view, int request, WireBatch *b)
{
    const char *p = view->buf, *end = p + view->len;
    WireRecord *scratch = PyMem_Malloc(sizeof(WireRecord));
    if (scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = (request && unwrap_request(&p, &end) < 0) ? 1 : (read_batch(p, end, b, scratch) < 0);
    PyMem_Free(scratch);
    return rc; /* 0 read, 1 not readable here */
}

static PyObject *
span_str(Span s)
{
    return PyUnicode_DecodeUTF8(s.p, s.n, NULL);
}

/* scan_wire(body, request) -> (batch_id, emitter, scenario_id, run_id, count) | None */
static PyObject *
scan_wire(PyObject *module, PyObject *args)
{
    Py_buffer view;
    int request;
    if (!PyArg_ParseTuple(args, "y*p", &view, &request)) {
        return NULL;
    }
    WireBatch b;
    int rc = wire_batch(&view, request, &b);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    if (rc > 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(NNNNn)", span_str(b.batch_id), span_str(b.emitter),
                         span_str(b.scenario_id), span_str(b.run_id), b.count);
}

static int
set_str(PyObject *d, PyObject *key, Span s)
{
    PyObject *v = span_str(s);
    int rc = v == NULL ? -1 : PyDict_SetItem(d, key, v);
    Py_XDECREF(v);
    return rc;
}

/* The record as pb_codec.batch_from_pb builds it, for the slow path. */
static PyObject *
wire_dict(Span span)
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    WireRecord *w = PyMem_Malloc(sizeof(WireRecord));
    if (w == NULL || read_record(span, w) < 0) {
        PyMem_Free(w);
        Py_DECREF(d);
        return w == NULL ? PyErr_NoMemory() : (PyErr_SetString(PyExc_ValueError, "bad record"), NULL);
    }
    /* All the map entries, not only the first MAX_FIELDS: read them again. */
    const char *p = span.p, *end = span.p + span.n;
    int rc = 0;
    while (rc == 0 && p < end) {
        uint32_t field = 0;
        int wt = 0;
        Span entry, key, value;
        if (read_tag(&p, end, &field, &wt) < 0) {
            break; /* checked by read_record already */
        }
        if (field != 6) {
            skip_field(&p, end, wt);
            continue;
        }
        if (read_len(&p, end, &entry) < 0 || read_map_entry(entry, &key, &value) < 0) {
            break;
        }
        PyObject *k = span_str(key);
        rc = k == NULL ? -1 : set_str(d, k, value);
        Py_XDECREF(k);
    }
    if (rc == 0 && (w->ts.n || w->has_ts)) {
        rc = set_str(d, K_TS, w->ts);
    }
    if (rc == 0 && (w->level.n || w->has_level)) {
        rc = set_str(d, K_LEVEL, w->level);
    }
    if (rc == 0) {
        rc = w->raw.n ? set_str(d, K_RAW, w->raw) : set_str(d, K_MSG, w->msg);
    }
    PyObject *keys[4] = {K_FORMAT, K_SERVICE, K_HOST, K_STREAM};
    Span vals[4] = {w->format, w->service, w->host, w->stream};
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (vals[i].n) {
            rc = set_str(d, keys[i], vals[i]);
        }
    }
    if (rc == 0 && w->has_seq) {
        PyObject *seq = PyLong_FromUnsignedLongLong(w->seq);
        rc = seq == NULL ? -1 : PyDict_SetItem(d, K_SEQ, seq);
        Py_XDECREF(seq);
    }
    PyMem_Free(w);
    if (rc < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static int
span_eq(Span s, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Whether a field name forces the slow path: a record key, an alias, a fixed output key,
 * syslog_severity, src_ts/src_level. Cheap test on the first byte first. */
static int
special_key(Span k)
{
    static const char *const names[] = {
        "ts", "level", "msg", "service", "host", "stream", "seq", "raw", "format",
        "timestamp", "time", "@timestamp", "lvl", "severity", "message", "log", "text",
        "emitter", "scenario_id", "run_id", "batch_id", "ingest_ts", "ts_missing",
        "level_missing", "syslog_severity", "src_ts", "src_level", NULL};
    if (k.n == 0 || k.n > 15 || !strchr("tlmshrfe@bi", k.p[0])) {
        return 0;
    }
    for (const char *const *n = names; *n; n++) {
        if (span_eq(k, *n)) {
            return 1;
        }
    }
    return 0;
}

static int
wire_fields_plain(const WireRecord *w)
{
    if (w->nfields > MAX_FIELDS) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < w->nfields; i++) {
        if (special_key(w->fkey[i])) {
            return 0;
        }
        for (Py_ssize_t j = 0; j < i; j++) {
            if (w->fkey[j].n == w->fkey[i].n &&
                memcmp(w->fkey[j].p, w->fkey[i].p, (size_t)w->fkey[i].n) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* ts and level of a wire record. */
static int
wire_stamp(Run *r, const WireRecord *w, Stamp *st)
{
    st->ts_obj = NULL;
    st->flags = 0;
    if (w->ts.n == 0) {
        st->ts = r->ingest_ts;
        st->ts_n = r->ingest_ts_n;
        st->flags |= TS_ABSENT;
    }
    else if (is_canonical_ts(w->ts.p, w->ts.n)) {
        st->ts = w->ts.p;
        st->ts_n = w->ts.n;
    }
    else {
        PyObject *text = span_str(w->ts);
        PyObject *ts = text == NULL ? NULL : PyObject_CallOneArg(r->ts_fn, text);
        Py_XDECREF(text);
        if (ts == NULL) {
            return -1;
        }
        if (ts == Py_None) {
            Py_DECREF(ts);
            st->ts = r->ingest_ts;
            st->ts_n = r->ingest_ts_n;
            st->flags |= TS_INVALID;
        }
        else {
            st->ts_obj = ts;
            if ((st->ts = PyUnicode_AsUTF8AndSize(ts, &st->ts_n)) == NULL) {
                return -1;
            }
        }
    }
    if (w->level.n == 0) {
        st->level = INFO_LEVEL;
        st->flags |= LEVEL_ABSENT;
        return 0;
    }
    PyObject *text = span_str(w->level);
    if (text == NULL) {
        return -1;
    }
    PyObject *canon = PyDict_GetItemWithError(r->e->levels, text);
    Py_XINCREF(canon);
    if (canon == NULL && !PyErr_Occurred()) {
        canon = PyObject_CallOneArg(r->e->level_fn, text);
    }
    Py_DECREF(text);
    if (canon == NULL) {
        return -1;
    }
    if (canon == Py_None) {
        st->level = INFO_LEVEL;
        st->flags |= LEVEL_INVALID;
    }
    else if ((st->level = level_index(r->e, canon)) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "level_fn returned an unknown level");
        }
        Py_DECREF(canon);
        return -1;
    }
    Py_DECREF(canon);
    return 0;
}

static int
wire_extras(Run *r, const WireRecord *w, int flags)
{
    Buf *o = &r->out;
    for (Py_ssize_t i = 0; i < w->nfields; i++) {
        if (PUT_LIT(o, ",") < 0 || put_json_str(o, w->fkey[i].p, w->fkey[i].n) < 0 ||
            PUT_LIT(o, ":") < 0 || put_json_str(o, w->fval[i].p, w->fval[i].n) < 0) {
            return -1;
        }
    }
    if ((flags & TS_INVALID) &&
        (PUT_LIT(o, ",\"src_ts\":") < 0 || put_json_str(o, w->ts.p, w->ts.n) < 0)) {
        return -1;
    }
    if ((flags & LEVEL_INVALID) &&
        (PUT_LIT(o, ",\"src_level\":") < 0 || put_json_str(o, w->level.p, w->level.n) < 0)) {
        return -1;
    }
    return 0;
}

/* One wire record on the fast path: 1 written, 0 not ours, -1 error. */
static int
wire_record(Run *r, const WireRecord *w)
{
    if (w->raw.n || w->msg.n > r->e->max_chars || !wire_fields_plain(w)) {
        return 0;
    }
    Stamp st;
    if (wire_stamp(r, w, &st) < 0) {
        Py_XDECREF(st.ts_obj);
        return -1;
    }
    const char *text;
    Py_ssize_t text_n;
    PyObject *keep;
    Py_ssize_t mark = r->out.len;
    int rc = resolve_msg(r, NULL, w->msg.p, w->msg.n, is_ascii(w->msg.p, w->msg.n), &text,
                         &text_n, &keep);
    if (rc == 0) {
        rc = put_start(r, st.ts, st.ts_n, st.level, text, text_n) < 0 ||
                     put_middle(r, w->service, w->host, w->format.n ? &w->format : NULL,
                                w->stream, w->has_seq, w->seq) < 0 ||
                     wire_extras(r, w, st.flags) < 0 || put_end(r, st.flags) < 0
                 ? -1
                 : 0;
    }
    Py_XDECREF(keep);
    Py_XDECREF(st.ts_obj);
    if (rc < 0) {
        r->out.len = mark;
        return -1;
    }
    record_accepted(r, st.level, st.flags);
    return 1;
}

/* ------------------------------------------------------------------ Engine methods */

static int
run_begin(Run *r, Engine *e, PyObject *ctx)
{
    memset(r, 0, sizeof *r);
    r->e = e;
    PyObject *head, *tail, *fmt, *ingest_ts;
    if (!PyArg_ParseTuple(ctx, "SSSUOO:ctx", &head, &tail, &fmt, &ingest_ts, &r->ts_fn,
                          &r->slow)) {
        return -1;
    }
    r->head = PyBytes_AS_STRING(head);
    r->head_n = PyBytes_GET_SIZE(head);
    r->tail = PyBytes_AS_STRING(tail);
    r->tail_n = PyBytes_GET_SIZE(tail);
    r->fmt = PyBytes_AS_STRING(fmt);
    r->fmt_n = PyBytes_GET_SIZE(fmt);
    if ((r->ingest_ts = PyUnicode_AsUTF8AndSize(ingest_ts, &r->ingest_ts_n)) == NULL) {
        return -1;
    }
    r->rejections = PyList_New(0);
    return r->rejections == NULL ? -1 : 0;
}

static void
run_free(Run *r)
{
    buf_free(&r->out);
    buf_free(&r->scratch1);
    buf_free(&r->scratch2);
    Py_XDECREF(r->rejections);
}

/* (data, accepted, level counts, missing counts, rejections) */
static PyObject *
run_result(Run *r)
{
    PyObject *result = Py_BuildValue(
        "(y#n(nnnnnn)(nnnn)O)", r->out.p ? r->out.p : "", r->out.len, r->accepted, r->levels[0],
        r->levels[1], r->levels[2], r->levels[3], r->levels[4], r->levels[5], r->missing[0],
        r->missing[1], r->missing[2], r->missing[3], r->rejections);
    run_free(r);
    return result;
}

static PyObject *
engine_normalise_dicts(Engine *self, PyObject *args)
{
    PyObject *records, *ctx;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &records, &PyTuple_Type, &ctx)) {
        return NULL;
    }
    Run r;
    if (run_begin(&r, self, ctx) < 0) {
        run_free(&r);
        return NULL;
    }
    Py_INCREF(records);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (rec == Py_None) {
            continue;
        }
        Py_INCREF(rec);
        int rc = PyDict_CheckExact(rec) ? dict_record(&r, rec) : 0;
        if (rc == 0) {
            rc = run_slow(&r, i, rec);
        }
        Py_DECREF(rec);
        if (rc < 0) {
            Py_DECREF(records);
            run_free(&r);
            return NULL;
        }
    }
    Py_DECREF(records);
    return run_result(&r);
}

static int
wire_records(Run *r, const WireBatch *b)
{
    WireRecord *w = PyMem_Malloc(sizeof(WireRecord));
    if (w == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const char *p = b->records, *end = b->end;
    Py_ssize_t index = 0;
    int rc = 0;
    while (rc >= 0 && p < end) {
        uint32_t field = 0;
        int wt = 0;
        Span span;
        /* The bytes were checked by wire_batch: these reads cannot fail. */
        if (read_tag(&p, end, &field, &wt) < 0) {
            break;
        }
        if (field != 5) {
            skip_field(&p, end, wt);
            continue;
        }
        if (read_len(&p, end, &span) < 0 || read_record(span, w) < 0) {
            break;
        }
        rc = wire_record(r, w);
        if (rc == 0) {
            PyObject *rec = wire_dict(span);
            rc = rec == NULL ? -1 : run_slow(r, index, rec);
            Py_XDECREF(rec);
        }
        index++;
    }
    PyMem_Free(w);
    return rc < 0 ? -1 : 0;
}

static PyObject *
engine_normalise_wire(Engine *self, PyObject *args)
{
    Py_buffer view;
    int request;
    PyObject *ctx;
    if (!PyArg_ParseTuple(args, "y*pO!", &view, &request, &PyTuple_Type, &ctx)) {
        return NULL;
    }
    WireBatch b;
    Run r;
    int rc = wire_batch(&view, request, &b);
    if (rc > 0) {
        PyErr_SetString(PyExc_ValueError, "not a LogBatch this module can read");
    }
    if (rc != 0 || run_begin(&r, self, ctx) < 0 || wire_records(&r, &b) < 0) {
        if (rc == 0) {
            run_free(&r);
        }
        PyBuffer_Release(&view);
        return NULL;
    }
    PyBuffer_Release(&view);
    return run_result(&r);
}

static int
engine_init(Engine *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"levels", "level_names", "level_fn", "mask_mode", "hash_fn",
                             "mask_fn", "dumps", "reserved", "max_chars", NULL};
    PyObject *levels, *names, *level_fn, *hash_fn, *mask_fn, *dumps, *reserved;
    int mode;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OiOOOO!n", kwlist, &PyDict_Type, &levels,
                                     &PyTuple_Type, &names, &level_fn, &mode, &hash_fn,
                                     &mask_fn, &dumps, &PyFrozenSet_Type, &reserved,
                                     &max_chars)) {
        return -1;
    }
    if (PyTuple_GET_SIZE(names) != NLEVELS || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "six level names and a mask mode 0-2 are needed");
        return -1;
    }
    Py_INCREF(levels);
    Py_XSETREF(self->levels, levels);
    Py_INCREF(names);
    Py_XSETREF(self->level_names, names);
    Py_INCREF(level_fn);
    Py_XSETREF(self->level_fn, level_fn);
    Py_INCREF(hash_fn);
    Py_XSETREF(self->hash_fn, hash_fn);
    Py_INCREF(mask_fn);
    Py_XSETREF(self->mask_fn, mask_fn);
    Py_INCREF(dumps);
    Py_XSETREF(self->dumps, dumps);
    Py_INCREF(reserved);
    Py_XSETREF(self->reserved, reserved);
    self->mask_mode = mode;
    self->max_chars = max_chars;
    return 0;
}

static int
engine_traverse(Engine *self, visitproc visit, void *arg)
{
    Py_VISIT(self->levels);
    Py_VISIT(self->level_names);
    Py_VISIT(self->level_fn);
    Py_VISIT(self->hash_fn);
    Py_VISIT(self->mask_fn);
    Py_VISIT(self->dumps);
    Py_VISIT(self->reserved);
    return 0;
}

static int
engine_clear(Engine *self)
{
    Py_CLEAR(self->levels);
    Py_CLEAR(self->level_names);
    Py_CLEAR(self->level_fn);
    Py_CLEAR(self->hash_fn);
    Py_CLEAR(self->mask_fn);
    Py_CLEAR(self->dumps);
    Py_CLEAR(self->reserved);
    return 0;
}

static void
engine_dealloc(Engine *self)
{
    PyObject_GC_UnTrack(self);
    engine_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef engine_methods[] = {
    {"normalise_dicts", (PyCFunction)engine_normalise_dicts, METH_VARARGS,
     "normalise_dicts(records, ctx) -> (data, accepted, levels, missing, rejections)"},
    {"normalise_wire", (PyCFunction)engine_normalise_wire, METH_VARARGS,
     "normalise_wire(body, request, ctx) -> (data, accepted, levels, missing, rejections)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "services.ingest._native.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Normalises records into NDJSON lines; see normalize.py for the rules.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_traverse = (traverseproc)engine_traverse,
    .tp_clear = (inquiry)engine_clear,
    .tp_methods = engine_methods,
};

/* ------------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"scan_wire", scan_wire, METH_VARARGS,
     "scan_wire(body, request) -> (batch_id, emitter, scenario_id, run_id, count) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native", "The Ingest Gateway's hot path in C.", -1, module_methods,
};

static int
intern_all(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } keys[] = {
        {&K_TS, "ts"}, {&K_LEVEL, "level"}, {&K_MSG, "msg"}, {&K_SERVICE, "service"},
        {&K_HOST, "host"}, {&K_STREAM, "stream"}, {&K_SEQ, "seq"}, {&K_RAW, "raw"},
        {&K_FORMAT, "format"}, {&K_SYSLOG_SEVERITY, "syslog_severity"}, {&K_SRC_TS, "src_ts"},
        {&K_SRC_LEVEL, "src_level"}, {&TS_ALIASES[0], "timestamp"}, {&TS_ALIASES[1], "time"},
        {&TS_ALIASES[2], "@timestamp"}, {&LEVEL_ALIASES[0], "lvl"},
        {&LEVEL_ALIASES[1], "severity"}, {&MSG_ALIASES[0], "message"}, {&MSG_ALIASES[1], "log"},
        {&MSG_ALIASES[2], "text"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if ((*keys[i].slot = PyUnicode_InternFromString(keys[i].text)) == NULL) {
            return -1;
        }
    }
    PyObject *own = Py_BuildValue("(OOOOOOOOO)", K_TS, K_LEVEL, K_MSG, K_SERVICE, K_HOST,
                                  K_STREAM, K_SEQ, K_RAW, K_FORMAT);
    CONSUMED = own == NULL ? NULL : PyFrozenSet_New(own);
    Py_XDECREF(own);
    return CONSUMED == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__native(void)
{
    for (int c = 0; c < 0x20; c++) {
        NEEDS_ESCAPE[c] = 1;
    }
    NEEDS_ESCAPE['"'] = NEEDS_ESCAPE['\\'] = 1;
    if (intern_all() < 0 || PyType_Ready(&EngineType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
