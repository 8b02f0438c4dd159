/*
 * Records read without Python objects (from the wire or JSON text), and their lines.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

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
       KEY_SRC_TS, KEY_SRC_LEVEL, KEY_RESERVED, KEY_RUN_ID };
enum { MAX_MEMBERS = 64 };

struct Flat {
    Value slot[NSLOTS];
    int alias[3];   /* an alias of ts, level or msg holds a value */
    int has_syslog; /* a syslog_severity member */
    int has_src[2]; /* src_ts, src_level members */
    int off_path;   /* something that only the Python path decides */
    int has_run_id; /* a run_id member, in run_id */
    Value run_id;
    Py_ssize_t n;
    Member extra[MAX_MEMBERS];
};

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
    {"emitter", KEY_RESERVED}, {"scenario_id", KEY_RESERVED}, {"run_id", KEY_RUN_ID},
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
    if (kind == KEY_RUN_ID) {
        f->off_path |= f->has_run_id; /* given twice: the last one wins, in Python */
        f->has_run_id = 1;
        f->run_id = v;
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
            if ((st->ts = str_result(res, "ts_fn", &st->ts_n)) == NULL) {
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
flat_extras(Run *r, const void *record, const Stamp *st)
{
    const Flat *f = record;
    int flags = st->flags;
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
    Span service, host, stream, run = {NULL, 0};
    int has_seq;
    uint64_t seq = 0;
    if (f->slot[SLOT_RAW].kind != V_ABSENT) {
        return flat_raw_record(r, f);
    }
    if (!flat_plain(r, f, &service, &host, &stream) ||
        !seq_slot(&f->slot[SLOT_SEQ], &has_seq, &seq)) {
        return 0;
    }
    if (f->has_run_id) {
        /* normalize.py's _own_run: a text run_id replaces the batch's ("" names none);
         * any other value stays a field, renamed src_run_id, in Python. */
        if (f->run_id.kind != V_STRING || (f->run_id.text.n > 0 && r->run_at < 0)) {
            return 0;
        }
        run = f->run_id.text.n > 0 ? f->run_id.text : run;
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
    const Value *msg = &f->slot[SLOT_MSG], *fmt = &f->slot[SLOT_FORMAT];
    Fixed fx = {.service = service,
                .host = host,
                .stream = stream,
                .has_seq = has_seq,
                .seq = seq,
                .run_id = run};
    fx.msg = value_present(msg) ? msg->text : (Span){"", 0};
    fx.msg_ascii = is_ascii(fx.msg.p, fx.msg.n);
    fx.format = fmt->kind == V_STRING && fmt->text.n ? &fmt->text : NULL;
    return emit_line(r, &st, &fx, flat_extras, f);
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
