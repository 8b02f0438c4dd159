/* ------------------------------------------------------------------ RFC 5424 lines */

/*
 * syslog5424(frame) reads one received syslog message (any bytes-like object) into the record that
 * emitters/formats/syslog5424.py's parse() gives for it, structured data included: SD
 * elements as the nested `sd` dict (a repeated PARAM-NAME as a list, the escapes \", \\
 * and \] undone), the logops@32473 element's run_id/stream/seq and meta's sequenceId
 * lifted out as the format lifts them. Anything the format refuses (a grammar, date or
 * PRI it does not take, an SD-ID given twice) or bytes that are not strict UTF-8 give
 * None, and the caller reads the line in Python, which also words any error.
 * services/ingest/native.py's syslog5424_reference() is the same function in Python,
 * and tests/unit/ingest/test_native_syslog*.py hold both to the same result.
 * csrc/raw.c reads pushed raw lines with the same parser (sl_parse).
 */

static PyObject *SL_TS, *SL_LEVEL, *SL_FACILITY, *SL_SEVERITY, *SL_HOST, *SL_SERVICE, *SL_PID,
    *SL_MSGID, *SL_MSG, *SL_RUN_ID, *SL_STREAM, *SL_SEQ, *SL_SD, *SL_LOGOPS, *SL_META,
    *SL_SEQUENCE_ID;

/* SD-IDs and PARAM-NAMEs that the emitters (and RFC 5424's registered elements) write on
 * every line, made once: such a name then costs no allocation and its hash is cached. */
static const char *const SD_KNOWN[] = {
    "logops@32473", "run_id",      "stream",   "seq",       "meta",       "sequenceId",
    "origin",       "ip",          "software", "swVersion", "trace@32473", "trace_id",
    "span_id",      "http@32473",  "method",   "path",      "status",     "duration_ms",
    "timeQuality",  "tzKnown",     "isSynced", "sysUpTime", "language",   "enterpriseId",
};
enum { NSD_KNOWN = sizeof SD_KNOWN / sizeof SD_KNOWN[0] };
static PyObject *SD_KNOWN_OBJ[NSD_KNOWN];
static Py_ssize_t SD_KNOWN_LEN[NSD_KNOWN];

