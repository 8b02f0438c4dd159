/*
 * Raw lines the C path reads itself: a record whose `raw` line is RFC 5424, named so (the
 * record's `format`, else the batch's) or detected (no format, or "auto": a line that
 * starts "<PRI>1 " is claimed by syslog5424 first, as winevent_xml needs "<Event ").
 *
 * normalize.py's _from_raw, step by step: the line (trailing CR and LF removed) is read
 * by the syslog5424 reader (csrc/syslog.c) into the format's record, the record's other
 * fields fill what the line leaves open (_merge: an alias counts as set when the line
 * sets any name of its group; raw and format are not copied), `format` is set, and the
 * merged dict takes the dict path (records.c). The level of a "<PRI>" is put in its
 * canonical form here, as canonical_level() gives it (syslog severity PRI mod 8), so the
 * dict path finds it in its table instead of calling level_fn for every line.
 *
 * A line the reader does not take (the format refuses it, or it is not RFC 5424), a raw
 * line over the size guard, a format that is not text, a record the dict path does not
 * take: 0, and the whole record goes to the Python path, which decides and words any
 * error, so a line refused under a given format keeps the format's own message.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

/* levels.py's _SYSLOG: the level of each syslog severity. */
static const char *const SYSLOG_LEVELS[8] = {"FATAL", "FATAL", "FATAL", "ERROR",
                                             "WARN",  "INFO",  "INFO",  "DEBUG"};

/* "<PRI>1 " at the start, PRI 1 to 3 digits up to 191: syslog5424's looks_like. */
static int
raw_looks_5424(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 1;
    int pri = 0;
    if (n < 1 || s[0] != '<') {
        return 0;
    }
    while (i < n && i <= 3 && is_digit((unsigned char)s[i])) {
        pri = pri * 10 + (s[i] - '0');
        i++;
    }
    return i > 1 && pri <= 191 && n - i >= 3 && s[i] == '>' && s[i + 1] == '1' && s[i + 2] == ' ';
}

/* Whether _parse_line reads the line `s` under `name` with syslog5424: named so, or a
 * detected line that looks like RFC 5424. */
static int
raw_is_5424(const char *name, Py_ssize_t name_n, const char *s, Py_ssize_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    if (name_n == 10 && memcmp(name, "syslog5424", 10) == 0) {
        return 1;
    }
    if (name_n == 0 || (name_n == 4 && memcmp(name, "auto", 4) == 0)) {
        return raw_looks_5424(s, n);
    }
    return 0;
}

static int
same_key(PyObject *key, PyObject *name)
{
    return key == name || PyUnicode_Compare(key, name) == 0;
}

/* 1-3 for the ts, level and msg alias groups, 0 for any other name. */
static int
alias_group(PyObject *key)
{
    if (same_key(key, K_TS) || same_key(key, TS_ALIASES[0]) || same_key(key, TS_ALIASES[1]) ||
        same_key(key, TS_ALIASES[2])) {
        return 1;
    }
    if (same_key(key, K_LEVEL) || same_key(key, LEVEL_ALIASES[0]) ||
        same_key(key, LEVEL_ALIASES[1])) {
        return 2;
    }
    if (same_key(key, K_MSG) || same_key(key, MSG_ALIASES[0]) || same_key(key, MSG_ALIASES[1]) ||
        same_key(key, MSG_ALIASES[2])) {
        return 3;
    }
    return 0;
}

/* Which alias groups the line's record sets: bit 1 ts, 2 level, 3 msg. */
static int
line_groups(PyObject *parsed)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int groups = 0;
    while (PyDict_Next(parsed, &pos, &key, &value)) {
        groups |= 1 << alias_group(key);
    }
    return groups;
}

/* parsed[key] = value unless the line sets key or a name of its group (_merge);
 * raw and format are never copied. 1 done, -1 error. */
static int
raw_fill(PyObject *parsed, int groups, PyObject *key, PyObject *value)
{
    int in = PyDict_Contains(parsed, key);
    if (in != 0) {
        return in < 0 ? -1 : 1;
    }
    if (same_key(key, K_RAW) || same_key(key, K_FORMAT) || (groups & (1 << alias_group(key)) & ~1)) {
        return 1;
    }
    return PyDict_SetItem(parsed, key, value) < 0 ? -1 : 1;
}

/* The merged record on the dict path: `format` set, the level canonical. */
static int
raw_emit(Run *r, PyObject *merged, int pri)
{
    static PyObject *label;
    if (label == NULL && (label = PyUnicode_InternFromString("syslog5424")) == NULL) {
        return -1;
    }
    const char *level = SYSLOG_LEVELS[pri % 8];
    int index = -1;
    for (int i = 0; i < NLEVELS; i++) {
        if (strcmp(r->e->level_text[i], level) == 0) {
            index = i;
        }
    }
    if (index < 0) {
        return 0;
    }
    if (PyDict_SetItem(merged, K_FORMAT, label) < 0 ||
        PyDict_SetItem(merged, K_LEVEL, PyTuple_GET_ITEM(r->e->level_names, index)) < 0) {
        return -1;
    }
    return dict_record(r, merged);
}

/* The name _from_raw reads the line with: the record's format when it is text and not
 * empty, else the batch's. 1 found, 0 not decided here. */
