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
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t extra);

static inline int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    return b->len + extra <= b->cap ? 0 : buf_grow(b, extra);
}

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
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

static inline int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (n == 0) {
        return 0; /* b->p may still be NULL */
    }
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

/* Eight bytes at a time: which words hold a byte that needs a closer look. A hit may
 * be false (the byte loop then finds nothing), a miss never is. */
static const uint64_t ONES = 0x0101010101010101ULL;
static const uint64_t HIGHS = 0x8080808080808080ULL;

static inline uint64_t
has_byte(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

static inline uint64_t
has_control(uint64_t w)
{
    return (w - ONES * 0x20) & ~w & HIGHS;
}

/* The index of the first byte flagged in `hits` (little-endian: the lowest). Exact:
 * the false hits of the tests above only ever come after a true one. */
static inline int
first_hit(uint64_t hits)
{
#if PY_LITTLE_ENDIAN
    return __builtin_ctzll(hits) >> 3;
#else
    return __builtin_clzll(hits) >> 3;
#endif
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
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t hits = has_byte(w, '"') | has_byte(w, '\\') | has_control(w);
            if (!hits) {
                memcpy(o, &w, 8);
                o += 8;
                i += 8;
                continue;
            }
            int plain = first_hit(hits);
            memcpy(o, &w, 8); /* the bytes before the hit are kept, the rest rewritten */
            o += plain;
            i += plain;
        }
        unsigned char c = (unsigned char)s[i++];
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
    char tmp[24], *end = tmp + sizeof tmp, *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_put(b, p, end - p);
}

/* ------------------------------------------------------------------ text checks */

typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

