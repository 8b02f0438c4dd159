/*
 * The Ingest Gateway's hot path in C: request bodies in, stored NDJSON lines out.
 *
 * It does, for records of the common shape, exactly what the pure-Python Normaliser
 * in normalize.py does, and hands everything else back to it:
 *
 * - scan_json() / scan_wire() check a JSON body or a serialized PushRequest/LogBatch
 *   as strictly as orjson / upb and read the batch's metadata; Engine.normalise_json()
 *   and Engine.normalise_wire() then turn its records into lines without building a
 *   Python object per field;
 * - Engine.normalise_dicts() takes records that were decoded in Python (CSV, NDJSON);
 * - a record's raw line in RFC 5424 (named or detected) is read by the syslog5424 reader,
 *   one in RFC 3164 or an access-log layout (apache_common, apache_combined,
 *   nginx_access) by the readers of csrc/layouts.c, which also turn its time into the
 *   stored form, and merged with the record's fields as normalize.py does (csrc/raw.c);
 * - push_request_json() turns a JSON body's records into the serialized PushRequest the
 *   Auth Gateway forwards over gRPC (pb_codec.record_to_pb's mapping, csrc/topb.c);
 * - syslog5424() reads a received RFC 5424 message into the record the syslog5424 format
 *   parses from it, structured data included, for the syslog listener, syslog3164() an
 *   RFC 3164 one (csrc/layouts.c), and
 *   octet_frames() cuts the common frames of an octet-counted stream.
 *
 * A record off the common path (a raw line, an alias standing in for ts/level/msg, a
 * field named like a fixed key, a duplicate name, a value of an odd type, a message
 * over the size guard) goes whole to the `slow` callback, which is the Python code; a
 * timestamp that is not canonical goes to `ts_fn`, a level spelling not in the table
 * to `level_fn`, non-ASCII text that may hold an address to `mask_fn`. A body the
 * readers do not take is decoded in Python, which also words the error. So the C code
 * decides only what it can decide exactly; tests/unit/ingest/test_native_*.py compare
 * both paths on generated and mutated input.
 *
 * The types and functions are public, so none trusts its caller: a span is read as
 * strictly as a whole body, an object whose __init__ did not run refuses, a callback's
 * answer is type-checked, and a dict record's values are held while callbacks run.
 * `make sanitize` runs the tests under AddressSanitizer and UBSan.
 *
 * One translation unit: the parts in csrc/ are included below, in dependency order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "csrc/text.c"
#include "csrc/engine.c"
#include "csrc/mask.c"
#include "csrc/records.c"
#include "csrc/wire.c"
#include "csrc/flat.c"
#include "csrc/json.c"
#include "csrc/topb.c"
#include "csrc/idtable.c"
#include "csrc/syslog.c"
#include "csrc/layouts.c"
#include "csrc/raw.c"

/* ------------------------------------------------------------------ Engine methods */

/* Where `"run_id":` starts in the batch's head (a record's own run_id replaces what
 * follows it), or -1. Inside a JSON string every '"' is escaped, so the only match is
 * the key itself. */
static Py_ssize_t
head_run_at(const char *head, Py_ssize_t n)
{
    static const char key[] = "\"run_id\":";
    Py_ssize_t k = (Py_ssize_t)sizeof key - 1;
    for (Py_ssize_t i = 0; i + k <= n; i++) {
        if ((i == 0 || head[i - 1] == ',') && memcmp(head + i, key, (size_t)k) == 0) {
            return i;
        }
    }
    return -1;
}