static int
syslog_intern(void)
{
    for (int i = 0; i < NSD_KNOWN; i++) {
        SD_KNOWN_LEN[i] = (Py_ssize_t)strlen(SD_KNOWN[i]);
        if ((SD_KNOWN_OBJ[i] = PyUnicode_InternFromString(SD_KNOWN[i])) == NULL) {
            return -1;
        }
    }
    struct {
        PyObject **slot;
        const char *name;
    } keys[] = {
        {&SL_TS, "ts"},         {&SL_LEVEL, "level"},     {&SL_FACILITY, "syslog_facility"},
        {&SL_SEVERITY, "syslog_severity"},                {&SL_HOST, "host"},
        {&SL_SERVICE, "service"}, {&SL_PID, "pid"},       {&SL_MSGID, "msgid"},
        {&SL_MSG, "msg"},       {&SL_RUN_ID, "run_id"},   {&SL_STREAM, "stream"},
        {&SL_SEQ, "seq"},       {&SL_SD, "sd"},           {&SL_LOGOPS, "logops@32473"},
        {&SL_META, "meta"},     {&SL_SEQUENCE_ID, "sequenceId"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        *keys[i].slot = PyUnicode_InternFromString(keys[i].name);
        if (*keys[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

/* The length of a header field, 1 to `max` of PRINTUSASCII followed by a space at s[i];
 * 0 when there is none. */
static Py_ssize_t
sl_field(const char *s, Py_ssize_t n, Py_ssize_t max)
{
    Py_ssize_t i = 0;
    while (i < n && i <= max && s[i] >= '!' && s[i] <= '~') {
        i++;
    }
    return i >= 1 && i <= max && i < n && s[i] == ' ' ? i : 0;
}

static int
sl_digits(const char *s, int count)
{
    for (int i = 0; i < count; i++) {
        if (!is_digit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The length of an RFC 5424 TIMESTAMP at s, followed by a space (FULL-DATE "T"
 * FULL-TIME with at most 6 fractional digits and Z or +hh:mm, on a day that exists);
 * 0 when there is none. */
static Py_ssize_t
sl_timestamp(const char *s, Py_ssize_t n)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 21) {
        return 0;
    }
    for (int i = 0; i < 19; i++) {
        if (pattern[i] == 'd' ? !is_digit((unsigned char)s[i]) : s[i] != pattern[i]) {
            return 0;
        }
    }
    int year = num2(s) * 100 + num2(s + 2), month = num2(s + 5), day = num2(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || num2(s + 11) > 23 || num2(s + 14) > 59 ||
        num2(s + 17) > 59) {
        return 0;
    }
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > days[month - 1] + (month == 2 && leap)) {
        return 0;
    }
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        Py_ssize_t start = ++i;
        while (i < n && i - start < 7 && is_digit((unsigned char)s[i])) {
            i++;
        }
        if (i == start || i - start > 6) {
            return 0;
        }
    }
    if (i < n && s[i] == 'Z') {
        i++;
    }
    else if (i + 6 <= n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':' &&
             sl_digits(s + i + 1, 2) && sl_digits(s + i + 4, 2) && num2(s + i + 1) <= 23 &&
             num2(s + i + 4) <= 59) {
        i += 6;
    }
    else {
        return 0;
    }
    return i < n && s[i] == ' ' ? i : 0;
}

/* ASCII bytes as a str, without decoding. */
static PyObject *
sl_ascii(const char *s, Py_ssize_t n)
{
    PyObject *out = PyUnicode_New(n, 127);
    if (out != NULL) {
        memcpy(PyUnicode_DATA(out), s, (size_t)n);
    }
    return out;
}

static int
sl_put(PyObject *rec, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(rec, key, value);
    Py_DECREF(value);
    return rc;
}

/* A header field of the record unless it is "-"; PROCID as an int when it is 1 to 18
 * digits, as the format reads it. */
static int
sl_put_field(PyObject *rec, PyObject *key, const char *s, Py_ssize_t n, int pid)
{
    if (n == 1 && s[0] == '-') {
        return 0;
    }
    if (pid && n < 19 && sl_digits(s, (int)n)) {
        long long v = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            v = v * 10 + (s[i] - '0');
        }
        return sl_put(rec, key, PyLong_FromLongLong(v));
    }
    return sl_put(rec, key, sl_ascii(s, n));
}

/* SD-NAME characters: PRINTUSASCII except "=", SP, "]" and '"'. */
static int
sd_name_char(unsigned char c)
{
    return c == '!' || (c >= '#' && c <= '<') || (c >= '>' && c <= '\\') || (c >= '^' && c <= '~');
}

/* The length of an SD-NAME (1 to 32 name characters) at s, or 0: a longer run is no
 * name, since what follows a name (SP, "=", "]") is not a name character. */
static Py_ssize_t
sd_name(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && i <= 32 && sd_name_char((unsigned char)s[i])) {
        i++;
    }
    return i <= 32 ? i : 0;
}

/* The length of a PARAM-VALUE up to its closing quote at s, or -1: any byte but '"',
 * '\' and ']', or '\' and the byte after it. */
static Py_ssize_t
sd_value(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            return i;
        }
        if (c == ']') {
            return -1;
        }
        i += c == '\\' ? 2 : 1;
    }
    return -1; /* also a '\' as the last byte: i passed n */
}

/* The length of one or more SD-ELEMENTs at s followed by the end or a space, or 0. */
static Py_ssize_t
sd_elements(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && s[i] == '[') {
        Py_ssize_t k = sd_name(s + i + 1, n - i - 1);
        if (k == 0) {
            return 0;
        }
        i += 1 + k;
        while (i < n && s[i] == ' ') {
            k = sd_name(s + i + 1, n - i - 1);
            i += 1 + k;
            if (k == 0 || n - i < 2 || s[i] != '=' || s[i + 1] != '"') {
                return 0;
            }
            Py_ssize_t v = sd_value(s + i + 2, n - i - 2);
            if (v < 0) {
                return 0;
            }
            i += 2 + v + 1;
        }
        if (i >= n || s[i] != ']') {
            return 0;
        }
        i++;
    }
    return i > 0 && (i == n || s[i] == ' ') ? i : 0;
}

/* The offsets of the parts of a line, read by sl_scan. */
typedef struct {
    Py_ssize_t pri_n; /* digits of PRI */
    int pri;
    Py_ssize_t ts, ts_n; /* ts_n 0: "-" */
    Py_ssize_t field[4], field_n[4]; /* HOSTNAME APP-NAME PROCID MSGID */
    Py_ssize_t sd, sd_n;             /* the SD-ELEMENTs; sd_n 0: "-" */
    Py_ssize_t msg;                  /* where MSG starts; n when there is none */
} SlLine;

/* 1 when s[0:n] is "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD" with an
 * optional " MSG", PRI at most 191, as the format's grammar reads it; 0 otherwise. */
