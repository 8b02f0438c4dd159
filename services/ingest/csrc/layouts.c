/*
 * Raw lines in the access-log layouts and RFC 3164, read as their formats read them, with
 * their timestamps turned into the stored RFC 3339 form as timeparse.py does.
 *
 * - access (emitters/formats/access.py): `client ident user [dd/Mon/yyyy:HH:MM:SS +zzzz]
 *   "request" status bytes` and, combined, ` "referer" "user-agent"`. COMMON_LINE and
 *   COMBINED_LINE are possessive and atomic, so a line matches in one way only: client
 *   and ident are the runs up to the next space, user the shortest text before the first
 *   ` [CLF] `, each quoted value runs to its first unescaped quote. Values are decoded as
 *   webescape.decode does (\xhh, \" \\ \b \n \r \t \v; bytes that are no UTF-8 after it
 *   come back as \xhh text), the request split as _REQUEST splits it.
 * - syslog3164 (emitters/formats/syslog3164.py): `<PRI>Mmm dd HH:MM:SS HOSTNAME ` then an
 *   optional `TAG:` or `TAG[pid]:` (and one space), then MSG.
 *
 * Times: the access time as _from_fields reads it (the offset applied; an offset of more
 * than 23 hours or 59 minutes, an hour over 23, a second over 59, a day the month lacks
 * or year 0 is no time), the RFC 3164 time in the year nearest to the batch's ingest time
 * (_nearest_year: of now-1, now, now+1 the first nearest, fields taken as UTC). An instant
 * before 1970 or from the year 10000 on is no time either. A line whose time is no time
 * is not taken here: Python stores the ingest time and keeps the text as src_ts.
 *
 * Detection of an unnamed line (csrc/raw.c): a line is taken only when
 * formats.detect_format provably names this layout for it; see raw_auto().
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

static PyObject *AC_CLIENT_IP, *AC_IDENT, *AC_USER, *AC_STATUS, *AC_BYTES, *AC_REFERER,
    *AC_USER_AGENT, *AC_METHOD, *AC_PATH, *AC_PROTOCOL, *AC_EMPTY;

/* The layouts a raw line is read with in C, and the format each is. */
enum { RAW_NONE, RAW_5424, RAW_3164, RAW_COMMON, RAW_COMBINED, RAW_NGINX, NRAW };
static const char *const RAW_NAMES[NRAW] = {"",           "syslog5424",      "syslog3164",
                                            "apache_common", "apache_combined", "nginx_access"};
static PyObject *RAW_LABELS[NRAW];

