/*
 * A JSON batch body turned into the serialized PushRequest the Auth Gateway sends on a
 * gRPC hop, without a Python object per record.
 *
 * Part of the one translation unit built from ../_native.c, which includes it after
 * json.c (whose strict reader it uses): every helper stays static, nothing is exported.
 *
 * The mapping is pb_codec.record_to_pb's, applied to each record as codecs._decode_json
 * and hop._converted build it: orjson's reading (the last of members with the same name
 * wins, in the first one's place), a "fields" object merged under the record's own
 * members (codecs.flatten), the batch's default format given to a record whose own is
 * absent or false; then the LogRecord's own keys become its fields as str(value) would
 * write them (a null leaves the field unset), "seq" is kept when it is a whole number from
 * 0 to 2**64-1 (any other seq is refused by its index, as Ingest refuses it; null leaves
 * it unset), and every other key goes into `fields`: a string as it is, any other value
 * as the compact JSON text orjson.dumps writes. Fields are written in field-number order
 * as upb writes them; map entries in the record's order (upb's own order is its hash
 * table's, so only the parsed messages can be compared).
 *
 * The work runs without the GIL when the body is a bytes object (nothing can change it
 * meanwhile): the Auth Gateway's threads go on receiving other requests. Only a float
 * takes the GIL back, for PyOS_double_to_string.
 *
 * What is not decided here exactly (a known key holding an object or array, a string
 * seq, a number as the format of a batch that names one, a nested object with a repeated name, more than MAX_TOPB_MEMBERS members, text
 * the strict reader refuses) makes the whole body "not handled": the Python path then
 * decides. tests/unit/ingest/test_native_topb*.py compare both.
 */

/* ------------------------------------------------------------------ JSON -> PushRequest */

enum { MAX_TOPB_MEMBERS = 256 };
enum { TP_DECLINE = 0, TP_OK = 1 };

typedef struct {
    Member *items;
    Py_ssize_t n, cap;
} Members;

typedef struct {
    Buf out;      /* the LogBatch's records, each with its tag and length */
    Buf rec;      /* one record's fields */
    Buf val;      /* one value's str() text, or one map entry */
    Buf json;     /* one map value's JSON text */
    Buf esc;      /* one string of it, unescaped */
    Buf arena;    /* one record's strings, unescaped */
    Buf names;    /* object names already written at each open level (offset, length) */
    Members top;  /* a record's own members, as read */
    Members inner;/* the members of its "fields" object */
    Members merged;
    Py_ssize_t *refused; /* indices of records whose seq cannot be carried */
    Py_ssize_t nrefused, refused_cap;
} ToPb;

/* Allocation failed, maybe without the GIL: the caller sets MemoryError once it has it. */
static int
tp_no_memory(void)
{
    if (PyGILState_Check()) {
        PyErr_NoMemory();
    }
    return -1;
}

static void
tp_free(ToPb *t)
{
    buf_free(&t->out);
    buf_free(&t->rec);
    buf_free(&t->val);
    buf_free(&t->json);
    buf_free(&t->esc);
    buf_free(&t->arena);
    buf_free(&t->names);
    PyMem_RawFree(t->top.items);
    PyMem_RawFree(t->inner.items);
    PyMem_RawFree(t->merged.items);
    PyMem_RawFree(t->refused);
}

static int
refused_push(ToPb *t, Py_ssize_t index)
{
    if (t->nrefused == t->refused_cap) {
        Py_ssize_t cap = t->refused_cap ? t->refused_cap * 2 : 16;
        Py_ssize_t *p = PyMem_RawRealloc(t->refused, (size_t)cap * sizeof(Py_ssize_t));
        if (p == NULL) {
            return tp_no_memory();
        }
        t->refused = p;
        t->refused_cap = cap;
    }
    t->refused[t->nrefused++] = index;
    return 0;
}

