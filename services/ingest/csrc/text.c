/*
 * Output buffers, JSON string escaping, and checks on text: canonical timestamps, UTF-8.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

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

/* The raw allocator: a buffer may grow while the GIL is released (csrc/topb.c), and then
 * the error is set by whoever takes the GIL back. */
static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    char *p = PyMem_RawRealloc(b->p, (size_t)cap);
    if (p == NULL) {
        if (PyGILState_Check()) {
            PyErr_NoMemory();
        }
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
    PyMem_RawFree(b->p);
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
put_u64(Buf *b, uint64_t v)
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