static int
layouts_intern(void)
{
    for (int i = 1; i < NRAW; i++) {
        if ((RAW_LABELS[i] = PyUnicode_InternFromString(RAW_NAMES[i])) == NULL) {
            return -1;
        }
    }
    struct {
        PyObject **slot;
        const char *name;
    } keys[] = {
        {&AC_CLIENT_IP, "client_ip"}, {&AC_IDENT, "ident"},     {&AC_USER, "user"},
        {&AC_STATUS, "status"},       {&AC_BYTES, "bytes"},     {&AC_REFERER, "referer"},
        {&AC_USER_AGENT, "user_agent"}, {&AC_METHOD, "method"}, {&AC_PATH, "path"},
        {&AC_PROTOCOL, "protocol"},   {&AC_EMPTY, ""},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if ((*keys[i].slot = PyUnicode_InternFromString(keys[i].name)) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ calendar */

/* 10000-01-01T00:00:00Z in milliseconds (timeparse.MAX_MS). */
#define TL_MAX_MS 253402300800000LL

static const char MONTH_NAMES[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* 1-12 for a month's name (as written: "Mar", not "mar"), 0 for anything else. */
static int
tl_month(const char *s)
{
    for (int m = 0; m < 12; m++) {
        if (memcmp(s, MONTH_NAMES[m], 3) == 0) {
            return m + 1;
        }
    }
    return 0;
}

static int
tl_days_in(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long
tl_days(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date of a day number from 1970-01-01 (civil_from_days). */
static void
tl_civil(long long z, int *year, int *month, int *day)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

/* Epoch milliseconds of a date and time read as UTC (_local_ms) into *ms: 1, or 0 when
 * datetime() refuses the fields (year 1-9999, a day the month has, hour 0-23, minute
 * and second 0-59). */
static int
tl_local_ms(int year, int month, int day, int hour, int minute, int second, long long *ms)
{
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 ||
        day > tl_days_in(year, month) || hour > 23 || minute > 59 || second > 59) {
        return 0;
    }
    *ms = (tl_days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second) * 1000LL;
    return 1;
}

/* `YYYY-MM-DDTHH:MM:SS.mmmZ` (format_ts) of milliseconds in [0, TL_MAX_MS), into out[24]. */
static void
tl_format(long long ms, char *out)
{
    long long day = ms / 86400000, rest = ms % 86400000;
    int year, month, mday;
    tl_civil(day, &year, &month, &mday);
    int fields[7] = {year / 100, year % 100, month, mday, (int)(rest / 3600000),
                     (int)(rest / 60000 % 60), (int)(rest / 1000 % 60)};
    static const char seps[7] = {0, 0, '-', '-', 'T', ':', ':'};
    char *p = out;
    for (int i = 0; i < 7; i++) {
        if (seps[i]) {
            *p++ = seps[i];
        }
        *p++ = (char)('0' + fields[i] / 10);
        *p++ = (char)('0' + fields[i] % 10);
    }
    int milli = (int)(rest % 1000);
    p[0] = '.';
    p[1] = (char)('0' + milli / 100);
    p[2] = (char)('0' + milli / 10 % 10);
    p[3] = (char)('0' + milli % 10);
    p[4] = 'Z';
}

/* The stored form of an instant as a str, or Py_None when it is out of range. */
static PyObject *
tl_stored(long long ms)
{
    if (ms < 0 || ms >= TL_MAX_MS) {
        return Py_NewRef(Py_None);
    }
    PyObject *out = PyUnicode_New(24, 127);
    if (out != NULL) {
        tl_format(ms, (char *)PyUnicode_DATA(out));
    }
    return out;
}

static int
tl_in(char c, char lo, char hi)
{
    return c >= lo && c <= hi;
}

/* The access time `dd/Mon/yyyy:HH:MM:SS +zzzz` (webtime.CLF_PATTERN) at s[0:26]. */
static int
tl_clf_shape(const char *s)
{
    return tl_in(s[0], '0', '3') && is_digit((unsigned char)s[1]) && s[2] == '/' &&
           tl_month(s + 3) && s[6] == '/' && sl_digits(s + 7, 4) && s[11] == ':' &&
           tl_in(s[12], '0', '2') && is_digit((unsigned char)s[13]) && s[14] == ':' &&
           tl_in(s[15], '0', '5') && is_digit((unsigned char)s[16]) && s[17] == ':' &&
           tl_in(s[18], '0', '6') && is_digit((unsigned char)s[19]) && s[20] == ' ' &&
           (s[21] == '+' || s[21] == '-') && sl_digits(s + 22, 4);
}

/* The stored form of an access time of that shape: a str, Py_None when timeparse reads
 * no time in it, NULL with an error. */
static PyObject *
tl_clf(const char *s)
{
    int oh = num2(s + 22), om = num2(s + 24);
    long long local;
    if (!tl_local_ms(num2(s + 7) * 100 + num2(s + 9), tl_month(s + 3), num2(s), num2(s + 12),
                     num2(s + 15), num2(s + 18), &local) ||
        oh > 23 || om > 59) {
        return Py_NewRef(Py_None);
    }
    long long offset = (oh * 60 + om) * 60000LL;
    return tl_stored(s[21] == '-' ? local + offset : local - offset);
}

/* The stored form of an RFC 3164 time `Mmm dd HH:MM:SS` (checked by the caller) in the
 * year nearest to now_ms, as _nearest_year picks it. */
static PyObject *
tl_3164(const char *s, long long now_ms)
{
    int this_year, unused_month, unused_day;
    tl_civil(now_ms / 86400000, &this_year, &unused_month, &unused_day);
    int day = s[4] == ' ' ? s[5] - '0' : num2(s + 4);
    long long best = 0, ms;
    int found = 0;
    for (int year = this_year - 1; year <= this_year + 1; year++) {
        if (tl_local_ms(year, tl_month(s), day, num2(s + 7), num2(s + 10), num2(s + 13), &ms) &&
            (!found || llabs(ms - now_ms) < llabs(best - now_ms))) {
            best = ms;
            found = 1;
        }
    }
    return found ? tl_stored(best) : Py_NewRef(Py_None);
}

/* ------------------------------------------------------------------ values */

/* Text of the line (valid UTF-8, cut at ASCII bytes) as a str. */
static PyObject *
ly_text(const char *s, Py_ssize_t n)
{
    return is_ascii(s, n) ? sl_ascii(s, n) : PyUnicode_DecodeUTF8(s, n, "strict");
}

static int
ly_hex(char c)
{
    return is_digit((unsigned char)c) || tl_in(c, 'a', 'f') || tl_in(c, 'A', 'F');
}

static int
ly_hex_value(char c)
{
    return is_digit((unsigned char)c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* webescape.decode: \xhh (either case) and \" \\ \b \n \r \t \v undone, any other
 * backslash kept; bytes that are no UTF-8 afterwards read as \xhh text. */
static PyObject *
ly_decode(const char *s, Py_ssize_t n)
{
    if (memchr(s, '\\', (size_t)n) == NULL) {
        return ly_text(s, n);
    }
    char *buf = PyMem_Malloc((size_t)n + 1);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    static const char simple[] = "\\\"bnrtv", bytes[] = "\\\"\b\n\r\t\v";
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *k = i + 1 < n && s[i] == '\\' ? memchr(simple, s[i + 1], 7) : NULL;
        if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' && ly_hex(s[i + 2]) && ly_hex(s[i + 3])) {
            buf[o++] = (char)(ly_hex_value(s[i + 2]) * 16 + ly_hex_value(s[i + 3]));
            i += 3;
        }
        else if (k != NULL && s[i + 1] != '\0') {
            buf[o++] = bytes[k - simple];
            i++;
        }
        else {
            buf[o++] = s[i];
        }
    }
    PyObject *out = PyUnicode_DecodeUTF8(buf, o, "backslashreplace");
    PyMem_Free(buf);
    return out;
}

/* rec[key] = decode(s[0:n]). */
static int
ly_put_decoded(PyObject *rec, PyObject *key, const char *s, Py_ssize_t n)
{
    return sl_put(rec, key, ly_decode(s, n));
}

/* _REQUEST's token characters: !#$%&'*+.^_`|~, digits and ASCII letters, and "-". */
static int
ly_token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && memchr("!#$%&'*+.^_`|~-", c, 15) != NULL);
}

/* _add_request: msg, then method, path and protocol as _REQUEST splits the decoded
 * request (`METHOD target[ HTTP/x.y]`, the target as short as it can be). */
static int
ly_put_request(PyObject *rec, const char *s, Py_ssize_t n)
{
    PyObject *msg = ly_decode(s, n);
    if (msg == NULL || PyDict_SetItem(rec, SL_MSG, msg) < 0) {
        Py_XDECREF(msg);
        return -1;
    }
    Py_ssize_t len;
    const char *t = PyUnicode_AsUTF8AndSize(msg, &len);
    int rc = t == NULL ? -1 : 0;
    Py_ssize_t m = 0;
    while (t != NULL && m < len && ly_token_char((unsigned char)t[m])) {
        m++;
    }
    if (t != NULL && m > 0 && m < len && t[m] == ' ') {
        Py_ssize_t end = len, v = len;
        while (v > 0 && (is_digit((unsigned char)t[v - 1]) || t[v - 1] == '.')) {
            v--;
        }
        /* " HTTP/" and at least one of [0-9.], starting at or after the target. */
        if (v < len && v - 6 >= m + 1 && memcmp(t + v - 6, " HTTP/", 6) == 0) {
            end = v - 6;
        }
        rc = sl_put(rec, AC_METHOD, sl_ascii(t, m));
        if (rc == 0 && end > m + 1) {
            rc = sl_put(rec, AC_PATH, PyUnicode_DecodeUTF8(t + m + 1, end - m - 1, "strict"));
        }
        if (rc == 0 && end < len) {
            rc = sl_put(rec, AC_PROTOCOL, sl_ascii(t + end + 1, len - end - 1));
        }
    }
    Py_DECREF(msg);
    return rc;
}

/* ------------------------------------------------------------------ access lines */

typedef struct {
    Py_ssize_t p, n;
} Cut;

typedef struct {
    Cut client, ident, user, ts, request, status, bytes, referer, agent;
} AccessLine;

/* Where a run of [^ \r\n] that starts at i ends, when it is not empty and a space
 * follows; -1 otherwise. */
static Py_ssize_t
ac_word(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t j = i;
    while (j < n && s[j] != ' ' && s[j] != '\r' && s[j] != '\n') {
        j++;
    }
    return j > i && j < n && s[j] == ' ' ? j : -1;
}

/* Where the quoted value that starts at i ends (its closing quote), or -1: any byte but
 * '"', '\', CR and LF, or '\' and a byte other than CR and LF. */
static Py_ssize_t
ac_quoted(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            return i;
        }
        if (c == '\r' || c == '\n' || (c == '\\' && (i + 1 >= n || s[i + 1] == '\r' ||
                                                     s[i + 1] == '\n'))) {
            return -1;
        }
        i += c == '\\' ? 2 : 1;
    }
    return -1;
}

/* `"value"` at i: the value into *cut, and where the closing quote ends; -1 if none. */
static Py_ssize_t
ac_quote(const char *s, Py_ssize_t n, Py_ssize_t i, Cut *cut)
{
    if (i >= n || s[i] != '"') {
        return -1;
    }
    Py_ssize_t q = ac_quoted(s, n, i + 1);
    cut->p = i + 1;
    cut->n = q - i - 1;
    return q < 0 ? -1 : q + 1;
}

/* The user field and the time: the first ` [CLF] ` from i on, with no CR or LF before
 * it (the atomic group); where it ends, or -1. */
static Py_ssize_t
ac_user_time(const char *s, Py_ssize_t n, Py_ssize_t i, AccessLine *L)
{
    for (Py_ssize_t p = i; p < n; p++) {
        if (p + 30 <= n && s[p] == ' ' && s[p + 1] == '[' && tl_clf_shape(s + p + 2) &&
            s[p + 28] == ']' && s[p + 29] == ' ') {
            L->user = (Cut){i, p - i};
            L->ts = (Cut){p + 2, 26};
            return p + 30;
        }
        if (s[p] == '\r' || s[p] == '\n') {
            return -1;
        }
    }
    return -1;
}

/* 1 when s[0:n] is a whole line of COMBINED_LINE (combined) or COMMON_LINE, 0 if not. */
static int
ac_scan(const char *s, Py_ssize_t n, int combined, AccessLine *L)
{
    Py_ssize_t i = ac_word(s, n, 0), j;
    if (i < 0 || (j = ac_word(s, n, i + 1)) < 0) {
        return 0;
    }
    L->client = (Cut){0, i};
    L->ident = (Cut){i + 1, j - i - 1};
    if ((i = ac_user_time(s, n, j + 1, L)) < 0 || (i = ac_quote(s, n, i, &L->request)) < 0 ||
        i >= n || s[i] != ' ') {
        return 0;
    }
    i++;
    if (i + 3 <= n && sl_digits(s + i, 3)) {
        L->status = (Cut){i, 3};
    }
    else if (i < n && s[i] == '-') {
        L->status = (Cut){i, 1};
    }
    else {
        return 0;
    }
    i += L->status.n;
    if (i >= n || s[i] != ' ') {
        return 0;
    }
    j = ++i;
    while (j < n && is_digit((unsigned char)s[j])) {
        j++;
    }
    if (j == i && i < n && s[i] == '-') {
        j++;
    }
    else if (j == i || j - i > 19) {
        return 0;
    }
    L->bytes = (Cut){i, j - i};
    if (!combined) {
        return j == n;
    }
    if (n - j < 2 || s[j] != ' ' || (i = ac_quote(s, n, j + 1, &L->referer)) < 0 ||
        n - i < 2 || s[i] != ' ' || (i = ac_quote(s, n, i + 1, &L->agent)) < 0) {
        return 0;
    }
    return i == n;
}

static int
ac_is(const char *s, Cut c, const char *text)
{
    Py_ssize_t k = (Py_ssize_t)strlen(text);
    return c.n == k && memcmp(s + c.p, text, (size_t)k) == 0;
}

/* A hex digit as nginx writes one: [0-9A-F]. */
static int
ac_upper_hex(char c)
{
    return is_digit((unsigned char)c) || tl_in(c, 'A', 'F');
}

/* nginx_access's _claims: ident "-", a body of digits, no backslash but \xHH (upper). */
static int
ac_nginx_claims(const char *s, Py_ssize_t n, const AccessLine *L)
{
    if (!ac_is(s, L->ident, "-") || ac_is(s, L->bytes, "-")) {
        return 0;
    }
    for (const char *p = memchr(s, '\\', (size_t)n); p != NULL;
         p = memchr(p + 1, '\\', (size_t)(s + n - p - 1))) {
        if (s + n - p < 4 || p[1] != 'x' || !ac_upper_hex(p[2]) || !ac_upper_hex(p[3])) {
            return 0;
        }
    }
    return 1;
}

/* The status as a number, -1 for "-". */
static int
ac_status(const char *s, const AccessLine *L)
{
    const char *p = s + L->status.p;
    return L->status.n == 3 ? (p[0] - '0') * 100 + num2(p + 1) : -1;
}

/* level_of_status. */
static const char *
ac_level(int status)
{
    return status >= 500 && status <= 599 ? "ERROR"
           : status >= 400 && status <= 499 ? "WARN"
                                            : "INFO";
}

/* The record AccessLogFormat.parse gives for a scanned line, ts in its stored form: a new
 * dict, Py_None when its time is no time, NULL with an error. Its level is a placeholder
 * (None, in the format's place among the keys): *level names the level, which raw_emit
 * puts there. */
static PyObject *
ac_record(const char *s, const AccessLine *L, int combined, const char **level)
{
    PyObject *ts = tl_clf(s + L->ts.p);
    if (ts == NULL || ts == Py_None) {
        return ts;
    }
    PyObject *rec = PyDict_New();
    int status = ac_status(s, L);
    *level = ac_level(status);
    if (rec == NULL) {
        Py_DECREF(ts);
        return NULL;
    }
    if (sl_put(rec, SL_TS, ts) < 0 || PyDict_SetItem(rec, SL_LEVEL, Py_None) < 0) {
        Py_XDECREF(rec);
        return NULL;
    }
    const Cut *user = &L->user;
    int rc = 0;
    if (L->request.n > 0 && !ac_is(s, L->request, "-")) {
        rc = ly_put_request(rec, s + L->request.p, L->request.n);
    }
    if (rc == 0 && !ac_is(s, L->client, "-")) {
        rc = ly_put_decoded(rec, AC_CLIENT_IP, s + L->client.p, L->client.n);
    }
    if (rc == 0 && !ac_is(s, L->ident, "-")) {
        rc = ly_put_decoded(rec, AC_IDENT, s + L->ident.p, L->ident.n);
    }
    if (rc == 0 && ac_is(s, *user, "\"\"")) {
        rc = PyDict_SetItem(rec, AC_USER, AC_EMPTY);
    }
    else if (rc == 0 && !ac_is(s, *user, "-")) {
        rc = ly_put_decoded(rec, AC_USER, s + user->p, user->n);
    }
    if (rc == 0 && status >= 0) {
        rc = sl_put(rec, AC_STATUS, PyLong_FromLong(status));
    }
    if (rc == 0) {
        unsigned long long size = 0;
        for (Py_ssize_t i = 0; i < L->bytes.n && s[L->bytes.p] != '-'; i++) {
            size = size * 10 + (unsigned long long)(s[L->bytes.p + i] - '0');
        }
        rc = sl_put(rec, AC_BYTES, PyLong_FromUnsignedLongLong(size));
    }
    if (combined && rc == 0 && !ac_is(s, L->referer, "-")) {
        rc = ly_put_decoded(rec, AC_REFERER, s + L->referer.p, L->referer.n);
    }
    if (combined && rc == 0 && !ac_is(s, L->agent, "-")) {
        rc = ly_put_decoded(rec, AC_USER_AGENT, s + L->agent.p, L->agent.n);
    }
    if (rc < 0) {
        Py_CLEAR(rec);
    }
    return rec;
}

/* ------------------------------------------------------------------ RFC 3164 lines */

/* HOSTNAME and TAG characters: [!-~] less "[" and "]" (and ":" where `colon` is 0). */
static int
bsd_char(unsigned char c, int colon)
{
    return c >= '!' && c <= '~' && c != '[' && c != ']' && (colon || c != ':');
}

typedef struct {
    int pri;
    Py_ssize_t ts;            /* the 15 bytes of `Mmm dd HH:MM:SS` */
    Py_ssize_t host, host_n;
    Py_ssize_t end;           /* after the space that ends the head */
} BsdHead;

/* `Mmm dd HH:MM:SS` at t[0:15] (TS_3164: the day padded with a space, never a zero). */
static int
bsd_time(const char *t)
{
    int day = (t[4] == ' ' && tl_in(t[5], '1', '9')) ||
              (tl_in(t[4], '1', '2') && is_digit((unsigned char)t[5])) ||
              (t[4] == '3' && tl_in(t[5], '0', '1'));
    int hour = tl_in(t[7], '0', '1') ? is_digit((unsigned char)t[8])
                                     : t[7] == '2' && tl_in(t[8], '0', '3');
    return tl_month(t) && t[3] == ' ' && day && t[6] == ' ' && hour && t[9] == ':' &&
           tl_in(t[10], '0', '5') && is_digit((unsigned char)t[11]) && t[12] == ':' &&
           tl_in(t[13], '0', '5') && is_digit((unsigned char)t[14]);
}

/* `<PRI>Mmm dd HH:MM:SS HOSTNAME ` at the start (syslog3164's _HEAD): 1, else 0. The PRI
 * may be over 191 here; the format refuses it later. */
static int
bsd_head(const char *s, Py_ssize_t n, BsdHead *h)
{
    Py_ssize_t i = 1;
    if (n < 3 || s[0] != '<') {
        return 0;
    }
    h->pri = 0;
    while (i < n && i <= 4 && is_digit((unsigned char)s[i])) {
        h->pri = h->pri * 10 + (s[i] - '0');
        i++;
    }
    if (i == 1 || i > 4 || (s[1] == '0' && i > 2) || i >= n || s[i] != '>') {
        return 0;
    }
    h->ts = i + 1;
    if (n - h->ts < 17 || !bsd_time(s + h->ts) || s[h->ts + 15] != ' ') {
        return 0;
    }
    Py_ssize_t j = h->host = h->ts + 16;
    while (j < n && bsd_char((unsigned char)s[j], 1)) {
        j++;
    }
    h->host_n = j - h->host;
    if (h->host_n < 1 || h->host_n > 255 || s[j - 1] == ':' || j >= n || s[j] != ' ') {
        return 0;
    }
    h->end = j + 1;
    return 1;
}

/* syslog3164's looks_like: the head, PRI at most 191, and no CEF event after it. */
static int
bsd_looks(const char *s, Py_ssize_t n)
{
    BsdHead h;
    return bsd_head(s, n, &h) && h.pri <= 191 &&
           !(n - h.end >= 4 && memcmp(s + h.end, "CEF:", 4) == 0);
}

/* The record Syslog3164Format.parse gives, ts in its stored form for now_ms (as written
 * when now_ms < 0): a new dict, Py_None when the format refuses the line or its time is
 * no time, NULL with an error. *pri gets the PRI. */
static PyObject *
bsd_parse(const char *s, Py_ssize_t n, long long now_ms, int *pri)
{
    BsdHead h;
    if (!bsd_head(s, n, &h) || h.pri > 191) {
        return Py_NewRef(Py_None);
    }
    PyObject *ts = now_ms < 0 ? sl_ascii(s + h.ts, 15) : tl_3164(s + h.ts, now_ms);
    if (ts == NULL || ts == Py_None) {
        return ts;
    }
    *pri = h.pri;
    PyObject *rec = PyDict_New();
    if (rec == NULL) {
        Py_DECREF(ts);
        return NULL;
    }
    if (sl_put(rec, SL_TS, ts) < 0 ||
        sl_put(rec, SL_LEVEL, sl_ascii(s, h.ts)) < 0 ||
        sl_put(rec, SL_FACILITY, PyLong_FromLong(h.pri / 8)) < 0 ||
        sl_put(rec, SL_SEVERITY, PyLong_FromLong(h.pri % 8)) < 0 ||
        (!(h.host_n == 1 && s[h.host] == '-') &&
         sl_put(rec, SL_HOST, sl_ascii(s + h.host, h.host_n)) < 0)) {
        Py_XDECREF(rec);
        return NULL;
    }
    /* TAG: a run of TAG characters, then ":" or "[pid]:", then an optional space. */
    Py_ssize_t start = h.end, j = start, k;
    while (j < n && bsd_char((unsigned char)s[j], 0)) {
        j++;
    }
    Py_ssize_t pid = -1, pid_n = 0, end = -1;
    if (j > start && j < n && s[j] == ':') {
        end = j + 1;
    }
    else if (j > start && j < n && s[j] == '[') {
        for (k = j + 1; k < n && bsd_char((unsigned char)s[k], 1); k++) {
        }
        if (k + 1 < n && s[k] == ']' && s[k + 1] == ':') {
            pid = j + 1;
            pid_n = k - pid;
            end = k + 2;
        }
    }
    int rc = 0;
    if (end > 0) {
        rc = sl_put(rec, SL_SERVICE, sl_ascii(s + start, j - start));
        if (rc == 0 && pid_n > 0) {
            /* As RFC 5424's PROCID (an int when it is 1 to 18 digits, else the text), but
             * "-" is a pid here too. */
            rc = pid_n == 1 && s[pid] == '-' ? sl_put(rec, SL_PID, sl_ascii(s + pid, 1))
                                             : sl_put_field(rec, SL_PID, s + pid, pid_n, 1);
        }
        start = end < n && s[end] == ' ' ? end + 1 : end;
    }
    if (rc == 0 && start < n) {
        rc = sl_put(rec, SL_MSG, ly_text(s + start, n - start));
    }
    if (rc < 0) {
        Py_CLEAR(rec);
    }
    return rec;
}

/*
 * syslog3164(frame) reads one received syslog message (any bytes-like object) into the record
 * that emitters/formats/syslog3164.py's parse() gives for it (ts and level as written),
 * when formats.detect_format names syslog3164 for it: the head matches, PRI is at most
 * 191 and no CEF event follows it (before 3164, detection tries winevent_xml, which needs
 * "<Event", syslog5424, which needs "<PRI>1 ", and cef, which needs "CEF:" and a digit
 * there). Anything else, or bytes that are not strict UTF-8, give None, and the listener
 * reads the message in Python. services/ingest/native.py's syslog3164_reference() is the
 * same function in Python; tests/unit/ingest/test_native_raw_layouts.py holds both to
 * the same result.
 */
static PyObject *
syslog3164(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *s = view.buf;
    Py_ssize_t n = view.len;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    int pri;
    PyObject *out = bsd_looks(s, n) && utf8_valid(s, n) ? bsd_parse(s, n, -1, &pri)
                                                         : Py_NewRef(Py_None);
    PyBuffer_Release(&view);
    return out;
}