static int
members_push(Members *m, Member item)
{
    if (m->n == m->cap) {
        Py_ssize_t cap = m->cap ? m->cap * 2 : 32;
        Member *p = PyMem_RawRealloc(m->items, (size_t)cap * sizeof(Member));
        if (p == NULL) {
            return tp_no_memory();
        }
        m->items = p;
        m->cap = cap;
    }
    m->items[m->n++] = item;
    return 0;
}

/* A string read by j_string, escapes undone into the arena (which has room). */
static int
tp_unescaped(Span raw, int escaped, Buf *arena, Span *out)
{
    if (!escaped) {
        *out = raw;
        return 0;
    }
    char *dst = arena->p + arena->len;
    Py_ssize_t n = j_unescape(raw, dst);
    if (n < 0) {
        return -1;
    }
    arena->len += n;
    out->p = dst;
    out->n = n;
    return 0;
}

/* The members of the object at c->p, names and string values unescaped. 1, 0, -1. */
static int
tp_members(Cursor *c, Members *m, Buf *arena)
{
    m->n = 0;
    c->p++;
    if (j_byte(c, '}')) {
        return TP_OK;
    }
    do {
        Member item;
        Span raw;
        int escaped;
        j_ws(c);
        if (c->p >= c->end || *c->p != '"' || j_string(c, &raw, &escaped) < 0 ||
            tp_unescaped(raw, escaped, arena, &item.key) < 0 || !j_byte(c, ':') ||
            j_value(c, &item.value, 1) < 0) {
            return TP_DECLINE;
        }
        if (item.value.kind == V_STRING) {
            if (tp_unescaped(item.value.text, item.value.escaped, arena, &item.value.text) < 0) {
                return TP_DECLINE;
            }
            item.value.escaped = 0;
        }
        if (m->n >= MAX_TOPB_MEMBERS) {
            return TP_DECLINE;
        }
        if (members_push(m, item) < 0) {
            return -1;
        }
    } while (j_byte(c, ','));
    return j_byte(c, '}') ? TP_OK : TP_DECLINE;
}

/* span_eq for a literal, without a strlen per call. */
#define SPAN_IS(s, lit) \
    ((s).n == (Py_ssize_t)(sizeof(lit) - 1) && memcmp((s).p, (lit), sizeof(lit) - 1) == 0)

static int
span_same(Span a, Span b)
{
    return a.n == b.n && memcmp(a.p, b.p, (size_t)a.n) == 0;
}

/* dict semantics: a new name goes last, a known one takes the new value in its place. */
static int
merged_set(Members *m, Member item)
{
    for (Py_ssize_t i = 0; i < m->n; i++) {
        if (span_same(m->items[i].key, item.key)) {
            m->items[i].value = item.value;
            return 0;
        }
    }
    return members_push(m, item);
}

/* The record as codecs._batch_of leaves it: its members as orjson reads them, and a
 * "fields" object (the last member of that name) merged under them (flatten). */
static int
tp_merge(ToPb *t)
{
    Members *top = &t->top, *out = &t->merged;
    out->n = 0;
    Py_ssize_t fields = -1;
    for (Py_ssize_t i = 0; i < top->n; i++) {
        if (SPAN_IS(top->items[i].key, "fields")) {
            fields = i;
        }
    }
    int flatten = fields >= 0 && top->items[fields].value.kind == V_OTHER &&
                  top->items[fields].value.text.p[0] == '{';
    if (flatten) {
        const Span obj = top->items[fields].value.text;
        Cursor sub = {obj.p, obj.p + obj.n};
        int rc = tp_members(&sub, &t->inner, &t->arena);
        if (rc <= 0) {
            return rc;
        }
        for (Py_ssize_t i = 0; i < t->inner.n; i++) {
            if (merged_set(out, t->inner.items[i]) < 0) {
                return -1;
            }
        }
    }
    for (Py_ssize_t i = 0; i < top->n; i++) {
        if (flatten && SPAN_IS(top->items[i].key, "fields")) {
            continue;
        }
        if (merged_set(out, top->items[i]) < 0) {
            return -1;
        }
    }
    return out->n > MAX_TOPB_MEMBERS ? TP_DECLINE : TP_OK;
}

