/*
 * The Engine's state, one call's state (Run), and the level table.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

/* ------------------------------------------------------------------ engine */

/* A spelling of a level, as the C path looks it up without a Python object. */
enum { LEVEL_TABLE_SIZE = 1024, MAX_SPELLING = 23 };

typedef struct {
    char text[MAX_SPELLING + 1];
    unsigned char len; /* 0: an empty slot */
    signed char level;
} LevelSlot;

static uint32_t
fnv1a(const char *s, Py_ssize_t n)
{
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

typedef struct {
    PyObject_HEAD
    PyObject *levels;      /* dict: every known spelling -> canonical level */
    PyObject *level_names; /* tuple of the six canonical levels, in order */
    PyObject *level_fn;    /* canonical_level(value) -> str | None */
    PyObject *hash_fn;     /* digest(text) -> str, for mask_mode 2 */
    PyObject *mask_fn;     /* Masker.apply(text) -> str, for non-ASCII text */
    PyObject *dumps;       /* orjson.dumps */
    PyObject *loads;       /* orjson.loads */
    PyObject *reserved;    /* frozenset of the fixed output keys */
    int mask_mode;         /* 0 off, 1 mask, 2 hash */
    Py_ssize_t max_chars;
    /* __init__ succeeded: Engine.__new__ alone leaves every member NULL, and a failed
     * __init__ may leave the members below half set. */
    int ready;
    /* Calls running (a callback may call another method of the same engine, or give
     * the GIL to another thread that does): __init__ must not swap what they read. */
    Py_ssize_t busy;
    /* The six names as UTF-8 (owned by level_names), and `levels` as a C hash table. */
    const char *level_text[6];
    Py_ssize_t level_len[6];
    LevelSlot level_table[LEVEL_TABLE_SIZE];
} Engine;

enum { TS_ABSENT = 1, TS_INVALID = 2, LEVEL_ABSENT = 4, LEVEL_INVALID = 8 };
enum { NLEVELS = 6, INFO_LEVEL = 2 };

/* Interned keys. */
static PyObject *K_TS, *K_LEVEL, *K_MSG, *K_SERVICE, *K_HOST, *K_STREAM, *K_SEQ, *K_RAW,
    *K_FORMAT, *K_SYSLOG_SEVERITY, *K_SRC_TS, *K_SRC_LEVEL, *K_RUN_ID;
static PyObject *TS_ALIASES[3], *LEVEL_ALIASES[2], *MSG_ALIASES[3];
static PyObject *CONSUMED; /* frozenset of LogRecord's own keys */

/* One call's state: the output, scratch space for masking, the counts. */
typedef struct {
    Engine *e;
    Buf out;
    Buf scratch1;
    Buf scratch2;
    const char *head; /* "emitter":..,"scenario_id":..,"run_id":.., */
    Py_ssize_t head_n;
    Py_ssize_t run_at; /* where "run_id": starts in head; -1: not found */
    const char *tail; /* "batch_id":..,"ingest_ts":".." */
    Py_ssize_t tail_n;
    const char *fmt; /* the batch's format label, as a JSON string */
    Py_ssize_t fmt_n;
    const char *ingest_ts;
    Py_ssize_t ingest_ts_n;
    /* The batch's format for raw lines ("" or "auto": detect); NULL: not given. */
    const char *named;
    Py_ssize_t named_n;
    /* The batch's ingest time in epoch ms, the "now" of RFC 3164 times; has_now 0: not
     * given (or out of range), and such lines go to Python. */
    long long now_ms;
    int has_now;
    PyObject *ts_fn;
    PyObject *slow;
    Py_ssize_t accepted;
    Py_ssize_t levels[NLEVELS];
    Py_ssize_t missing[4];
    PyObject *rejections;
} Run;

/* The UTF-8 of a str that a callback returned, or NULL with TypeError for anything else
 * (the callbacks are arguments of Engine(), so their results are checked, not trusted). */
static const char *
str_result(PyObject *res, const char *callback, Py_ssize_t *n)
{
    if (!PyUnicode_Check(res)) {
        PyErr_Format(PyExc_TypeError, "%s must return str, not %.100s", callback,
                     Py_TYPE(res)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(res, n);
}

static void
count_missing(Run *r, int flags)
{
    if (flags & TS_ABSENT) {
        r->missing[0]++;
    }
    else if (flags & TS_INVALID) {
        r->missing[1]++;
    }
    if (flags & LEVEL_ABSENT) {
        r->missing[2]++;
    }
    else if (flags & LEVEL_INVALID) {
        r->missing[3]++;
    }
}

/* Index of a canonical level name, or -1. */
static int
level_index(Engine *e, PyObject *name)
{
    for (int i = 0; i < NLEVELS; i++) {
        if (PyTuple_GET_ITEM(e->level_names, i) == name) {
            return i;
        }
    }
    for (int i = 0; i < NLEVELS; i++) {
        int eq = PyUnicode_Compare(PyTuple_GET_ITEM(e->level_names, i), name);
        if (eq == 0) {
            return i;
        }
        if (eq == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return -1;
}

/* The level of a spelling from the table: 0-5, or -1 when it is not there. */
static int
level_lookup(const Engine *e, const char *s, Py_ssize_t n)
{
    if (n == 0 || n > MAX_SPELLING) {
        return -1;
    }
    uint32_t i = fnv1a(s, n) & (LEVEL_TABLE_SIZE - 1);
    for (;;) {
        const LevelSlot *slot = &e->level_table[i];
        if (slot->len == 0) {
            return -1;
        }
        if (slot->len == n && memcmp(slot->text, s, (size_t)n) == 0) {
            return slot->level;
        }
        i = (i + 1) & (LEVEL_TABLE_SIZE - 1);
    }
}

/* Fill the table from the `levels` dict; spellings that do not fit are left to it. */
static int
level_table_fill(Engine *e)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0, used = 0;
    memset(e->level_table, 0, sizeof e->level_table);
    while (PyDict_Next(e->levels, &pos, &key, &value)) {
        Py_ssize_t n;
        const char *text = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &n) : NULL;
        if (text == NULL) {
            PyErr_Clear();
            continue;
        }
        int level = level_index(e, value);
        if (level < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "levels maps a spelling to an unknown level");
            }
            return -1;
        }
        if (n == 0 || n > MAX_SPELLING || used >= LEVEL_TABLE_SIZE / 2 ||
            level_lookup(e, text, n) >= 0) {
            continue;
        }
        uint32_t i = fnv1a(text, n) & (LEVEL_TABLE_SIZE - 1);
        while (e->level_table[i].len) {
            i = (i + 1) & (LEVEL_TABLE_SIZE - 1);
        }
        memcpy(e->level_table[i].text, text, (size_t)n);
        e->level_table[i].len = (unsigned char)n;
        e->level_table[i].level = (signed char)level;
        used++;
    }
    return 0;
}