static int
run_begin(Run *r, Engine *e, PyObject *ctx)
{
    memset(r, 0, sizeof *r);
    if (!e->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Engine.__init__ did not run or failed");
        return -1;
    }
    e->busy++;
    r->e = e;
    PyObject *head, *tail, *fmt, *ingest_ts, *named = NULL, *now = NULL;
    if (!PyArg_ParseTuple(ctx, "SSSUOO|UO!:ctx", &head, &tail, &fmt, &ingest_ts, &r->ts_fn,
                          &r->slow, &named, &PyLong_Type, &now)) {
        return -1;
    }
    if (now != NULL) {
        int overflow;
        r->now_ms = PyLong_AsLongLongAndOverflow(now, &overflow);
        if (r->now_ms == -1 && PyErr_Occurred()) {
            return -1;
        }
        r->has_now = !overflow && r->now_ms >= 0 && r->now_ms < TL_MAX_MS;
    }
    r->head = PyBytes_AS_STRING(head);
    r->head_n = PyBytes_GET_SIZE(head);
    r->run_at = head_run_at(r->head, r->head_n);
    if (named != NULL && (r->named = PyUnicode_AsUTF8AndSize(named, &r->named_n)) == NULL) {
        return -1;
    }
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
    Py_CLEAR(r->rejections);
    if (r->e != NULL) {
        r->e->busy--;
        r->e = NULL;
    }
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

/* The call's answer, or NULL with the error set; releases the body either way. */
static PyObject *
run_finish(Run *r, int ok, Py_buffer *view)
{
    PyBuffer_Release(view);
    if (!ok) {
        run_free(r);
        return NULL;
    }
    return run_result(r);
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

/* A record the fast path did not take, as a dict for the slow path. */
typedef PyObject *(*RecordBuilder)(Span text, PyObject *arg);

static PyObject *
wire_record_dict(Span text, PyObject *unused)
{
    return wire_dict(text);
}

/* orjson.loads + fields merged, by the Python callable `load`. */
static PyObject *
json_record_dict(Span text, PyObject *load)
{
    PyObject *bytes = PyBytes_FromStringAndSize(text.p, text.n);
    PyObject *rec = bytes == NULL ? NULL : PyObject_CallOneArg(load, bytes);
    Py_XDECREF(bytes);
    return rec;
}

/* One record read into `f`: on the fast path, else built and handed to Python. */
static int
flat_or_slow(Run *r, const Flat *f, Py_ssize_t index, RecordBuilder build, Span text,
             PyObject *arg)
{
    int rc = flat_record(r, f);
    if (rc != 0) {
        return rc;
    }
    PyObject *rec = build(text, arg);
    rc = rec == NULL ? -1 : run_slow(r, index, rec);
    Py_XDECREF(rec);
    return rc;
}

/* Room for reading one record, allocated once per call. */
typedef struct {
    Flat flat;
    WireRecord wire;
    Member top[MAX_MEMBERS];
    Buf arena;
} Scratch;

static Scratch *
scratch_new(void)
{
    Scratch *s = PyMem_Calloc(1, sizeof(Scratch));
    if (s == NULL) {
        PyErr_NoMemory();
    }
    return s;
}

static void
scratch_free(Scratch *s)
{
    buf_free(&s->arena);
    PyMem_Free(s);
}

/* The next field of a LogBatch: 1 (and its bytes) for a record, 0 for another field,
 * -1 when it does not read. */
static int
next_record(const char **p, const char *end, Span *span)
{
    uint32_t field;
    int wt;
    if (read_tag(p, end, &field, &wt) < 0) {
        return -1;
    }
    if (field != 5) {
        return skip_field(p, end, wt) < 0 ? -1 : 0;
    }
    return wt == WT_LEN && read_len(p, end, span) == 0 ? 1 : -1;
}

static int
wire_records(Run *r, const WireBatch *b)
{
    Scratch *sc = scratch_new();
    if (sc == NULL) {
        return -1;
    }
    const char *p = b->records, *end = b->end;
    Py_ssize_t index = 0;
    int rc = 0;
    while (rc >= 0 && p < end) {
        Span span;
        int kind = next_record(&p, end, &span);
        /* wire_batch checked these bytes; they fail to read only if a callback changed
         * them since (a bytearray body): refused then, never read past the end. */
        if (kind < 0 || (kind == 1 && read_record(span, &sc->wire, 0) < 0)) {
            PyErr_SetString(PyExc_ValueError, "the body changed while it was read");
            rc = -1;
        }
        else if (kind == 1) {
            wire_flat(&sc->wire, &sc->flat);
            rc = flat_or_slow(r, &sc->flat, index++, wire_record_dict, span, NULL);
        }
    }
    scratch_free(sc);
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
    int ok = run_begin(&r, self, ctx) == 0;
    if (ok) {
        int rc = wire_batch(&view, request, &b);
        if (rc > 0) {
            PyErr_SetString(PyExc_ValueError, "not a LogBatch this module can read");
        }
        ok = rc == 0 && wire_records(&r, &b) == 0;
    }
    return run_finish(&r, ok, &view);
}

/* A span that is not a records array scan_json would take: refused, whatever it holds. */
static int
not_scanned_records(void)
{
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "records are not the ones scan_json read");
    }
    return -1;
}