static int
sl_scan(const char *s, Py_ssize_t n, SlLine *L)
{
    static const Py_ssize_t limits[4] = {255, 48, 128, 32};
    Py_ssize_t i = 1;
    if (n < 2 || s[0] != '<') {
        return 0;
    }
    L->pri = 0;
    while (i < n && i <= 4 && is_digit((unsigned char)s[i])) {
        L->pri = L->pri * 10 + (s[i] - '0');
        i++;
    }
    L->pri_n = i - 1;
    if (L->pri_n < 1 || L->pri_n > 3 || L->pri > 191 || n - i < 3 || s[i] != '>' ||
        s[i + 1] != '1' || s[i + 2] != ' ') {
        return 0;
    }
    i += 3;
    L->ts = i;
    if (i + 1 < n && s[i] == '-' && s[i + 1] == ' ') {
        L->ts_n = 0;
        i += 2;
    }
    else {
        L->ts_n = sl_timestamp(s + i, n - i);
        if (L->ts_n == 0) {
            return 0;
        }
        i += L->ts_n + 1;
    }
    for (int k = 0; k < 4; k++) {
        L->field[k] = i;
        L->field_n[k] = sl_field(s + i, n - i, limits[k]);
        if (L->field_n[k] == 0) {
            return 0;
        }
        i += L->field_n[k] + 1;
    }
    L->sd = i;
    if (i < n && s[i] == '-' && (i + 1 == n || s[i + 1] == ' ')) {
        L->sd_n = 0;
        i++;
    }
    else if ((L->sd_n = sd_elements(s + i, n - i)) > 0) {
        i += L->sd_n;
    }
    else {
        return 0;
    }
    L->msg = i < n ? i + 1 : n;
    return 1;
}

/* An SD-ID or PARAM-NAME (ASCII) as a str: a known one shared, any other made. */
static PyObject *
sd_key(const char *s, Py_ssize_t n)
{
    for (int i = 0; i < NSD_KNOWN; i++) {
        if (SD_KNOWN_LEN[i] == n && memcmp(SD_KNOWN[i], s, (size_t)n) == 0) {
            return Py_NewRef(SD_KNOWN_OBJ[i]);
        }
    }
    return sl_ascii(s, n);
}

/* A PARAM-VALUE's text: \", \\ and \] undone, every other pair kept as written. */
static PyObject *
sd_text(const char *s, Py_ssize_t n)
{
    if (memchr(s, '\\', (size_t)n) == NULL) {
        return PyUnicode_DecodeUTF8(s, n, "strict");
    }
    char *buf = PyMem_Malloc((size_t)n + 1);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == ']')) {
            i++;
        }
        else if (s[i] == '\\' && i + 1 < n) {
            buf[o++] = s[i++];
        }
        buf[o++] = s[i];
    }
    PyObject *out = PyUnicode_DecodeUTF8(buf, o, "strict");
    PyMem_Free(buf);
    return out;
}

/* params[name] = value; a name given again collects its values in a list. Steals both. */
static int
sd_param(PyObject *params, PyObject *name, PyObject *value)
{
    int rc = -1;
    if (name != NULL && value != NULL) {
        PyObject *old = PyDict_GetItemWithError(params, name);
        if (old == NULL) {
            rc = PyErr_Occurred() ? -1 : PyDict_SetItem(params, name, value);
        }
        else if (PyList_CheckExact(old)) {
            rc = PyList_Append(old, value);
        }
        else {
            PyObject *both = PyList_New(2);
            if (both != NULL) {
                PyList_SET_ITEM(both, 0, Py_NewRef(old));
                PyList_SET_ITEM(both, 1, Py_NewRef(value));
                rc = PyDict_SetItem(params, name, both);
                Py_DECREF(both);
            }
        }
    }
    Py_XDECREF(name);
    Py_XDECREF(value);
    return rc;
}

/* A sequence number as the format reads one: str of 1 to `digits` ASCII digits, as an
 * int; NULL without an error when it is not one. */
static PyObject *
sd_number(PyObject *v, Py_ssize_t digits)
{
    if (v == NULL || !PyUnicode_CheckExact(v) || !PyUnicode_IS_ASCII(v)) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    const char *p = (const char *)PyUnicode_DATA(v);
    char text[24];
    if (n < 1 || n > digits || n >= (Py_ssize_t)sizeof text || !sl_digits(p, (int)n)) {
        return NULL;
    }
    memcpy(text, p, (size_t)n);
    text[n] = '\0';
    return PyLong_FromString(text, NULL, 10);
}

