/*
 * Reading protobuf LogBatch / PushRequest bytes as upb reads them.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

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
        /* upb keeps an entry with any other field among the record's unknown fields,
         * not in the map: such bytes are left to it. */
        int rc = field == 1   ? read_string(&p, end, wt, key, &seen_key, check)
                 : field == 2 ? read_string(&p, end, wt, value, &seen_value, check)
                              : -1;
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