/* ---- numbers, as orjson reads them and as str() and orjson.dumps write them */

/* A JSON number's text as orjson's int (within int64/uint64), else as its float. */
typedef struct {
    int integer;
    int negative;
    uint64_t magnitude; /* integer: |value| */
    double d;           /* float */
} Number;

static int
tp_number(Span text, Number *num)
{
    const char *p = text.p, *end = text.p + text.n;
    memset(num, 0, sizeof *num);
    num->negative = p < end && *p == '-';
    int digits_only = text.n - num->negative > 0;
    for (const char *q = p + num->negative; q < end; q++) {
        digits_only &= is_digit((unsigned char)*q);
    }
    if (digits_only) {
        uint64_t v = 0;
        int fits = 1;
        for (const char *q = p + num->negative; q < end && fits; q++) {
            unsigned dgt = (unsigned)(*q - '0');
            fits = v <= (UINT64_MAX - dgt) / 10;
            v = v * 10 + dgt;
        }
        if (fits && (!num->negative || v <= (uint64_t)INT64_MAX + 1)) {
            num->integer = 1;
            num->magnitude = v;
            return 0;
        }
    }
    char tmp[400];
    if (text.n <= 0 || text.n >= (Py_ssize_t)sizeof tmp) {
        return -1;
    }
    memcpy(tmp, p, (size_t)text.n);
    tmp[text.n] = '\0';
    char *stop;
    num->d = strtod(tmp, &stop);
    if (stop != tmp + text.n || !isfinite(num->d)) {
        return -1;
    }
    return 0;
}

static int
put_int(Buf *b, const Number *num)
{
    if (num->negative && num->magnitude != 0 && PUT_LIT(b, "-") < 0) {
        return -1;
    }
    return put_u64(b, num->magnitude);
}

/* repr(float): Python's shortest round-trip text. */
/* PyOS_double_to_string needs the GIL, which the caller may have released. */
static char *
double_text(double d, int flags)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    char *s = PyOS_double_to_string(d, 'r', 0, flags, NULL);
    PyGILState_Release(gil);
    return s;
}

static void
double_text_free(char *s)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    PyMem_Free(s);
    PyGILState_Release(gil);
}

static int
put_repr(Buf *b, double d)
{
    char *s = double_text(d, Py_DTSF_ADD_DOT_0);
    if (s == NULL) {
        return -1;
    }
    int rc = buf_put(b, s, (Py_ssize_t)strlen(s));
    double_text_free(s);
    return rc;
}

/* orjson.dumps(float): the same shortest digits as repr, written as a decimal when the
 * first digit's exponent is -5 to 15 (with ".0" when whole), else as d.ddde[+-]N. */
static int
put_orjson_float(Buf *b, double d)
{
    if (d == 0) {
        return signbit(d) ? PUT_LIT(b, "-0.0") : PUT_LIT(b, "0.0");
    }
    char *s = double_text(d, 0);
    if (s == NULL) {
        return -1;
    }
    char digits[32];
    int nd = 0, point = -1, lead = 1, zeros_before = 0, exp10 = 0;
    const char *q = s;
    int negative = *q == '-';
    q += negative;
    for (; *q && *q != 'e'; q++) {
        if (*q == '.') {
            point = nd + zeros_before;
            continue;
        }
        if (lead && *q == '0') {
            zeros_before++;
            continue;
        }
        lead = 0;
        if (nd < (int)sizeof digits) {
            digits[nd++] = *q;
        }
    }
    if (*q == 'e') {
        exp10 = atoi(q + 1);
    }
    double_text_free(s);
    int int_len = point < 0 ? nd + zeros_before : point; /* digits before the point */
    int sexp = int_len - zeros_before - 1 + exp10;     /* exponent of the first digit */
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    char text[64], *o = text;
    if (negative) {
        *o++ = '-';
    }
    if (sexp >= -5 && sexp < 16) {
        if (sexp >= 0) {
            for (int i = 0; i <= sexp; i++) {
                *o++ = i < nd ? digits[i] : '0';
            }
            *o++ = '.';
            if (nd > sexp + 1) {
                memcpy(o, digits + sexp + 1, (size_t)(nd - sexp - 1));
                o += nd - sexp - 1;
            }
            else {
                *o++ = '0';
            }
        }
        else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -sexp - 1; i++) {
                *o++ = '0';
            }
            memcpy(o, digits, (size_t)nd);
            o += nd;
        }
    }
    else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        o += sprintf(o, "e%c%d", sexp > 0 ? '+' : '-', sexp > 0 ? sexp : -sexp);
    }
    return buf_put(b, text, o - text);
}

