/* ------------------------------------------------------------------ RFC 5424 lines */

/*
 * syslog5424(frame) reads one received syslog message (any bytes-like object) into the record that
 * emitters/formats/syslog5424.py's parse() gives for it, when the message is an RFC 5424
 * line without structured data (SD "-") in strict UTF-8; anything else (structured
 * data, a grammar or date the format refuses, bytes that are not UTF-8) gives None and
 * the syslog listener reads it in Python as before. services/ingest/native.py's
 * syslog5424_reference() is the same function in Python, and
 * tests/unit/ingest/test_native_syslog.py holds both to the same result.
 */

static PyObject *SL_TS, *SL_LEVEL, *SL_FACILITY, *SL_SEVERITY, *SL_HOST, *SL_SERVICE, *SL_PID,
    *SL_MSGID, *SL_MSG;

static int
syslog_intern(void)
{
    struct {
        PyObject **slot;
        const char *name;
    } keys[] = {
        {&SL_TS, "ts"},         {&SL_LEVEL, "level"},     {&SL_FACILITY, "syslog_facility"},
        {&SL_SEVERITY, "syslog_severity"},                {&SL_HOST, "host"},
        {&SL_SERVICE, "service"}, {&SL_PID, "pid"},       {&SL_MSGID, "msgid"},
        {&SL_MSG, "msg"},
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

/* The offsets of the parts of a line without structured data, read by sl_scan. */
typedef struct {
    Py_ssize_t pri_n; /* digits of PRI */
    int pri;
    Py_ssize_t ts, ts_n; /* ts_n 0: "-" */
    Py_ssize_t field[4], field_n[4]; /* HOSTNAME APP-NAME PROCID MSGID */
    Py_ssize_t msg;                  /* where MSG starts; n when there is none */
} SlLine;

/* 1 when s[0:n] is "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID -" with an optional
 * " MSG", PRI at most 191; 0 otherwise. */
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
    if (i >= n || s[i] != '-' || (i + 1 < n && s[i + 1] != ' ')) {
        return 0; /* structured data, or not RFC 5424 */
    }
    L->msg = i + 1 < n ? i + 2 : n;
    return 1;
}

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

static PyObject *
syslog5424(PyObject *self, PyObject *arg)
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
    SlLine line;
    PyObject *out;
    if (!sl_scan(s, n, &line) || !utf8_valid(s + line.msg, n - line.msg)) {
        out = Py_NewRef(Py_None);
    }
    else {
        out = sl_record(s, n, &line);
    }
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
