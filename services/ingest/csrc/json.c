/*
 * Reading JSON bodies as strictly as orjson.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

/* ------------------------------------------------------------------ JSON text */

/* A strict reader (RFC 8259, as orjson reads it): anything orjson would refuse or read
 * differently (a lone surrogate escape, a number out of double range, nesting past
 * MAX_DEPTH) makes the body "not readable here" and the Python path decides.
 *
 * Every pass checks the text again, also the second one over a body that scan_json
 * already read: Engine.normalise_json is callable with any bytes and span, and a reader
 * that trusted an earlier pass would read past the end of a truncated escape. Checking
 * costs nothing measurable beside writing the lines. */

enum { MAX_DEPTH = 512 };

typedef struct {
    const char *p;
    const char *end;
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
j_string(Cursor *c, Span *raw, int *escaped)
{
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

/* The text of a string read by j_string, escapes undone, into `out` (room for raw.n
 * bytes: no escape is shorter than what it stands for). Returns the length, or -1 for
 * an escape j_string would have refused: this function is safe on its own. */
static Py_ssize_t
j_unescape(Span raw, char *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *p = raw.p, *end = raw.p + raw.n;
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        if (end - p < 2 || p[1] == '\0') {
            return -1; /* strchr() would find the terminating NUL */
        }
        if (p[1] != 'u') {
            const char *hit = strchr(from, p[1]);
            if (hit == NULL) {
                return -1;
            }
            *o++ = to[hit - from];
            p += 2;
            continue;
        }
        unsigned cp;
        int len;
        if (j_unicode_escape(p, end, &cp, &len) < 0) {
            return -1;
        }
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
    if (!integer || v->text.n > 18) {
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
    Cursor c = {p, p + n};
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
            if ((m.value.text.n = j_unescape(m.value.text, dst)) < 0) {
                return -1;
            }
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
    /* orjson keeps the last of members with the same name (in the first one's place),
     * and flatten() then sees only that one: a second "fields" member of any type
     * decides between expanding and storing it, so Python decides. */
    int fields = -1, named_fields = 0;
    for (int i = 0; i < n && i < MAX_MEMBERS; i++) {
        const Value *v = &top[i].value;
        if (span_eq(top[i].key, "fields")) {
            named_fields++;
            fields = v->kind == V_OTHER && v->text.p[0] == '{' ? i : fields;
        }
    }
    f->off_path |= escaped || n > MAX_MEMBERS || named_fields > 1;
    if (fields >= 0 && !f->off_path) {
        const Span obj = top[fields].value.text;
        Cursor sub = {obj.p, obj.p + obj.n};
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