/* ---- values */

/* str(value) of what orjson read, for the LogRecord's own string fields. */
static int
put_str_value(Buf *b, const Value *v)
{
    Number num;
    switch (v->kind) {
    case V_STRING:
        return buf_put(b, v->text.p, v->text.n) < 0 ? -1 : TP_OK;
    case V_TRUE:
        return PUT_LIT(b, "True") < 0 ? -1 : TP_OK;
    case V_FALSE:
        return PUT_LIT(b, "False") < 0 ? -1 : TP_OK;
    case V_NULL:
        return PUT_LIT(b, "None") < 0 ? -1 : TP_OK;
    case V_INT:
        break;
    default:
        if (v->text.p[0] == '{' || v->text.p[0] == '[') {
            return TP_DECLINE; /* str() of a dict or list: Python's repr */
        }
    }
    if (tp_number(v->text, &num) < 0) {
        return TP_DECLINE;
    }
    int rc = num.integer ? put_int(b, &num) : put_repr(b, num.d);
    return rc < 0 ? -1 : TP_OK;
}

static int tp_json(ToPb *t, Buf *b, Cursor *c, int depth);

/* A JSON string at c->p, as orjson.dumps writes what orjson.loads read. */
static int
tp_json_string(ToPb *t, Buf *b, Cursor *c)
{
    Span raw, text;
    int escaped;
    if (j_string(c, &raw, &escaped) < 0) {
        return TP_DECLINE;
    }
    t->esc.len = 0;
    if (escaped && buf_reserve(&t->esc, raw.n) < 0) {
        return -1;
    }
    if (tp_unescaped(raw, escaped, &t->esc, &text) < 0) {
        return TP_DECLINE;
    }
    return put_json_str(b, text.p, text.n) < 0 ? -1 : TP_OK;
}