static int
json_records(Run *r, Cursor *c, PyObject *load)
{
    Scratch *sc = scratch_new();
    if (sc == NULL) {
        return -1;
    }
    int rc = 0;
    Py_ssize_t index = 0;
    c->p++; /* the records' '[' */
    if (!j_byte(c, ']')) {
        do {
            j_ws(c);
            const char *start = c->p;
            if (c->p >= c->end || *c->p != '{' || j_record(c, &sc->flat, sc->top, &sc->arena) < 0) {
                rc = not_scanned_records();
                break;
            }
            Span text = {start, c->p - start};
            rc = flat_or_slow(r, &sc->flat, index++, json_record_dict, text, load);
        } while (rc >= 0 && j_byte(c, ','));
        /* The span must be the whole array, as scan_json framed it. */
        if (rc >= 0 && !j_byte(c, ']')) {
            rc = not_scanned_records();
        }
    }
    j_ws(c);
    if (rc >= 0 && c->p != c->end) {
        rc = not_scanned_records();
    }
    scratch_free(sc);
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
    Cursor c = {(char *)view.buf + start, (char *)view.buf + end};
    int ok = run_begin(&r, self, ctx) == 0 && json_records(&r, &c, load) == 0;
    return run_finish(&r, ok, &view);
}

/* The flat path knows the fixed output keys from its own table (KEY_KINDS); refuse to
 * run if normalize.py's FIXED_KEYS say otherwise, rather than store different lines. */
static int
check_fixed_keys(PyObject *reserved)
{
    Py_ssize_t known = 0;
    for (int i = 0; i < NKEY_KINDS; i++) {
        int kind = KEY_KINDS[i].kind;
        if (kind == KEY_RESERVED || kind == KEY_RUN_ID || (kind < NSLOTS && kind != SLOT_RAW)) {
            PyObject *name = PyUnicode_FromString(KEY_KINDS[i].name);
            int hit = name == NULL ? -1 : PySet_Contains(reserved, name);
            Py_XDECREF(name);
            if (hit < 0) {
                return -1;
            }
            known += hit;
        }
    }
    if (known != PySet_GET_SIZE(reserved)) {
        PyErr_SetString(PyExc_ValueError,
                        "reserved keys differ from the C path's table (csrc/flat.c KEY_KINDS)");
        return -1;
    }
    return 0;
}

static int
engine_init(Engine *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"levels", "level_names", "level_fn", "mask_mode", "hash_fn",
                             "mask_fn", "dumps", "loads", "reserved", "max_chars", NULL};
    PyObject *levels, *names, *level_fn, *hash_fn, *mask_fn, *dumps, *loads, *reserved;
    int mode;
    Py_ssize_t max_chars;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Engine.__init__ called while the engine runs");
        return -1;
    }
    self->ready = 0;
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
    if (check_fixed_keys(reserved) < 0 || level_table_fill(self) < 0) {
        return -1;
    }
    self->ready = 1;
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
    {"push_request_json", push_request_json, METH_VARARGS,
     "push_request_json(body, start, end, names, default_format) -> (request, refused) or None: "
     "the records scan_json framed as a serialized PushRequest (see csrc/topb.c)"},
    {"octet_frames", octet_frames, METH_VARARGS,
     "octet_frames(data, pos, limit) -> (frames, pos): the complete octet-counted frames at pos"},
    {"syslog5424", syslog5424, METH_O,
     "syslog5424(frame) -> the syslog5424 record of an RFC 5424 line, or None when the format "
     "refuses it"},
    {"syslog3164", syslog3164, METH_O,
     "syslog3164(frame) -> the syslog3164 record of a line detected as RFC 3164, or None"},
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
        {&K_SRC_LEVEL, "src_level"}, {&K_RUN_ID, "run_id"}, {&TS_ALIASES[0], "timestamp"}, {&TS_ALIASES[1], "time"},
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
    if (intern_all() < 0 || syslog_intern() < 0 || layouts_intern() < 0 ||
        PyType_Ready(&EngineType) < 0 ||
        PyType_Ready(&IdTableType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0 ||
        PyModule_AddObjectRef(m, "IdTable", (PyObject *)&IdTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
