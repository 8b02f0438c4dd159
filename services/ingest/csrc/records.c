/*
 * Assembling stored lines; the slow path; records that arrive as Python dicts.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

/* ------------------------------------------------------------------ line assembly */

/* csrc/raw.c: records whose raw line the C path reads itself (1 written, 0 not ours). */
typedef struct Flat Flat;
static int dict_raw_record(Run *r, PyObject *rec);
static int flat_raw_record(Run *r, const Flat *f);

/* The batch's head, with a record's own run_id (run_id.p not NULL) in place of the
 * batch's. */
static int
put_head(Run *r, Span run_id)
{
    if (run_id.p == NULL) {
        return buf_put(&r->out, r->head, r->head_n);
    }
    return buf_put(&r->out, r->head, r->run_at) < 0 || PUT_LIT(&r->out, "\"run_id\":") < 0 ||
                   put_json_str(&r->out, run_id.p, run_id.n) < 0 || PUT_LIT(&r->out, ",") < 0
               ? -1
               : 0;
}

/* {"ts":"..","level":"..","msg":..,<head> */
static int
put_start(Run *r, const char *ts, Py_ssize_t ts_n, int level, const char *msg, Py_ssize_t msg_n,
          Span run_id)
{
    const char *lv = r->e->level_text[level];
    Py_ssize_t ln = r->e->level_len[level];
    if (PUT_LIT(&r->out, "{\"ts\":\"") < 0 || buf_put(&r->out, ts, ts_n) < 0 ||
        PUT_LIT(&r->out, "\",\"level\":\"") < 0 || buf_put(&r->out, lv, ln) < 0 ||
        PUT_LIT(&r->out, "\",\"msg\":") < 0 || put_json_str(&r->out, msg, msg_n) < 0 ||
        PUT_LIT(&r->out, ",") < 0) {
        return -1;
    }
    return put_head(r, run_id);
}

/* "service":..,"host":..,"format":..,"stream":..,"seq":..,<tail> ; fmt NULL: the batch's */
static int
put_middle(Run *r, Span service, Span host, const Span *fmt, Span stream, int has_seq,
           uint64_t seq)
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

/* ts and level as resolved, and the missing/invalid flags. */
typedef struct {
    const char *ts; /* the timestamp written */
    Py_ssize_t ts_n;
    PyObject *ts_obj; /* keeps `ts` alive when it came from ts_fn */
    int level;
    int flags;
} Stamp;

/* The other fixed fields of a line, as a fast path resolved them. */
typedef struct {
    PyObject *msg_obj; /* the message as a str when there is one (for mask_fn) */
    Span msg;
    int msg_ascii;
    Span service, host, stream;
    const Span *format; /* NULL: the batch's */
    int has_seq;
    uint64_t seq;
    Span run_id; /* the record's own (not empty); p NULL: the batch's */
} Fixed;

/* Writes a record's other members (and src_ts/src_level): 1, 0 not ours, -1 error. */
typedef int (*ExtrasWriter)(Run *r, const void *record, const Stamp *st);

/* One whole line: 1 written and counted, 0 not ours (nothing written), -1 error.
 * Releases st->ts_obj either way. */