/* Whether the name just written at [off, len) was written before at this level. */
static int
name_repeated(ToPb *t, const Buf *b, Py_ssize_t base, Py_ssize_t off, Py_ssize_t len)
{
    const Py_ssize_t *names = (const Py_ssize_t *)t->names.p;
    Py_ssize_t count = t->names.len / (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    for (Py_ssize_t i = base; i < count; i++) {
        if (names[2 * i + 1] == len && memcmp(b->p + names[2 * i], b->p + off, (size_t)len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An object at c->p, compact. A name given twice: orjson keeps one, not decided here. */
static int
tp_json_object(ToPb *t, Buf *b, Cursor *c, int depth)
{
    Py_ssize_t base = t->names.len / (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    Py_ssize_t count = 0;
    int rc = TP_OK;
    c->p++;
    if (PUT_LIT(b, "{") < 0) {
        return -1;
    }
    if (!j_byte(c, '}')) {
        do {
            j_ws(c);
            if (c->p >= c->end || *c->p != '"' || ++count > MAX_TOPB_MEMBERS) {
                rc = TP_DECLINE;
                break;
            }
            if (count > 1 && PUT_LIT(b, ",") < 0) {
                rc = -1;
                break;
            }
            Py_ssize_t off = b->len;
            rc = tp_json_string(t, b, c);
            if (rc <= 0) {
                break;
            }
            Py_ssize_t pair[2] = {off, b->len - off};
            if (name_repeated(t, b, base, off, pair[1])) {
                rc = TP_DECLINE;
                break;
            }
            if (buf_put(&t->names, (const char *)pair, sizeof pair) < 0 || PUT_LIT(b, ":") < 0) {
                rc = -1;
                break;
            }
            if (!j_byte(c, ':')) {
                rc = TP_DECLINE;
                break;
            }
            rc = tp_json(t, b, c, depth + 1);
        } while (rc > 0 && j_byte(c, ','));
        if (rc > 0 && !j_byte(c, '}')) {
            rc = TP_DECLINE;
        }
    }
    t->names.len = base * (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    return rc <= 0 ? rc : (PUT_LIT(b, "}") < 0 ? -1 : TP_OK);
}

static int
tp_json_array(ToPb *t, Buf *b, Cursor *c, int depth)
{
    c->p++;
    if (PUT_LIT(b, "[") < 0) {
        return -1;
    }
    if (!j_byte(c, ']')) {
        int first = 1, rc;
        do {
            if (!first && PUT_LIT(b, ",") < 0) {
                return -1;
            }
            first = 0;
            rc = tp_json(t, b, c, depth + 1);
            if (rc <= 0) {
                return rc;
            }
        } while (j_byte(c, ','));
        if (!j_byte(c, ']')) {
            return TP_DECLINE;
        }
    }
    return PUT_LIT(b, "]") < 0 ? -1 : TP_OK;
}

/* Any value at c->p, as orjson.dumps writes what orjson.loads read. 1, 0, -1. */
static int
tp_json(ToPb *t, Buf *b, Cursor *c, int depth)
{
    j_ws(c);
    if (c->p >= c->end || depth > MAX_DEPTH) {
        return TP_DECLINE;
    }
    switch (*c->p) {
    case '"':
        return tp_json_string(t, b, c);
    case '{':
        return tp_json_object(t, b, c, depth);
    case '[':
        return tp_json_array(t, b, c, depth);
    default:
        break;
    }
    Value v;
    if (j_value(c, &v, depth) < 0) {
        return TP_DECLINE;
    }
    if (v.kind == V_TRUE || v.kind == V_FALSE || v.kind == V_NULL) {
        return buf_put(b, v.text.p, v.text.n) < 0 ? -1 : TP_OK;
    }
    Number num;
    if (tp_number(v.text, &num) < 0) {
        return TP_DECLINE;
    }
    int rc = num.integer ? put_int(b, &num) : put_orjson_float(b, num.d);
    return rc < 0 ? -1 : TP_OK;
}

/* A `fields` entry's value: a string as it is, anything else as orjson.dumps writes it. */
static int
put_field_value(ToPb *t, Buf *b, const Value *v)
{
    if (v->kind == V_STRING) {
        return buf_put(b, v->text.p, v->text.n) < 0 ? -1 : TP_OK;
    }
    Cursor c = {v->text.p, v->text.p + v->text.n};
    int rc = tp_json(t, b, &c, 1);
    return rc > 0 && c.p != c.end ? TP_DECLINE : rc;
}

/* A `seq` as Ingest reads it: 1 kept (*seq set), 2 refused (anything but a whole number
 * from 0 to 2**64-1: a fraction, a boolean, an object), 3 null (left unset), 0 not decided
 * here (text: the Python path reads its digits). */
enum { SEQ_REFUSED = 2, SEQ_NULL = 3 };

static int
seq_value(const Value *v, uint64_t *seq)
{
    Number num;
    switch (v->kind) {
    case V_NULL:
        return SEQ_NULL;
    case V_STRING:
        return TP_DECLINE;
    case V_INT:
        break;
    default:
        return SEQ_REFUSED;
    }
    if (tp_number(v->text, &num) < 0) {
        return TP_DECLINE;
    }
    if (!num.integer || (num.negative && num.magnitude)) {
        return SEQ_REFUSED;
    }
    *seq = num.magnitude;
    return TP_OK;
}

/* ---- protobuf writing */

static int
put_varint(Buf *b, uint64_t v)
{
    char tmp[10];
    int n = 0;
    while (v >= 0x80) {
        tmp[n++] = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    tmp[n++] = (char)v;
    return buf_put(b, tmp, n);
}

static int
put_len_field(Buf *b, unsigned field, const char *p, Py_ssize_t n)
{
    if (put_varint(b, field << 3 | WT_LEN) < 0 || put_varint(b, (uint64_t)n) < 0) {
        return -1;
    }
    return buf_put(b, p, n);
}

/* LogRecord's own keys, by field number; 0: a `fields` entry. Lengths first: this runs
 * for every member of every record. */
static unsigned
record_field(Span key)
{
    static const struct {
        const char *name;
        Py_ssize_t len;
        unsigned field;
    } own[] = {{"ts", 2, 1},     {"level", 5, 2},  {"msg", 3, 3},    {"service", 7, 4},
               {"host", 4, 5},   {"stream", 6, 7}, {"seq", 3, 8},    {"raw", 3, 9},
               {"format", 6, 10}};
    if (key.n < 2 || key.n > 7) {
        return 0;
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        if (key.n == own[i].len && memcmp(key.p, own[i].name, (size_t)key.n) == 0) {
            return own[i].field;
        }
    }
    return 0;
}

/* One string field from a value (str()): implicit presence drops an empty one, except
 * ts and level, which are `optional`; a null leaves the field unset (Ingest reads a null
 * as absent). */
static int
put_text_field(ToPb *t, unsigned field, const Value *v)
{
    if (v->kind == V_NULL) {
        return TP_OK;
    }
    t->val.len = 0;
    int rc = put_str_value(&t->val, v);
    if (rc <= 0) {
        return rc;
    }
    if (t->val.len == 0 && field > 2) {
        return TP_OK;
    }
    return put_len_field(&t->rec, field, t->val.p, t->val.len) < 0 ? -1 : TP_OK;
}

static int
put_map_entry(ToPb *t, const Member *m)
{
    t->val.len = 0;
    /* The entry: key (1) and value (2), both always written, as upb writes them. */
    if (put_len_field(&t->val, 1, m->key.p, m->key.n) < 0) {
        return -1;
    }
    t->json.len = 0;
    int rc = put_field_value(t, &t->json, &m->value);
    if (rc <= 0) {
        return rc;
    }
    const char *value = t->json.p ? t->json.p : "";
    return put_len_field(&t->val, 2, value, t->json.len) < 0 ||
                   put_len_field(&t->rec, 6, t->val.p, t->val.len) < 0
               ? -1
               : TP_OK;
}

/* The record's fields in field-number order into t->rec. 1, 0, -1; *refused when its
 * seq cannot be carried. */
static int
tp_write_record(ToPb *t, Span default_format, int *refused)
{
    const Members *m = &t->merged;
    Py_ssize_t slot[11];
    for (int i = 0; i < 11; i++) {
        slot[i] = -1;
    }
    int any_field = 0; /* a member that goes into `fields` */
    for (Py_ssize_t i = 0; i < m->n; i++) {
        unsigned f = record_field(m->items[i].key);
        if (f) {
            slot[f] = i;
        }
        any_field |= !f;
    }
    uint64_t seq = 0;
    int seq_rc = slot[8] >= 0 ? seq_value(&m->items[slot[8]].value, &seq) : TP_OK;
    *refused = seq_rc == SEQ_REFUSED;
    if (seq_rc == TP_DECLINE) {
        return TP_DECLINE;
    }
    /* LogBatch has no format: the batch's stands in for a record's own when that one is
     * false (Ingest: `rec.get("format") or` the batch's): absent, null, false or empty;
     * whether a number or an object is false is left to the Python path. */
    Value fmt = {.kind = V_STRING, .text = default_format};
    const Value *own = slot[10] >= 0 ? &m->items[slot[10]].value : NULL;
    int use_default = default_format.n > 0;
    if (own && use_default && (own->kind == V_INT || own->kind == V_OTHER)) {
        return TP_DECLINE;
    }
    int own_set = own && own->kind != V_NULL && own->kind != V_FALSE &&
                  !(own->kind == V_STRING && own->text.n == 0);
    const Value *fmt_value = own_set ? own : use_default ? &fmt : own;
    t->rec.len = 0;
    int rc = TP_OK;
    for (unsigned f = 1; f <= 10 && rc > 0; f++) {
        if (f == 6) {
            for (Py_ssize_t i = 0; any_field && i < m->n && rc > 0; i++) {
                if (!record_field(m->items[i].key)) {
                    rc = put_map_entry(t, &m->items[i]);
                }
            }
        }
        else if (f == 8) {
            if (slot[8] >= 0 && seq_rc == TP_OK &&
                (put_varint(&t->rec, 8 << 3 | WT_VARINT) < 0 || put_varint(&t->rec, seq) < 0)) {
                rc = -1;
            }
        }
        else if (f == 10) {
            rc = fmt_value ? put_text_field(t, f, fmt_value) : TP_OK;
        }
        else if (slot[f] >= 0) {
            rc = put_text_field(t, f, &m->items[slot[f]].value);
        }
    }
    return rc;
}

/* One record object at c->p: appended to t->out, or refused. 1, 0, -1. */
static int
tp_record(ToPb *t, Cursor *c, Span default_format, int *refused)
{
    t->arena.len = 0;
    /* Room for every string of the record unescaped (never longer than escaped), so the
     * members' spans stay put. */
    if (buf_reserve(&t->arena, c->end - c->p) < 0) {
        return -1;
    }
    int rc = tp_members(c, &t->top, &t->arena);
    if (rc > 0) {
        rc = tp_merge(t);
    }
    if (rc > 0) {
        rc = tp_write_record(t, default_format, refused);
    }
    if (rc > 0 && !*refused) {
        rc = put_len_field(&t->out, 5, t->rec.p ? t->rec.p : "", t->rec.len) < 0 ? -1 : TP_OK;
    }
    return rc;
}

/* The records array [start, end) of the body; refused indices into t->refused. Touches
 * no Python object: it may run without the GIL. */
static int
tp_records(ToPb *t, Cursor *c, Span default_format)
{
    c->p++; /* '[' */
    if (j_byte(c, ']')) {
        j_ws(c);
        return c->p == c->end ? TP_OK : TP_DECLINE;
    }
    Py_ssize_t index = 0;
    do {
        j_ws(c);
        if (c->p >= c->end || *c->p != '{') {
            return TP_DECLINE; /* refused with a message by Python */
        }
        int no = 0;
        int rc = tp_record(t, c, default_format, &no);
        if (rc <= 0) {
            return rc;
        }
        if (no && refused_push(t, index) < 0) {
            return -1;
        }
        index++;
    } while (j_byte(c, ','));
    if (!j_byte(c, ']')) {
        return TP_DECLINE;
    }
    j_ws(c);
    return c->p == c->end ? TP_OK : TP_DECLINE;
}

/* A str argument as UTF-8; NULL (no error set) when it cannot be encoded. */
static const char *
tp_utf8(PyObject *s, Py_ssize_t *n)
{
    const char *p = PyUnicode_AsUTF8AndSize(s, n);
    if (p == NULL) {
        PyErr_Clear();
    }
    return p;
}

/* The PushRequest: batch (1) { batch_id, emitter, scenario_id, run_id, records }. */
static PyObject *
tp_request(ToPb *t, PyObject *names)
{
    Buf head = {0};
    PyObject *out = NULL;
    int ok = 1;
    for (unsigned f = 1; f <= 4 && ok; f++) {
        Py_ssize_t n;
        const char *p = tp_utf8(PyTuple_GET_ITEM(names, f - 1), &n);
        ok = p != NULL;
        if (ok && n && put_len_field(&head, f, p, n) < 0) {
            buf_free(&head);
            return NULL;
        }
    }
    if (!ok) {
        buf_free(&head);
        Py_RETURN_NONE;
    }
    Py_ssize_t batch = head.len + t->out.len;
    Buf prefix = {0};
    if (put_varint(&prefix, 1 << 3 | WT_LEN) == 0 && put_varint(&prefix, (uint64_t)batch) == 0) {
        out = PyBytes_FromStringAndSize(NULL, prefix.len + batch);
    }
    if (out != NULL) {
        char *o = PyBytes_AS_STRING(out);
        memcpy(o, prefix.p, (size_t)prefix.len);
        if (head.len) {
            memcpy(o + prefix.len, head.p, (size_t)head.len);
        }
        if (t->out.len) {
            memcpy(o + prefix.len + head.len, t->out.p, (size_t)t->out.len);
        }
    }
    buf_free(&prefix);
    buf_free(&head);
    return out;
}

/* push_request_json(body, start, end, names, default_format) -> (request, refused) | None
 *
 * `start`/`end` frame the records array as scan_json gives them; `names` are the
 * batch's (batch_id, emitter, scenario_id, run_id) as the request carries them. */
static PyObject *
tp_result(ToPb *t, PyObject *names)
{
    PyObject *request = tp_request(t, names);
    if (request == NULL || request == Py_None) {
        return request;
    }
    PyObject *indices = PyTuple_New(t->nrefused), *result = NULL;
    for (Py_ssize_t i = 0; indices != NULL && i < t->nrefused; i++) {
        PyObject *index = PyLong_FromSsize_t(t->refused[i]);
        if (index == NULL) {
            Py_CLEAR(indices);
            break;
        }
        PyTuple_SET_ITEM(indices, i, index);
    }
    if (indices != NULL) {
        result = PyTuple_Pack(2, request, indices);
        Py_DECREF(indices);
    }
    Py_DECREF(request);
    return result;
}

static PyObject *
push_request_json(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t start, end;
    PyObject *body, *names, *fmt_obj;
    if (!PyArg_ParseTuple(args, "OnnO!U", &body, &start, &end, &PyTuple_Type, &names,
                          &fmt_obj)) {
        return NULL;
    }
    if (PyUnicode_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "body must be a bytes-like object, not str");
        return NULL;
    }
    if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || end > view.len || end - start < 2 || ((char *)view.buf)[start] != '[') {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start and end must frame the records array");
        return NULL;
    }
    Py_ssize_t fmt_n = 0;
    const char *fmt = tp_utf8(fmt_obj, &fmt_n);
    int named = PyTuple_GET_SIZE(names) == 4;
    for (Py_ssize_t i = 0; named && i < 4; i++) {
        named = PyUnicode_Check(PyTuple_GET_ITEM(names, i));
    }
    if (!named) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "names must be four str");
        return NULL;
    }
    ToPb t;
    memset(&t, 0, sizeof t);
    PyObject *result = NULL;
    Cursor c = {(char *)view.buf + start, (char *)view.buf + end};
    int rc = TP_DECLINE;
    if (fmt != NULL) {
        /* A bytes body cannot change while the GIL is released; a bytearray could. */
        PyThreadState *save = PyBytes_CheckExact(body) ? PyEval_SaveThread() : NULL;
        rc = tp_records(&t, &c, (Span){fmt, fmt_n});
        if (save != NULL) {
            PyEval_RestoreThread(save);
        }
    }
    if (rc > 0) {
        result = tp_result(&t, names);
    }
    else if (rc == TP_DECLINE) {
        result = Py_NewRef(Py_None);
    }
    else if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    tp_free(&t);
    PyBuffer_Release(&view);
    return result;
}