static int
span_eq(Span s, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)s.n == n && memcmp(s.p, lit, n) == 0;
}

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
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & HIGHS) {
            return 0;
        }
    }
    for (; i < n; i++) {
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

/* The length of the strict UTF-8 sequence (no overlongs, no surrogates, at most
 * U+10FFFF) that starts with the non-ASCII byte s[0], or 0 when it is not one. */
static int
utf8_seq(const unsigned char *s, Py_ssize_t avail)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int more;
    if (c >= 0xC2 && c <= 0xDF) {
        more = 1;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        more = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        more = 3;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    }
    else {
        return 0;
    }
    if (avail - 1 < more || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (int k = 2; k <= more; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return more + 1;
}

/* Strict UTF-8, as upb checks protobuf strings. */
static int
utf8_valid(const char *str, Py_ssize_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & HIGHS) == 0) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int len = utf8_seq(s + i, n - i);
        if (len == 0) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* ------------------------------------------------------------------ engine */

/* A spelling of a level, as the C path looks it up without a Python object. */
enum { LEVEL_TABLE_SIZE = 1024, MAX_SPELLING = 23 };

typedef struct {
    char text[MAX_SPELLING + 1];
    unsigned char len; /* 0: an empty slot */
    signed char level;
} LevelSlot;

static uint32_t
fnv1a(const char *s, Py_ssize_t n)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

typedef struct {
    PyObject_HEAD
    PyObject *levels;      /* dict: every known spelling -> canonical level */
    PyObject *level_names; /* tuple of the six canonical levels, in order */
    PyObject *level_fn;    /* canonical_level(value) -> str | None */
    PyObject *hash_fn;     /* digest(text) -> str, for mask_mode 2 */
    PyObject *mask_fn;     /* Masker.apply(text) -> str, for non-ASCII text */
    PyObject *dumps;       /* orjson.dumps */
    PyObject *loads;       /* orjson.loads */
    PyObject *reserved;    /* frozenset of the fixed output keys */
    int mask_mode;         /* 0 off, 1 mask, 2 hash */
    Py_ssize_t max_chars;
    /* The six names as UTF-8 (owned by level_names), and `levels` as a C hash table. */
    const char *level_text[6];
    Py_ssize_t level_len[6];
    LevelSlot level_table[LEVEL_TABLE_SIZE];
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

/* The level of a spelling from the table: 0-5, or -1 when it is not there. */
static int
level_lookup(const Engine *e, const char *s, Py_ssize_t n)
{
    if (n == 0 || n > MAX_SPELLING) {
        return -1;
    }
    uint32_t i = fnv1a(s, n) & (LEVEL_TABLE_SIZE - 1);
    for (;;) {
        const LevelSlot *slot = &e->level_table[i];
        if (slot->len == 0) {
            return -1;
        }
        if (slot->len == n && memcmp(slot->text, s, (size_t)n) == 0) {
            return slot->level;
        }
        i = (i + 1) & (LEVEL_TABLE_SIZE - 1);
    }
}

/* Fill the table from the `levels` dict; spellings that do not fit are left to it. */
static int
level_table_fill(Engine *e)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0, used = 0;
    memset(e->level_table, 0, sizeof e->level_table);
    while (PyDict_Next(e->levels, &pos, &key, &value)) {
        Py_ssize_t n;
        const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &n) : NULL;
        if (text == NULL) {
            PyErr_Clear();
            continue;
        }
        int level = level_index(e, value);
        if (level < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "levels maps a spelling to an unknown level");
            }
            return -1;
        }
        if (n == 0 || n > MAX_SPELLING || used >= LEVEL_TABLE_SIZE / 2 ||
            level_lookup(e, text, n) >= 0) {
            continue;
        }
        uint32_t i = fnv1a(text, n) & (LEVEL_TABLE_SIZE - 1);
        while (e->level_table[i].len) {
            i = (i + 1) & (LEVEL_TABLE_SIZE - 1);
        }
        memcpy(e->level_table[i].text, text, (size_t)n);
        e->level_table[i].len = (unsigned char)n;
        e->level_table[i].level = (signed char)level;
        used++;
    }
    return 0;
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
    const char *lv = r->e->level_text[level];
    Py_ssize_t ln = r->e->level_len[level];
    if (PUT_LIT(&r->out, "{\"ts\":\"") < 0 || buf_put(&r->out, ts, ts_n) < 0 ||
        PUT_LIT(&r->out, "\",\"level\":\"") < 0 || buf_put(&r->out, lv, ln) < 0 ||
        PUT_LIT(&r->out, "\",\"msg\":") < 0 || put_json_str(&r->out, msg, msg_n) < 0 ||
        PUT_LIT(&r->out, ",") < 0) {
        return -1;
    }
    return buf_put(&r->out, r->head, r->head_n);
}

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
    /* Dumped one level down, as it sits in the stored line: orjson's nesting limit
     * then refuses exactly what it refuses in the Python path. */
    PyObject *boxed = PyTuple_Pack(1, v);
    if (boxed == NULL) {
        return -1;
    }
    PyObject *dumped = PyObject_CallOneArg(r->e->dumps, boxed);
    Py_DECREF(boxed);
    if (dumped == NULL) {
        PyErr_Clear(); /* not JSON-writable: the slow path says why */
        return 0;
    }
    /* "[" value "]" */
    int rc = buf_put(&r->out, PyBytes_AS_STRING(dumped) + 1, PyBytes_GET_SIZE(dumped) - 2) < 0
                 ? -1
                 : 1;
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
    if (PyUnicode_CheckExact(level_val) && PyUnicode_IS_ASCII(level_val)) {
        st->level = level_lookup(e, (const char *)PyUnicode_DATA(level_val),
                                 PyUnicode_GET_LENGTH(level_val));
        if (st->level >= 0) {
            return 1;
        }
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

/* Tags and lengths: at most five bytes, as upb reads them. */
static int
read_varint32(const char **pp, const char *end, uint64_t *out)
{
    const char *start = *pp;
    return read_varint(pp, end, out) < 0 || *pp - start > 5 ? -1 : 0;
}

static int
read_tag(const char **pp, const char *end, uint32_t *field, int *wt)
{
    uint64_t tag;
    if (read_varint32(pp, end, &tag) < 0 || tag > UINT32_MAX || (tag >> 3) == 0) {
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
    if (read_varint32(pp, end, &n) < 0 || n > (uint64_t)(end - *pp)) {
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

/* A string field, read once: a second occurrence is left to the protobuf runtime.
 * `check`: validate the UTF-8 (the scan does; the second pass reads checked bytes). */
static int
read_string(const char **pp, const char *end, int wt, Span *s, int *seen, int check)
{
    if (wt != WT_LEN || *seen || read_len(pp, end, s) < 0 || (check && !utf8_valid(s->p, s->n))) {
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
read_map_entry(Span entry, Span *key, Span *value, int check)
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
        int rc = field == 1   ? read_string(&p, end, wt, key, &seen_key, check)
                 : field == 2 ? read_string(&p, end, wt, value, &seen_value, check)
                              : skip_field(&p, end, wt);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Parse and check one LogRecord. Fields past MAX_FIELDS are checked and counted only. */
static int
read_record(Span span, WireRecord *w, int check)
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
        case 1: rc = read_string(&p, end, wt, &w->ts, &w->has_ts, check); break;
        case 2: rc = read_string(&p, end, wt, &w->level, &w->has_level, check); break;
        case 3: rc = read_string(&p, end, wt, &w->msg, &w->seen_msg, check); break;
        case 4: rc = read_string(&p, end, wt, &w->service, &w->seen_service, check); break;
        case 5: rc = read_string(&p, end, wt, &w->host, &w->seen_host, check); break;
        case 6: {
            Span entry, key, value;
            rc = wt != WT_LEN || read_len(&p, end, &entry) < 0 ||
                         read_map_entry(entry, &key, &value, check) < 0
                     ? -1
                     : 0;
            if (rc == 0 && w->nfields < MAX_FIELDS) {
                w->fkey[w->nfields] = key;
                w->fval[w->nfields] = value;
            }
            w->nfields++;
            break;
        }
        case 7: rc = read_string(&p, end, wt, &w->stream, &w->seen_stream, check); break;
        case 8:
            rc = wt != WT_VARINT || w->has_seq || read_varint(&p, end, &w->seq) < 0 ? -1 : 0;
            w->has_seq = 1;
            break;
        case 9: rc = read_string(&p, end, wt, &w->raw, &w->seen_raw, check); break;
        case 10: rc = read_string(&p, end, wt, &w->format, &w->seen_format, check); break;
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
            if (read_string(&p, end, wt, meta[field - 1], &seen[field - 1], 1) < 0) {
                return -1;
            }
        }
        else if (field == 5) {
            Span rec;
            if (wt != WT_LEN || read_len(&p, end, &rec) < 0 || read_record(rec, scratch, 1) < 0) {
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
    if (w == NULL || read_record(span, w, 0) < 0) {
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
        if (read_len(&p, end, &entry) < 0 || read_map_entry(entry, &key, &value, 0) < 0) {
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

/* ------------------------------------------------------------------ flat records */

/* A record read from protobuf wire or JSON text without building Python objects: the
 * LogRecord slots, and the other members in the order they are stored. */

enum { V_ABSENT = 0, V_STRING, V_INT, V_TRUE, V_FALSE, V_NULL, V_OTHER };

typedef struct {
    int kind;
    Span text;   /* V_STRING: the text itself (UTF-8, unescaped); else its JSON text */
    int escaped; /* V_STRING straight from JSON text: `text` still holds escapes */
    int has_u64; /* a V_INT read from the wire carries the number instead */
    uint64_t u64;
} Value;

typedef struct {
    Span key;
    Value value;
} Member;

enum { SLOT_TS, SLOT_LEVEL, SLOT_MSG, SLOT_SERVICE, SLOT_HOST, SLOT_STREAM, SLOT_SEQ,
       SLOT_FORMAT, SLOT_RAW, NSLOTS };
enum { KEY_PLAIN = NSLOTS, KEY_ALIAS_TS, KEY_ALIAS_LEVEL, KEY_ALIAS_MSG, KEY_SYSLOG,
       KEY_SRC_TS, KEY_SRC_LEVEL, KEY_RESERVED };
enum { MAX_MEMBERS = 64 };

typedef struct {
    Value slot[NSLOTS];
    int alias[3];   /* an alias of ts, level or msg holds a value */
    int has_syslog; /* a syslog_severity member */
    int has_src[2]; /* src_ts, src_level members */
    int off_path;   /* something that only the Python path decides */
    Py_ssize_t n;
    Member extra[MAX_MEMBERS];
} Flat;

static const struct {
    const char *name;
    int kind;
} KEY_KINDS[] = {
    {"ts", SLOT_TS}, {"level", SLOT_LEVEL}, {"msg", SLOT_MSG}, {"service", SLOT_SERVICE},
    {"host", SLOT_HOST}, {"stream", SLOT_STREAM}, {"seq", SLOT_SEQ}, {"format", SLOT_FORMAT},
    {"raw", SLOT_RAW}, {"timestamp", KEY_ALIAS_TS}, {"time", KEY_ALIAS_TS},
    {"@timestamp", KEY_ALIAS_TS}, {"lvl", KEY_ALIAS_LEVEL}, {"severity", KEY_ALIAS_LEVEL},
    {"message", KEY_ALIAS_MSG}, {"log", KEY_ALIAS_MSG}, {"text", KEY_ALIAS_MSG},
    {"syslog_severity", KEY_SYSLOG}, {"src_ts", KEY_SRC_TS}, {"src_level", KEY_SRC_LEVEL},
    {"emitter", KEY_RESERVED}, {"scenario_id", KEY_RESERVED}, {"run_id", KEY_RESERVED},
    {"batch_id", KEY_RESERVED}, {"ingest_ts", KEY_RESERVED}, {"ts_missing", KEY_RESERVED},
    {"level_missing", KEY_RESERVED},
};
enum { NKEY_KINDS = sizeof KEY_KINDS / sizeof KEY_KINDS[0] };

/* KEY_KINDS by name length (names are 2 to 15 bytes, at most 4 of a length); -1 ends. */
enum { MAX_KEY_LEN = 15, PER_LEN = 5 };
static signed char KEYS_BY_LEN[MAX_KEY_LEN + 1][PER_LEN];

static void
index_key_kinds(void)
{
    memset(KEYS_BY_LEN, -1, sizeof KEYS_BY_LEN);
    for (int i = 0; i < NKEY_KINDS; i++) {
        size_t n = strlen(KEY_KINDS[i].name);
        int j = 0;
        while (KEYS_BY_LEN[n][j] >= 0) {
            j++;
        }
        KEYS_BY_LEN[n][j] = (signed char)i;
    }
}

static int
classify(Span k)
{
    if (k.n < 2 || k.n > MAX_KEY_LEN) {
        return KEY_PLAIN;
    }
    for (const signed char *i = KEYS_BY_LEN[k.n]; *i >= 0; i++) {
        if (memcmp(KEY_KINDS[*i].name, k.p, (size_t)k.n) == 0) {
            return KEY_KINDS[*i].kind;
        }
    }
    return KEY_PLAIN;
}

static int
value_present(const Value *v)
{
    return v->kind != V_ABSENT && v->kind != V_NULL && !(v->kind == V_STRING && v->text.n == 0);
}

static void
flat_reset(Flat *f)
{
    memset(f, 0, offsetof(Flat, extra));
}

/* Add one member. `slots_ok`: whether the member may fill a LogRecord slot (JSON) or
 * must not (a protobuf map entry named like one: batch_from_pb semantics). */
static void
flat_add(Flat *f, Span key, Value v, int slots_ok)
{
    int kind = classify(key);
    if (kind < NSLOTS) {
        if (!slots_ok || f->slot[kind].kind != V_ABSENT) {
            f->off_path = 1; /* a duplicate, or a map entry shadowing a slot */
        }
        f->slot[kind] = v;
        return;
    }
    if (kind == KEY_RESERVED || f->n == MAX_MEMBERS) {
        f->off_path = 1;
        return;
    }
    for (Py_ssize_t i = 0; i < f->n; i++) {
        if (f->extra[i].key.n == key.n && memcmp(f->extra[i].key.p, key.p, key.n) == 0) {
            f->off_path = 1; /* duplicate names: the last one wins, decided in Python */
            return;
        }
    }
    if (kind >= KEY_ALIAS_TS && kind <= KEY_ALIAS_MSG && value_present(&v)) {
        f->alias[kind - KEY_ALIAS_TS] = 1;
    }
    f->has_syslog |= kind == KEY_SYSLOG;
    f->has_src[0] |= kind == KEY_SRC_TS;
    f->has_src[1] |= kind == KEY_SRC_LEVEL;
    f->extra[f->n].key = key;
    f->extra[f->n].value = v;
    f->n++;
}

/* The Python object for a value (for ts_fn, level_fn and the like). */
static PyObject *
value_object(Run *r, const Value *v)
{
    switch (v->kind) {
    case V_STRING:
        return PyUnicode_DecodeUTF8(v->text.p, v->text.n, NULL);
    case V_TRUE:
        Py_RETURN_TRUE;
    case V_FALSE:
        Py_RETURN_FALSE;
    case V_NULL:
        Py_RETURN_NONE;
    default:
        if (v->has_u64) {
            return PyLong_FromUnsignedLongLong(v->u64);
        }
        PyObject *text = PyBytes_FromStringAndSize(v->text.p, v->text.n);
        PyObject *obj = text == NULL ? NULL : PyObject_CallOneArg(r->e->loads, text);
        Py_XDECREF(text);
        return obj;
    }
}

/* Digits only, at most 18 of them: an integer orjson writes back unchanged. */
static int
plain_int(Span t)
{
    Py_ssize_t digits = t.n - (t.n && t.p[0] == '-');
    return digits <= 18 && !(t.n == 2 && t.p[0] == '-' && t.p[1] == '0');
}

/* Append a value as orjson would write what orjson read. 1 done, 0 not here, -1 error. */
static int
put_flat_value(Run *r, const Value *v)
{
    Buf *o = &r->out;
    switch (v->kind) {
    case V_STRING:
        return put_json_str(o, v->text.p, v->text.n) < 0 ? -1 : 1;
    case V_TRUE:
        return PUT_LIT(o, "true") < 0 ? -1 : 1;
    case V_FALSE:
        return PUT_LIT(o, "false") < 0 ? -1 : 1;
    case V_NULL:
        return PUT_LIT(o, "null") < 0 ? -1 : 1;
    default:
        break;
    }
    if (v->has_u64) {
        return put_u64(o, v->u64) < 0 ? -1 : 1;
    }
    if (v->kind == V_INT && plain_int(v->text)) {
        return buf_put(o, v->text.p, v->text.n) < 0 ? -1 : 1;
    }
    PyObject *obj = value_object(r, v);
    if (obj == NULL) {
        PyErr_Clear();
        return 0;
    }
    int rc = put_value(r, obj);
    Py_DECREF(obj);
    return rc;
}

/* service, host, stream: absent or null -> "", text as is; else not ours. */
static int
text_slot(const Value *v, Span *out)
{
    out->p = "";
    out->n = 0;
    if (v->kind == V_ABSENT || v->kind == V_NULL) {
        return 1;
    }
    if (v->kind != V_STRING) {
        return 0;
    }
    *out = v->text;
    return 1;
}

/* seq: absent or null -> none; an integer 0..2**64-1; else not ours. */
static int
seq_slot(const Value *v, int *has, uint64_t *seq)
{
    *has = 0;
    if (v->kind == V_ABSENT || v->kind == V_NULL) {
        return 1;
    }
    if (v->kind != V_INT) {
        return 0;
    }
    if (v->has_u64) {
        *has = 1;
        *seq = v->u64;
        return 1;
    }
    if (v->text.n > 20 || v->text.p[0] == '-') {
        return 0;
    }
    uint64_t n = 0;
    for (Py_ssize_t i = 0; i < v->text.n; i++) {
        unsigned d = (unsigned)(v->text.p[i] - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return 0; /* over 2**64-1: orjson reads a float, rejected in Python */
        }
        n = n * 10 + d;
    }
    *has = 1;
    *seq = n;
    return 1;
}

/* ts and level of a flat record; -1 error, else 0. */
static int
flat_stamp(Run *r, const Flat *f, Stamp *st)
{
    const Value *ts = &f->slot[SLOT_TS], *lv = &f->slot[SLOT_LEVEL];
    st->ts_obj = NULL;
    st->flags = 0;
    st->ts = r->ingest_ts;
    st->ts_n = r->ingest_ts_n;
    if (!value_present(ts)) {
        st->flags |= TS_ABSENT;
    }
    else if (ts->kind == V_STRING && is_canonical_ts(ts->text.p, ts->text.n)) {
        st->ts = ts->text.p;
        st->ts_n = ts->text.n;
    }
    else {
        PyObject *obj = value_object(r, ts);
        PyObject *res = obj == NULL ? NULL : PyObject_CallOneArg(r->ts_fn, obj);
        Py_XDECREF(obj);
        if (res == NULL) {
            return -1;
        }
        if (res == Py_None) {
            Py_DECREF(res);
            st->flags |= TS_INVALID;
        }
        else {
            st->ts_obj = res;
            if ((st->ts = PyUnicode_AsUTF8AndSize(res, &st->ts_n)) == NULL) {
                return -1;
            }
        }
    }
    st->level = INFO_LEVEL;
    if (!value_present(lv)) {
        st->flags |= LEVEL_ABSENT;
        return 0;
    }
    if (lv->kind == V_STRING && (st->level = level_lookup(r->e, lv->text.p, lv->text.n)) >= 0) {
        return 0;
    }
    st->level = INFO_LEVEL;
    PyObject *obj = value_object(r, lv);
    if (obj == NULL) {
        return -1;
    }
    PyObject *canon = NULL;
    if (PyUnicode_CheckExact(obj)) {
        canon = PyDict_GetItemWithError(r->e->levels, obj);
        Py_XINCREF(canon);
    }
    if (canon == NULL && !PyErr_Occurred()) {
        canon = PyObject_CallOneArg(r->e->level_fn, obj);
    }
    Py_DECREF(obj);
    if (canon == NULL) {
        return -1;
    }
    if (canon == Py_None) {
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
flat_extras(Run *r, const Flat *f, int flags)
{
    for (Py_ssize_t i = 0; i < f->n; i++) {
        const Member *m = &f->extra[i];
        if (PUT_LIT(&r->out, ",") < 0 || put_json_str(&r->out, m->key.p, m->key.n) < 0 ||
            PUT_LIT(&r->out, ":") < 0) {
            return -1;
        }
        int rc = put_flat_value(r, &m->value);
        if (rc <= 0) {
            return rc;
        }
    }
    int rc = 1;
    if (flags & TS_INVALID) {
        rc = PUT_LIT(&r->out, ",\"src_ts\":") < 0 ? -1 : put_flat_value(r, &f->slot[SLOT_TS]);
    }
    if (rc == 1 && (flags & LEVEL_INVALID)) {
        rc = PUT_LIT(&r->out, ",\"src_level\":") < 0 ? -1
                                                     : put_flat_value(r, &f->slot[SLOT_LEVEL]);
    }
    return rc;
}

/* Whether the record's shape is one the C path decides: no raw line, no alias standing
 * in for an absent ts/level/msg, fixed fields of the expected types. */
static int
flat_plain(Run *r, const Flat *f, Span *service, Span *host, Span *stream)
{
    const Value *msg = &f->slot[SLOT_MSG], *fmt = &f->slot[SLOT_FORMAT];
    if (f->off_path || f->slot[SLOT_RAW].kind != V_ABSENT ||
        (!value_present(&f->slot[SLOT_TS]) && f->alias[0]) ||
        (!value_present(&f->slot[SLOT_LEVEL]) && (f->alias[1] || f->has_syslog)) ||
        (!value_present(msg) && f->alias[2])) {
        return 0;
    }
    if (value_present(msg) && (msg->kind != V_STRING || msg->text.n > r->e->max_chars)) {
        return 0;
    }
    if (fmt->kind != V_ABSENT && fmt->kind != V_STRING) {
        return 0;
    }
    return text_slot(&f->slot[SLOT_SERVICE], service) && text_slot(&f->slot[SLOT_HOST], host) &&
           text_slot(&f->slot[SLOT_STREAM], stream);
}

/* One flat record on the fast path: 1 written, 0 not ours (nothing written), -1 error. */
static int
flat_record(Run *r, const Flat *f)
{
    Span service, host, stream;
    int has_seq;
    uint64_t seq = 0;
    if (!flat_plain(r, f, &service, &host, &stream) ||
        !seq_slot(&f->slot[SLOT_SEQ], &has_seq, &seq)) {
        return 0;
    }
    Stamp st;
    if (flat_stamp(r, f, &st) < 0) {
        Py_XDECREF(st.ts_obj);
        return -1;
    }
    if (((st.flags & TS_INVALID) && f->has_src[0]) ||
        ((st.flags & LEVEL_INVALID) && f->has_src[1])) {
        Py_XDECREF(st.ts_obj);
        return 0; /* src_ts/src_level taken: the renaming is decided in Python */
    }
    const Value *msg = &f->slot[SLOT_MSG];
    const Value *fmt = &f->slot[SLOT_FORMAT];
    Span m = {"", 0};
    if (value_present(msg)) {
        m = msg->text;
    }
    const char *text;
    Py_ssize_t text_n;
    PyObject *keep;
    Py_ssize_t mark = r->out.len;
    int rc = resolve_msg(r, NULL, m.p, m.n, is_ascii(m.p, m.n), &text, &text_n, &keep);
    if (rc == 0) {
        rc = put_start(r, st.ts, st.ts_n, st.level, text, text_n) < 0 ||
                     put_middle(r, service, host, fmt->kind == V_STRING && fmt->text.n ? &fmt->text : NULL,
                                stream, has_seq, seq) < 0
                 ? -1
                 : flat_extras(r, f, st.flags);
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

/* A LogRecord as a flat record: the map entries first, as pb_codec.batch_from_pb does. */
static void
wire_flat(const WireRecord *w, Flat *f)
{
    flat_reset(f);
    f->off_path = w->nfields > MAX_FIELDS;
    Py_ssize_t n = w->nfields < MAX_FIELDS ? w->nfields : MAX_FIELDS;
    for (Py_ssize_t i = 0; i < n; i++) {
        Value v = {.kind = V_STRING, .text = w->fval[i]};
        flat_add(f, w->fkey[i], v, 0);
    }
    Value *s = f->slot;
    if (w->has_ts) {
        s[SLOT_TS] = (Value){.kind = V_STRING, .text = w->ts};
    }
    if (w->has_level) {
        s[SLOT_LEVEL] = (Value){.kind = V_STRING, .text = w->level};
    }
    if (w->raw.n) {
        s[SLOT_RAW] = (Value){.kind = V_STRING, .text = w->raw};
    }
    else {
        s[SLOT_MSG] = (Value){.kind = V_STRING, .text = w->msg};
    }
    const Span *texts[4] = {&w->format, &w->service, &w->host, &w->stream};
    const int slots[4] = {SLOT_FORMAT, SLOT_SERVICE, SLOT_HOST, SLOT_STREAM};
    for (int i = 0; i < 4; i++) {
        if (texts[i]->n) {
            s[slots[i]] = (Value){.kind = V_STRING, .text = *texts[i]};
        }
    }
    if (w->has_seq) {
        s[SLOT_SEQ] = (Value){.kind = V_INT, .text = {"", 0}, .has_u64 = 1, .u64 = w->seq};
    }
}

/* ------------------------------------------------------------------ JSON text */

/* A strict reader (RFC 8259, as orjson reads it): anything orjson would refuse or read
 * differently (a lone surrogate escape, a number out of double range, nesting past
 * MAX_DEPTH) makes the body "not readable here" and the Python path decides. */

enum { MAX_DEPTH = 512 };

typedef struct {
    const char *p;
    const char *end;
    int trusted; /* the text was checked by an earlier pass: find ends, check nothing */
} Cursor;

static void
j_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

static int
j_byte(Cursor *c, char want)
{
    j_ws(c);
    if (c->p < c->end && *c->p == want) {
        c->p++;
        return 1;
    }
    return 0;
}

static int
hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4) {
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = (unsigned char)p[i];
        int d = is_digit(ch) ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                           : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* A \u escape at p (pointing at the backslash): its code point and length. */
static int
j_unicode_escape(const char *p, const char *end, unsigned *cp, int *len)
{
    unsigned hi, lo;
    if (hex4(p + 2, end, &hi) < 0 || (hi >= 0xDC00 && hi <= 0xDFFF)) {
        return -1;
    }
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        *len = 6;
        return 0;
    }
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, end, &lo) < 0 || lo < 0xDC00 ||
        lo > 0xDFFF) {
        return -1; /* orjson refuses unpaired surrogates */
    }
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    *len = 12;
    return 0;
}

/* A string at the opening quote: its raw content, and whether it holds escapes.
 * Checks control characters, escapes and UTF-8 in the same pass. */
static int
j_string_trusted(Cursor *c, Span *raw, int *escaped)
{
    const char *p = c->p + 1, *end = c->end, *start = p;
    *escaped = 0;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t hits = has_byte(w, '"') | has_byte(w, '\\');
            if (!hits) {
                p += 8;
                continue;
            }
            p += first_hit(hits);
        }
        if (*p == '"') {
            raw->p = start;
            raw->n = p - start;
            c->p = p + 1;
            return 0;
        }
        if (*p == '\\') {
            *escaped = 1;
            p++; /* the escaped character is skipped below; \uXXXX digits are plain */
        }
        p++;
    }
    return -1;
}

static int
j_string(Cursor *c, Span *raw, int *escaped)
{
    if (c->trusted) {
        return j_string_trusted(c, raw, escaped);
    }
    const char *p = c->p + 1, *end = c->end, *start = p;
    *escaped = 0;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t hits = has_byte(w, '"') | has_byte(w, '\\') | has_control(w) | (w & HIGHS);
            if (!hits) {
                p += 8;
                continue;
            }
            p += first_hit(hits);
        }
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            raw->p = start;
            raw->n = p - start;
            c->p = p + 1;
            return 0;
        }
        if (ch >= 0x80) {
            int len = utf8_seq((const unsigned char *)p, end - p);
            if (len == 0) {
                return -1;
            }
            p += len;
            continue;
        }
        if (ch < 0x20) {
            return -1;
        }
        if (ch != '\\') {
            p++;
            continue;
        }
        *escaped = 1;
        if (end - p < 2) {
            return -1;
        }
        if (p[1] == 'u') {
            unsigned cp;
            int len;
            if (j_unicode_escape(p, end, &cp, &len) < 0) {
                return -1;
            }
            p += len;
        }
        else if (p[1] && strchr("\"\\/bfnrt", p[1])) {
            p += 2;
        }
        else {
            return -1;
        }
    }
    return -1;
}

/* The text of a checked string, escapes undone, into `out` (room for raw.n bytes). */
static Py_ssize_t
j_unescape(Span raw, char *out)
{
    const char *p = raw.p, *end = raw.p + raw.n;
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char e = p[1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            *o++ = to[strchr(from, e) - from];
            p += 2;
            continue;
        }
        unsigned cp;
        int len;
        j_unicode_escape(p, end, &cp, &len);
        p += len;
        if (cp < 0x80) {
            *o++ = (char)cp;
        }
        else if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
        else if (cp < 0x10000) {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
        else {
            *o++ = (char)(0xF0 | (cp >> 18));
            *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o - out;
}

static int
j_digits(Cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_digit((unsigned char)*c->p)) {
        c->p++;
    }
    return c->p > start;
}

/* A number: V_INT or V_OTHER (a fraction or exponent, or an integer past 18 digits
 * that orjson may read as a float); refused when it overflows a double. */
static int
j_number(Cursor *c, Value *v)
{
    const char *start = c->p;
    if (c->p < c->end && *c->p == '-') {
        c->p++;
    }
    if (c->p < c->end && *c->p == '0') {
        c->p++;
    }
    else if (!j_digits(c)) {
        return -1;
    }
    int integer = 1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        integer = 0;
        if (!j_digits(c)) {
            return -1;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        integer = 0;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        if (!j_digits(c)) {
            return -1;
        }
    }
    v->text.p = start;
    v->text.n = c->p - start;
    v->kind = integer ? V_INT : V_OTHER;
    if (!c->trusted && (!integer || v->text.n > 18)) {
        char tmp[400];
        if (v->text.n >= (Py_ssize_t)sizeof tmp) {
            return -1;
        }
        memcpy(tmp, start, v->text.n);
        tmp[v->text.n] = '\0';
        double d = strtod(tmp, NULL);
        if (d == HUGE_VAL || d == -HUGE_VAL) {
            return -1;
        }
    }
    return 0;
}

static int j_value(Cursor *c, Value *v, int depth);

/* An object or array at c->p, checked to its end. */
static int
j_container(Cursor *c, int depth)
{
    if (depth > MAX_DEPTH) {
        return -1;
    }
    char close = *c->p == '{' ? '}' : ']';
    int object = close == '}';
    c->p++;
    if (j_byte(c, close)) {
        return 0;
    }
    do {
        Value v;
        if (object) {
            Span key;
            int escaped;
            j_ws(c);
            if (c->p >= c->end || *c->p != '"' || j_string(c, &key, &escaped) < 0 ||
                !j_byte(c, ':')) {
                return -1;
            }
        }
        if (j_value(c, &v, depth) < 0) {
            return -1;
        }
    } while (j_byte(c, ','));
    return j_byte(c, close) ? 0 : -1;
}

static int
j_literal(Cursor *c, const char *word, int kind, Value *v)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) {
        return -1;
    }
    v->kind = kind;
    v->text.p = c->p;
    v->text.n = (Py_ssize_t)n;
    c->p += n;
    return 0;
}

/* Any value; a string's span is its raw content (see v->escaped). */
static int
j_value(Cursor *c, Value *v, int depth)
{
    j_ws(c);
    v->has_u64 = 0;
    v->escaped = 0;
    if (c->p >= c->end) {
        return -1;
    }
    switch (*c->p) {
    case '"': {
        int escaped;
        v->kind = V_STRING;
        if (j_string(c, &v->text, &escaped) < 0) {
            return -1;
        }
        v->escaped = escaped; /* the caller undoes escapes */
        return 0;
    }
    case '{':
    case '[': {
        const char *start = c->p;
        if (j_container(c, depth + 1) < 0) {
            return -1;
        }
        v->kind = V_OTHER;
        v->text.p = start;
        v->text.n = c->p - start;
        return 0;
    }
    case 't':
        return j_literal(c, "true", V_TRUE, v);
    case 'f':
        return j_literal(c, "false", V_FALSE, v);
    case 'n':
        return j_literal(c, "null", V_NULL, v);
    default:
        return j_number(c, v);
    }
}

/* What a JSON body holds: the batch fields and where the records array is. */
typedef struct {
    Span meta[5]; /* batch_id, emitter, scenario_id, run_id, format (raw string content) */
    Py_ssize_t count;
    Py_ssize_t start, end; /* the records: from '[' to just past ']' */
} JsonBatch;

static const char *const META_KEYS[5] = {"batch_id", "emitter", "scenario_id", "run_id",
                                         "format"};

/* The records array at c->p: every element an object. */
static int
j_records(Cursor *c, JsonBatch *b, const char *base)
{
    j_ws(c);
    if (c->p >= c->end || *c->p != '[') {
        return -1;
    }
    b->start = c->p - base;
    c->p++;
    b->count = 0;
    if (!j_byte(c, ']')) {
        do {
            j_ws(c);
            /* Anything but an object is rejected with a message: left to Python. */
            if (c->p >= c->end || *c->p != '{' || j_container(c, 1) < 0) {
                return -1;
            }
            b->count++;
        } while (j_byte(c, ','));
        if (!j_byte(c, ']')) {
            return -1;
        }
    }
    b->end = c->p - base;
    return 0;
}

/* A batch object's members: the batch fields must be plain strings, given once. */
static int
j_batch_object(Cursor *c, JsonBatch *b, const char *base)
{
    int seen[6] = {0};
    c->p++;
    if (j_byte(c, '}')) {
        return -1; /* no records: Python says so */
    }
    do {
        Span key;
        int escaped;
        j_ws(c);
        if (c->p >= c->end || *c->p != '"' || j_string(c, &key, &escaped) < 0 || escaped ||
            !j_byte(c, ':')) {
            return -1;
        }
        int which = -1;
        for (int i = 0; i < 5; i++) {
            if (span_eq(key, META_KEYS[i])) {
                which = i;
            }
        }
        if (span_eq(key, "records")) {
            if (seen[5]++ || j_records(c, b, base) < 0) {
                return -1;
            }
            continue;
        }
        Value v;
        if (j_value(c, &v, 1) < 0) {
            return -1;
        }
        if (which >= 0 && (seen[which]++ || v.kind != V_STRING || v.escaped)) {
            return -1;
        }
        if (which >= 0) {
            b->meta[which] = v.text;
        }
    } while (j_byte(c, ','));
    return j_byte(c, '}') && seen[5] ? 0 : -1;
}

/* Check a whole body; 0 when the C path can take it. */
static int
json_batch(const char *p, Py_ssize_t n, JsonBatch *b)
{
    Cursor c = {p, p + n, 0};
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 5; i++) {
        b->meta[i].p = "";
    }
    j_ws(&c);
    if (c.p >= c.end) {
        return -1;
    }
    int rc = *c.p == '[' ? j_records(&c, b, p) : *c.p == '{' ? j_batch_object(&c, b, p) : -1;
    j_ws(&c);
    return rc == 0 && c.p == c.end ? 0 : -1;
}

/* scan_json(body) -> (batch_id, emitter, scenario_id, run_id, format, count, start, end) | None */
static PyObject *
scan_json(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    JsonBatch b;
    int rc = json_batch(view.buf, view.len, &b);
    PyBuffer_Release(&view);
    if (rc < 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(NNNNNnnn)", span_str(b.meta[0]), span_str(b.meta[1]),
                         span_str(b.meta[2]), span_str(b.meta[3]), span_str(b.meta[4]), b.count,
                         b.start, b.end);
}

/* The members of the object at c->p, strings unescaped into the arena (which has room
 * for them all). At most `max` are stored in `out`; *count says how many there were. */
static int
j_members(Cursor *c, Member *out, int max, int *count, int *escaped_key, Buf *arena)
{
    *count = 0;
    c->p++;
    if (j_byte(c, '}')) {
        return 0;
    }
    do {
        Member m;
        int escaped;
        j_ws(c);
        if (c->p >= c->end || *c->p != '"' || j_string(c, &m.key, &escaped) < 0 ||
            !j_byte(c, ':') || j_value(c, &m.value, 1) < 0) {
            return -1;
        }
        *escaped_key |= escaped; /* names are compared after decoding, in Python */
        if (m.value.escaped) {
            char *dst = arena->p + arena->len;
            m.value.text.n = j_unescape(m.value.text, dst);
            m.value.text.p = dst;
            m.value.escaped = 0;
            arena->len += m.value.text.n;
        }
        if (*count < max) {
            out[*count] = m;
        }
        (*count)++;
    } while (j_byte(c, ','));
    return j_byte(c, '}') ? 0 : -1;
}

/* One record object into `f`: the members of a "fields" object first (where the
 * protobuf map's entries go), then the record's own. `top` has room for MAX_MEMBERS. */
static int
j_record(Cursor *c, Flat *f, Member *top, Buf *arena)
{
    int n, escaped = 0;
    flat_reset(f);
    arena->len = 0;
    /* Room for every string of the record, unescaped (never longer than escaped). */
    if (buf_reserve(arena, c->end - c->p) < 0 ||
        j_members(c, top, MAX_MEMBERS, &n, &escaped, arena) < 0) {
        return -1;
    }
    int fields = -1;
    for (int i = 0; i < n && i < MAX_MEMBERS; i++) {
        const Value *v = &top[i].value;
        if (v->kind == V_OTHER && v->text.p[0] == '{' && span_eq(top[i].key, "fields")) {
            f->off_path |= fields >= 0;
            fields = i;
        }
    }
    f->off_path |= escaped || n > MAX_MEMBERS;
    if (fields >= 0) {
        const Span obj = top[fields].value.text;
        Cursor sub = {obj.p, obj.p + obj.n, c->trusted};
        Member inner[MAX_MEMBERS];
        int nf;
        if (j_members(&sub, inner, MAX_MEMBERS, &nf, &escaped, arena) < 0) {
            return -1;
        }
        f->off_path |= escaped || nf > MAX_MEMBERS;
        for (int i = 0; i < nf && i < MAX_MEMBERS; i++) {
            flat_add(f, inner[i].key, inner[i].value, 1);
        }
    }
    for (int i = 0; i < n && i < MAX_MEMBERS; i++) {
        if (i != fields) {
            flat_add(f, top[i].key, top[i].value, 1);
        }
    }
    return 0;
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
    Flat *f = PyMem_Malloc(sizeof(Flat));
    if (w == NULL || f == NULL) {
        PyMem_Free(w);
        PyMem_Free(f);
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
        if (read_len(&p, end, &span) < 0 || read_record(span, w, 0) < 0) {
            break;
        }
        wire_flat(w, f);
        rc = flat_record(r, f);
        if (rc == 0) {
            PyObject *rec = wire_dict(span);
            rc = rec == NULL ? -1 : run_slow(r, index, rec);
            Py_XDECREF(rec);
        }
        index++;
    }
    PyMem_Free(w);
    PyMem_Free(f);
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
json_records(Run *r, Cursor *c, PyObject *load)
{
    Flat *f = PyMem_Malloc(sizeof(Flat));
    Member *top = PyMem_Malloc(MAX_MEMBERS * sizeof(Member));
    Buf arena = {NULL, 0, 0};
    if (f == NULL || top == NULL) {
        PyMem_Free(f);
        PyMem_Free(top);
        PyErr_NoMemory();
        return -1;
    }
    int rc = 0;
    Py_ssize_t index = 0;
    c->p++; /* the records' '[' */
    if (!j_byte(c, ']')) {
        do {
            j_ws(c);
            const char *start = c->p;
            if (c->p >= c->end || *c->p != '{' || j_record(c, f, top, &arena) < 0) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ValueError, "records are not the ones scan_json read");
                }
                rc = -1;
                break;
            }
            rc = flat_record(r, f);
            if (rc == 0) {
                PyObject *text = PyBytes_FromStringAndSize(start, c->p - start);
                PyObject *rec = text == NULL ? NULL : PyObject_CallOneArg(load, text);
                rc = rec == NULL ? -1 : run_slow(r, index, rec);
                Py_XDECREF(text);
                Py_XDECREF(rec);
            }
            index++;
        } while (rc >= 0 && j_byte(c, ','));
    }
    PyMem_Free(f);
    PyMem_Free(top);
    buf_free(&arena);
    return rc < 0 ? -1 : 0;
}

static PyObject *
engine_normalise_json(Engine *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, end;
    PyObject *ctx, *load;
    if (!PyArg_ParseTuple(args, "y*nnO!O", &view, &start, &end, &PyTuple_Type, &ctx, &load)) {
        return NULL;
    }
    if (start < 0 || end > view.len || end - start < 2 || ((char *)view.buf)[start] != '[') {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start and end must frame the records array");
        return NULL;
    }
    Run r;
    Cursor c = {(char *)view.buf + start, (char *)view.buf + end, 1};
    if (run_begin(&r, self, ctx) < 0 || json_records(&r, &c, load) < 0) {
        run_free(&r);
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
                             "mask_fn", "dumps", "loads", "reserved", "max_chars", NULL};
    PyObject *levels, *names, *level_fn, *hash_fn, *mask_fn, *dumps, *loads, *reserved;
    int mode;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OiOOOOO!n", kwlist, &PyDict_Type, &levels,
                                     &PyTuple_Type, &names, &level_fn, &mode, &hash_fn,
                                     &mask_fn, &dumps, &loads, &PyFrozenSet_Type, &reserved,
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
    Py_INCREF(loads);
    Py_XSETREF(self->loads, loads);
    Py_INCREF(reserved);
    Py_XSETREF(self->reserved, reserved);
    self->mask_mode = mode;
    self->max_chars = max_chars;
    for (int i = 0; i < NLEVELS; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name) ||
            (self->level_text[i] = PyUnicode_AsUTF8AndSize(name, &self->level_len[i])) == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "level names must be str");
            }
            return -1;
        }
    }
    return level_table_fill(self);
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
    Py_VISIT(self->loads);
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
    Py_CLEAR(self->loads);
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
    {"normalise_json", (PyCFunction)engine_normalise_json, METH_VARARGS,
     "normalise_json(body, start, end, ctx, load) -> (data, accepted, levels, missing, rejections)"},
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
    {"scan_json", scan_json, METH_O,
     "scan_json(body) -> (batch_id, emitter, scenario_id, run_id, format, count, start, end) or None"},
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
    index_key_kinds();
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
