/*
 * Raw lines the C path reads itself: a record whose `raw` line is in a layout read here,
 * named so (the record's `format`, else the batch's) or detected (no format, or "auto"):
 * RFC 5424 (csrc/syslog.c), RFC 3164 and the access-log layouts apache_common,
 * apache_combined and nginx_access (csrc/layouts.c).
 *
 * normalize.py's _from_raw, step by step: the line (trailing CR and LF removed) is read
 * by the format's reader into the format's record, the record's other fields fill what
 * the line leaves open (_merge: an alias counts as set when the line sets any name of
 * its group; raw and format are not copied), `format` is set, and the merged dict takes
 * the dict path (records.c). The level is put in its canonical form here, as
 * canonical_level() gives it (syslog severity PRI mod 8; an access line's level is
 * already one), so the dict path finds it in its table instead of calling level_fn for
 * every line. RFC 3164 and access times come out of their readers in the stored form
 * (csrc/layouts.c, as normalise_ts gives it for the batch's ingest time), so the dict
 * path takes them as canonical; RFC 5424 times go through the dict path's own check.
 *
 * A line the reader does not take (the format refuses it, its time is no time, it is not
 * in the layout), a raw line over the size guard, a format that is not text, a record
 * the dict path does not take: 0, and the whole record goes to the Python path, which
 * decides and words any error, so a line refused under a given format keeps the
 * format's own message.
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

static int
raw_is(const char *name, Py_ssize_t name_n, const char *text)
{
    return name_n == (Py_ssize_t)strlen(text) && memcmp(name, text, (size_t)name_n) == 0;
}

/* The first byte of a line that detect_format may give an access layout, as far as this
 * code proves it: a digit (no "dddd/", nginx_error's start), a lower-case letter, ":"
 * or "-". Every format detection tries before the access layouts needs another start:
 * "<" (winevent_xml, syslog5424, syslog3164, cef), "{" or white space before it
 * (winevent_json, json), "[" (apache_error), an upper-case month or "CEF:" (cef). */
static int
raw_access_start(const char *s, Py_ssize_t n)
{
    unsigned char c = (unsigned char)s[0];
    if (is_digit(c)) {
        return !(n > 4 && sl_digits(s, 4) && s[4] == '/');
    }
    return (c >= 'a' && c <= 'z') || c == ':' || c == '-';
}

/* The layout detect_format names for a line (formats/__init__.py's _DETECT_ORDER), when
 * it is one read here; RAW_NONE when it is another or this code cannot tell. An access
 * line is scanned into *L (*scanned set). apache_combined claims a combined line unless
 * its body is "0"; no common line is then a combined one; nginx_access claims a
 * combined line with a "0" body when nginx would have written it. */
static int
raw_auto(const char *s, Py_ssize_t n, AccessLine *L, int *scanned)
{
    if (n == 0) {
        return RAW_NONE;
    }
    if (s[0] == '<') {
        return raw_looks_5424(s, n) ? RAW_5424 : bsd_looks(s, n) ? RAW_3164 : RAW_NONE;
    }
    if (!raw_access_start(s, n)) {
        return RAW_NONE;
    }
    *scanned = 1;
    if (ac_scan(s, n, 1, L)) {
        return !ac_is(s, L->bytes, "0")     ? RAW_COMBINED
               : ac_nginx_claims(s, n, L) ? RAW_NGINX
                                          : RAW_NONE;
    }
    return ac_scan(s, n, 0, L) && !ac_is(s, L->bytes, "0") ? RAW_COMMON : RAW_NONE;
}

/* The layout _parse_line reads the line s[0:n] with under `name`, or RAW_NONE. */
static int
raw_layout(const char *name, Py_ssize_t name_n, const char *s, Py_ssize_t n, AccessLine *L,
           int *scanned)
{
    if (name_n == 0 || raw_is(name, name_n, "auto")) {
        return raw_auto(s, n, L, scanned);
    }
    for (int i = 1; i < NRAW; i++) {
        if (raw_is(name, name_n, RAW_NAMES[i])) {
            return i;
        }
    }
    return RAW_NONE;
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
raw_emit(Run *r, PyObject *merged, int layout, const char *level)
{
    int index = -1;
    for (int i = 0; i < NLEVELS; i++) {
        if (strcmp(r->e->level_text[i], level) == 0) {
            index = i;
        }
    }
    if (index < 0) {
        return 0;
    }
    if (PyDict_SetItem(merged, K_FORMAT, RAW_LABELS[layout]) < 0 ||
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

/* The line's record, or NULL: not taken (no error set) or an error (set). *layout gets
 * the format it was read with, *level its canonical level. */
static PyObject *
raw_parsed(Run *r, const char *s, Py_ssize_t n, const char *name, Py_ssize_t name_n,
           int *layout, const char **level)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    AccessLine L;
    int scanned = 0, pri = 0;
    PyObject *parsed = NULL;
    *layout = raw_layout(name, name_n, s, n, &L, &scanned);
    switch (*layout) {
    case RAW_5424:
        parsed = sl_parse(s, n, &pri);
        *level = SYSLOG_LEVELS[pri % 8];
        break;
    case RAW_3164:
        if (r->has_now && utf8_valid(s, n)) {
            parsed = bsd_parse(s, n, r->now_ms, &pri);
            *level = SYSLOG_LEVELS[pri % 8];
        }
        break;
    case RAW_COMMON:
    case RAW_COMBINED:
    case RAW_NGINX:
        if (utf8_valid(s, n) && (scanned || ac_scan(s, n, *layout != RAW_COMMON, &L))) {
            parsed = ac_record(s, &L, *layout != RAW_COMMON, level);
        }
        break;
    default:
        break;
    }
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
    int layout, rc;
    const char *level = NULL;
    PyObject *parsed = raw_parsed(r, s, n, name, name_n, &layout, &level);
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
        rc = rc == 1 ? raw_emit(r, parsed, layout, level) : rc;
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
    int layout;
    const char *level = NULL;
    PyObject *parsed = raw_parsed(r, raw->text.p, raw->text.n, name, name_n, &layout, &level);
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
    rc = rc == 1 ? raw_emit(r, parsed, layout, level) : rc;
    Py_DECREF(parsed);
    return rc;
}