static int
emit_line(Run *r, Stamp *st, const Fixed *fx, ExtrasWriter extras, const void *record)
{
    const char *text;
    Py_ssize_t text_n;
    PyObject *keep;
    Py_ssize_t mark = r->out.len;
    int rc = resolve_msg(r, fx->msg_obj, fx->msg.p, fx->msg.n, fx->msg_ascii, &text, &text_n,
                         &keep);
    if (rc == 0) {
        rc = put_start(r, st->ts, st->ts_n, st->level, text, text_n, fx->run_id) < 0 ||
                     put_middle(r, fx->service, fx->host, fx->format, fx->stream, fx->has_seq,
                                fx->seq) < 0
                 ? -1
                 : extras(r, record, st);
        if (rc == 1 && put_end(r, st->flags) < 0) {
            rc = -1;
        }
    }
    else {
        rc = -1;
    }
    Py_XDECREF(keep);
    Py_CLEAR(st->ts_obj);
    if (rc != 1) {
        r->out.len = mark;
        return rc;
    }
    record_accepted(r, st->level, st->flags);
    return 1;
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
    if (PyLong_CheckExact(v)) {
        /* Every int that fits 64 signed bits, in decimal as orjson writes it (a syslog
         * record carries three: pid, facility, severity); bigger ones go to dumps,
         * which writes up to 2**64-1 and refuses beyond. */
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (!overflow) {
            if (n < 0 && PUT_LIT(&r->out, "-") < 0) {
                return -1;
            }
            return put_u64(&r->out, n < 0 ? 0 - (uint64_t)n : (uint64_t)n) < 0 ? -1 : 1;
        }
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
    /* "[" value "]"; anything else is no orjson.dumps, and a line cannot be made of it. */
    int rc = -1;
    if (!PyBytes_Check(dumped)) {
        PyErr_Format(PyExc_TypeError, "dumps must return bytes, not %.100s",
                     Py_TYPE(dumped)->tp_name);
    }
    else if (PyBytes_GET_SIZE(dumped) < 2 || PyBytes_AS_STRING(dumped)[0] != '[' ||
             PyBytes_AS_STRING(dumped)[PyBytes_GET_SIZE(dumped) - 1] != ']') {
        PyErr_SetString(PyExc_ValueError, "dumps((value,)) must return a JSON array");
    }
    else {
        rc = buf_put(&r->out, PyBytes_AS_STRING(dumped) + 1, PyBytes_GET_SIZE(dumped) - 2) < 0
                 ? -1
                 : 1;
    }
    Py_DECREF(dumped);
    return rc;
}

/* A text field (service, host, stream): absent/None -> "", str as is; else not ours. */
static int
text_field(PyObject *v, Span *out)
{
    out->p = "";
    out->n = 0;
    if (v == NULL || v == Py_None) {
        return 1;
    }
    if (!PyUnicode_CheckExact(v)) {
        return 0;
    }
    out->p = utf8_of(v, &out->n);
    return out->p != NULL;
}

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
                if ((st->ts = str_result(ts, "ts_fn", &st->ts_n)) == NULL) {
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
dict_seq(PyObject *rec, int *has, uint64_t *seq)
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
    if (*seq == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or too big: the slow path rejects it */
        return 0;
    }
    *has = 1;
    return 1;
}

/* A dict record and its fixed values, each held by a reference of its own: the
 * callbacks (ts_fn, level_fn, mask_fn, dumps) run Python code, which may change or
 * empty the dict while its line is written. */
enum { H_TS, H_LEVEL, H_MSG, H_SERVICE, H_HOST, H_STREAM, H_FORMAT, H_RUN_ID, NHELD };

typedef struct {
    PyObject *rec;
    PyObject *v[NHELD]; /* by H_*; NULL when absent */
} DictRecord;

static int
dict_hold(DictRecord *d)
{
    PyObject *const keys[NHELD] = {K_TS,   K_LEVEL,  K_MSG,    K_SERVICE,
                                   K_HOST, K_STREAM, K_FORMAT, K_RUN_ID};
    for (int i = 0; i < NHELD; i++) {
        PyObject *v = PyDict_GetItemWithError(d->rec, keys[i]);
        if (v == NULL && PyErr_Occurred()) {
            return -1;
        }
        Py_XINCREF(v);
        d->v[i] = v;
    }
    return 0;
}

static void
dict_release(DictRecord *d)
{
    for (int i = 0; i < NHELD; i++) {
        Py_XDECREF(d->v[i]);
    }
}

/* The record's other fields, then src_ts/src_level for invalid originals. */
static int
dict_extras(Run *r, const void *record, const Stamp *st)
{
    PyObject *rec = ((const DictRecord *)record)->rec;
    PyObject *ts_val = ((const DictRecord *)record)->v[H_TS];
    PyObject *level_val = ((const DictRecord *)record)->v[H_LEVEL];
    PyObject *run_id = ((const DictRecord *)record)->v[H_RUN_ID];
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
            /* A text run_id was written in the head (dict_fixed); others are renamed. */
            if (hit > 0 && run_id != NULL && PyUnicode_CheckExact(run_id) &&
                PyUnicode_Compare(key, K_RUN_ID) == 0) {
                continue;
            }
            return hit < 0 || PyErr_Occurred() ? -1 : 0;
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

/* 1 when ts, level and msg are as given, 0 when an alias stands in for one of them. */
static int
dict_primary(const DictRecord *d)
{
    int rc;
    if (!present(d->v[H_TS]) && (rc = any_key(d->rec, TS_ALIASES, 3)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (!present(d->v[H_LEVEL]) && (rc = any_key(d->rec, LEVEL_ALIASES, 2)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (!present(d->v[H_MSG]) && (rc = any_key(d->rec, MSG_ALIASES, 3)) != 0) {
        return rc < 0 ? -1 : 0;
    }
    return 1;
}

/* The fixed fields other than ts and level: 1 resolved, 0 not ours, -1 error. */
static int
dict_fixed(Run *r, const DictRecord *d, Fixed *fx, Span *fmt)
{
    PyObject *msg_val = present(d->v[H_MSG]) ? d->v[H_MSG] : NULL;
    const char *msg = "";
    Py_ssize_t msg_n = 0;
    if (msg_val != NULL) {
        if (!PyUnicode_CheckExact(msg_val) || PyUnicode_GET_LENGTH(msg_val) > r->e->max_chars) {
            return 0;
        }
        if ((msg = utf8_of(msg_val, &msg_n)) == NULL) {
            return 0;
        }
    }
    *fx = (Fixed){.msg_obj = msg_val, .msg = {msg, msg_n}};
    fx->msg_ascii = msg_val == NULL || PyUnicode_IS_ASCII(msg_val);
    if (!text_field(d->v[H_SERVICE], &fx->service) || !text_field(d->v[H_HOST], &fx->host) ||
        !text_field(d->v[H_STREAM], &fx->stream)) {
        return 0;
    }
    PyObject *run_id = d->v[H_RUN_ID];
    if (run_id != NULL) {
        /* normalize.py's _own_run: a text run_id replaces the batch's ("" names none). */
        Span run;
        if (!PyUnicode_CheckExact(run_id) || (run.p = utf8_of(run_id, &run.n)) == NULL) {
            return 0;
        }
        if (run.n > 0) {
            if (r->run_at < 0) {
                return 0;
            }
            fx->run_id = run;
        }
    }
    PyObject *format = d->v[H_FORMAT];
    if (format != NULL) {
        if (!PyUnicode_CheckExact(format) || (fmt->p = utf8_of(format, &fmt->n)) == NULL) {
            return 0;
        }
        fx->format = fmt->n ? fmt : NULL;
    }
    return dict_seq(d->rec, &fx->has_seq, &fx->seq);
}

/* One dict record on the fast path, its values held: 1 written, 0 not ours, -1 error. */
static int
dict_held_record(Run *r, DictRecord *d)
{
    int has_raw = PyDict_Contains(d->rec, K_RAW);
    if (has_raw) {
        return has_raw < 0 ? -1 : dict_raw_record(r, d->rec);
    }
    int rc = dict_primary(d);
    if (rc <= 0) {
        return rc;
    }
    Fixed fx;
    Span fmt;
    if ((rc = dict_fixed(r, d, &fx, &fmt)) <= 0) {
        return rc;
    }
    Stamp st;
    if ((rc = dict_stamp(r, d->rec, d->v[H_TS], d->v[H_LEVEL], &st)) <= 0) {
        Py_XDECREF(st.ts_obj);
        return rc;
    }
    return emit_line(r, &st, &fx, dict_extras, d);
}

/* One dict record on the fast path: 1 written, 0 not ours (nothing written), -1 error. */
static int
dict_record(Run *r, PyObject *rec)
{
    DictRecord d = {.rec = rec};
    int rc = dict_hold(&d) < 0 ? -1 : dict_held_record(r, &d);
    dict_release(&d);
    return rc;
}