/* The format's _lift_accounting: run_id and stream (text) out of logops@32473, seq from
 * its seq or else from meta's sequenceId (1 to 2147483647); elements left empty go. */
static int
sd_lift(PyObject *sd, PyObject *rec)
{
    PyObject *ours = PyDict_GetItemWithError(sd, SL_LOGOPS), *seq = NULL;
    if (ours == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (ours != NULL) {
        PyObject *const keys[2] = {SL_RUN_ID, SL_STREAM};
        for (int k = 0; k < 2; k++) {
            PyObject *v = PyDict_GetItemWithError(ours, keys[k]);
            if (v != NULL && PyUnicode_CheckExact(v) &&
                (PyDict_SetItem(rec, keys[k], v) < 0 || PyDict_DelItem(ours, keys[k]) < 0)) {
                return -1;
            }
        }
        seq = sd_number(PyDict_GetItemWithError(ours, SL_SEQ), 20);
        if (PyErr_Occurred() || (seq != NULL && PyDict_DelItem(ours, SL_SEQ) < 0)) {
            Py_XDECREF(seq);
            return -1;
        }
    }
    PyObject *meta = PyDict_GetItemWithError(sd, SL_META);
    PyObject *id = meta == NULL ? NULL : sd_number(PyDict_GetItemWithError(meta, SL_SEQUENCE_ID), 10);
    int rc = PyErr_Occurred() ? -1 : 0;
    if (id != NULL && rc == 0) {
        long long v = PyLong_AsLongLong(id);
        if (v >= 1 && v <= 2147483647LL) {
            rc = PyDict_DelItem(meta, SL_SEQUENCE_ID);
            if (seq == NULL) {
                seq = Py_NewRef(id);
            }
        }
    }
    Py_XDECREF(id);
    if (rc == 0 && seq != NULL) {
        rc = PyDict_SetItem(rec, SL_SEQ, seq);
    }
    Py_XDECREF(seq);
    PyObject *const emptied[2] = {SL_LOGOPS, SL_META};
    for (int k = 0; k < 2 && rc == 0; k++) {
        PyObject *params = PyDict_GetItemWithError(sd, emptied[k]);
        if (params != NULL && PyDict_GET_SIZE(params) == 0) {
            rc = PyDict_DelItem(sd, emptied[k]);
        }
        else if (params == NULL && PyErr_Occurred()) {
            rc = -1;
        }
    }
    return rc;
}

/* The SD-ELEMENTs sl_scan found, into `sd`: 1 read, 0 an SD-ID given twice, -1 error. */
static int
sd_fill(PyObject *sd, const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && s[i] == '[') {
        Py_ssize_t k = sd_name(s + i + 1, n - i - 1);
        PyObject *id = sd_key(s + i + 1, k);
        int seen = id == NULL ? -1 : PyDict_Contains(sd, id);
        PyObject *params = seen == 0 ? PyDict_New() : NULL;
        int rc = params == NULL ? (seen > 0 ? 0 : -1) : PyDict_SetItem(sd, id, params);
        Py_XDECREF(id);
        if (params == NULL || rc < 0) {
            Py_XDECREF(params);
            return rc;
        }
        i += 1 + k;
        while (rc == 0 && s[i] == ' ') {
            k = sd_name(s + i + 1, n - i - 1);
            PyObject *name = sd_key(s + i + 1, k);
            i += 1 + k + 2;
            Py_ssize_t v = sd_value(s + i, n - i);
            rc = sd_param(params, name, sd_text(s + i, v));
            i += v + 1;
        }
        Py_DECREF(params);
        if (rc < 0) {
            return -1;
        }
        i++; /* ']' */
    }
    return 1;
}

/* sd and the accounting lifted out of it, into the record: 1, 0 not the format's, -1. */
static int
sl_put_sd(PyObject *rec, const char *s, Py_ssize_t n)
{
    PyObject *sd = PyDict_New();
    if (sd == NULL) {
        return -1;
    }
    int rc = sd_fill(sd, s, n);
    if (rc > 0 && sd_lift(sd, rec) < 0) {
        rc = -1;
    }
    if (rc > 0 && PyDict_GET_SIZE(sd) > 0 && PyDict_SetItem(rec, SL_SD, sd) < 0) {
        rc = -1;
    }
    Py_DECREF(sd);
    return rc;
}

/* The record of a scanned line: a new dict, Py_None when the format refuses the line
 * (an SD-ID twice), NULL with an error. */