static int
raw_name(Run *r, PyObject *format, const char **name, Py_ssize_t *name_n)
{
    if (format != NULL && format != Py_None &&
        !(PyUnicode_CheckExact(format) && PyUnicode_GET_LENGTH(format) == 0)) {
        if (!PyUnicode_CheckExact(format)) {
            return 0;
        }
        *name = utf8_of(format, name_n);
        return *name != NULL;
    }
    *name = r->named;
    *name_n = r->named_n;
    return r->named != NULL;
}

/* The line's record, or NULL: not taken (no error set) or an error (set). */
static PyObject *
raw_parsed(Run *r, const char *s, Py_ssize_t n, const char *name, Py_ssize_t name_n, int *pri)
{
    if (!raw_is_5424(name, name_n, s, n)) {
        return NULL;
    }
    PyObject *parsed = sl_parse(s, n, pri);
    if (parsed == Py_None) {
        Py_CLEAR(parsed);
    }
    return parsed;
}

static int
dict_raw_record(Run *r, PyObject *rec)
{
    PyObject *raw = PyDict_GetItemWithError(rec, K_RAW);
    PyObject *format = raw == NULL ? NULL : PyDict_GetItemWithError(rec, K_FORMAT);
    if (raw == NULL || PyErr_Occurred()) {
        return PyErr_Occurred() ? -1 : 0;
    }
    const char *name, *s;
    Py_ssize_t name_n, n;
    if (!PyUnicode_CheckExact(raw) || PyUnicode_GET_LENGTH(raw) == 0 ||
        PyUnicode_GET_LENGTH(raw) > r->e->max_chars || !raw_name(r, format, &name, &name_n) ||
        (s = utf8_of(raw, &n)) == NULL) {
        return 0;
    }
    Py_INCREF(raw); /* its text is read while the record may change */
    int pri = 0, rc;
    PyObject *parsed = raw_parsed(r, s, n, name, name_n, &pri);
    if (parsed == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
    }
    else {
        rc = 1;
        if (PyDict_GET_SIZE(rec) > 1) {
            int groups = line_groups(parsed);
            PyObject *key, *value;
            Py_ssize_t pos = 0;
            while (rc == 1 && PyDict_Next(rec, &pos, &key, &value)) {
                rc = PyUnicode_CheckExact(key) ? raw_fill(parsed, groups, key, value) : 0;
            }
        }
        rc = rc == 1 ? raw_emit(r, parsed, pri) : rc;
        Py_DECREF(parsed);
    }
    Py_DECREF(raw);
    return rc;
}

/* Text that does not decode is the Python path's to refuse: 0 then, else -1. */
static int
not_decoded(void)
{
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

/* A flat record's member into the merged dict, as raw_fill: 1 done, 0 not ours, -1. */
static int
raw_fill_value(Run *r, PyObject *parsed, int groups, PyObject *key, const Value *v)
{
    if (key == NULL) {
        return not_decoded();
    }
    int rc = PyDict_Contains(parsed, key);
    if (rc == 0 && !(groups & (1 << alias_group(key)) & ~1)) {
        PyObject *obj = value_object(r, v);
        if (obj == NULL) {
            return not_decoded();
        }
        rc = PyDict_SetItem(parsed, key, obj);
        Py_DECREF(obj);
    }
    return rc < 0 ? -1 : 1;
}

static int
flat_raw_record(Run *r, const Flat *f)
{
    static PyObject *const *const slot_keys[7] = {&K_TS,   &K_LEVEL,  &K_MSG, &K_SERVICE,
                                                  &K_HOST, &K_STREAM, &K_SEQ};
    const Value *raw = &f->slot[SLOT_RAW], *fmt = &f->slot[SLOT_FORMAT];
    const char *name = r->named;
    Py_ssize_t name_n = r->named_n;
    /* Bytes at most max_chars: characters too (normalize.py checks longer lines). */
    if (f->off_path || raw->kind != V_STRING || raw->text.n == 0 || raw->text.n > r->e->max_chars) {
        return 0;
    }
    if (fmt->kind == V_STRING && fmt->text.n > 0) {
        name = fmt->text.p;
        name_n = fmt->text.n;
    }
    else if ((fmt->kind != V_ABSENT && fmt->kind != V_NULL && fmt->kind != V_STRING) ||
             name == NULL) {
        return 0;
    }
    int pri = 0;
    PyObject *parsed = raw_parsed(r, raw->text.p, raw->text.n, name, name_n, &pri);
    if (parsed == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int groups = line_groups(parsed), rc = 1;
    for (int i = 0; rc == 1 && i < 7; i++) {
        if (f->slot[i].kind != V_ABSENT) {
            rc = raw_fill_value(r, parsed, groups, *slot_keys[i], &f->slot[i]);
        }
    }
    if (rc == 1 && f->has_run_id) {
        rc = raw_fill_value(r, parsed, groups, K_RUN_ID, &f->run_id);
    }
    for (Py_ssize_t i = 0; rc == 1 && i < f->n; i++) {
        PyObject *key = PyUnicode_DecodeUTF8(f->extra[i].key.p, f->extra[i].key.n, NULL);
        rc = raw_fill_value(r, parsed, groups, key, &f->extra[i].value);
        Py_XDECREF(key);
    }
    rc = rc == 1 ? raw_emit(r, parsed, pri) : rc;
    Py_DECREF(parsed);
    return rc;
}