static PyObject *
sl_record(const char *s, Py_ssize_t n, const SlLine *L)
{
    static PyObject *const *const field_keys[4] = {&SL_HOST, &SL_SERVICE, &SL_PID, &SL_MSGID};
    PyObject *rec = PyDict_New();
    if (rec == NULL) {
        return NULL;
    }
    if (L->ts_n && sl_put(rec, SL_TS, sl_ascii(s + L->ts, L->ts_n)) < 0) {
        goto fail;
    }
    if (sl_put(rec, SL_LEVEL, sl_ascii(s, L->pri_n + 2)) < 0 ||
        sl_put(rec, SL_FACILITY, PyLong_FromLong(L->pri / 8)) < 0 ||
        sl_put(rec, SL_SEVERITY, PyLong_FromLong(L->pri % 8)) < 0) {
        goto fail;
    }
    for (int k = 0; k < 4; k++) {
        if (sl_put_field(rec, *field_keys[k], s + L->field[k], L->field_n[k], k == 2) < 0) {
            goto fail;
        }
    }
    if (L->sd_n) {
        int rc = sl_put_sd(rec, s + L->sd, L->sd_n);
        if (rc <= 0) {
            Py_DECREF(rec);
            return rc < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    Py_ssize_t msg = L->msg;
    if (n - msg >= 3 && memcmp(s + msg, "\xEF\xBB\xBF", 3) == 0) {
        msg += 3; /* the BOM of MSG-UTF8 */
    }
    if (msg < n && sl_put(rec, SL_MSG, PyUnicode_DecodeUTF8(s + msg, n - msg, "strict")) < 0) {
        goto fail;
    }
    return rec;
fail:
    Py_DECREF(rec);
    return NULL;
}

/* One line (trailing CR and LF removed first) as the syslog5424 format parses it: a new
 * dict, Py_None when the format would refuse it or it is not strict UTF-8, NULL with an
 * error. `pri` gets the PRI of a line read. */
static PyObject *
sl_parse(const char *s, Py_ssize_t n, int *pri)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    SlLine line;
    /* The header is ASCII (sl_scan checked it); SD values and MSG may be any UTF-8. */
    if (!sl_scan(s, n, &line) || !utf8_valid(s + line.sd, n - line.sd)) {
        return Py_NewRef(Py_None);
    }
    *pri = line.pri;
    return sl_record(s, n, &line);
}

static PyObject *
syslog5424(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int pri;
    PyObject *out = sl_parse(view.buf, view.len, &pri);
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------------ RFC 6587 frames */

/*
 * octet_frames(data, pos, limit) -> (frames, pos): the octet-counted frames at the start
 * of data[pos:] as services/ingest/syslog/framing.py reads them (a trailing LF, or CR LF,
 * inside a frame removed; empty ones dropped), while each has a header "[1-9][0-9]{0,9} "
 * and is complete and at most `limit` bytes; pos is where it stopped. What comes next (a
 * frame cut by the chunk's end, an oversized one, a bad header) is the Python decoder's.
 * framing.py's octet_prefix() is the same function in Python.
 */
static PyObject *
octet_frames(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t pos, limit;
    if (!PyArg_ParseTuple(args, "y*nn:octet_frames", &view, &pos, &limit)) {
        return NULL;
    }
    PyObject *frames = PyList_New(0);
    const char *s = view.buf;
    Py_ssize_t end = view.len;
    if (frames == NULL || pos < 0 || pos > end) {
        if (frames != NULL) {
            PyErr_SetString(PyExc_ValueError, "pos must be within data");
            Py_CLEAR(frames);
        }
        PyBuffer_Release(&view);
        return NULL;
    }
    while (pos < end) {
        Py_ssize_t i = pos;
        long long size = 0;
        if (s[i] < '1' || s[i] > '9') {
            break;
        }
        while (i < end && i - pos < 10 && is_digit((unsigned char)s[i])) {
            size = size * 10 + (s[i] - '0');
            i++;
        }
        if (i >= end || s[i] != ' ' || size > limit || size > end - i - 1) {
            break;
        }
        Py_ssize_t start = i + 1, stop = start + (Py_ssize_t)size;
        pos = stop;
        if (s[stop - 1] == '\n') {
            stop -= stop - start > 1 && s[stop - 2] == '\r' ? 2 : 1;
        }
        if (stop > start) {
            PyObject *frame = PyBytes_FromStringAndSize(s + start, stop - start);
            if (frame == NULL || PyList_Append(frames, frame) < 0) {
                Py_XDECREF(frame);
                Py_DECREF(frames);
                PyBuffer_Release(&view);
                return NULL;
            }
            Py_DECREF(frame);
        }
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", frames, pos);
}
