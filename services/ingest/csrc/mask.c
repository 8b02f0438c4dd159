/*
 * PII masking of e-mail and IPv4 addresses, exactly as services/ingest/pii.py does it.
 *
 * Part of the one translation unit built from ../_native.c, which includes it: every
 * helper stays static and inlinable, and nothing here is exported.
 */

/* ------------------------------------------------------------------ PII masking */

static int
is_label(unsigned char c)
{
    return is_word(c) || c == '-';
}

static int
is_local(unsigned char c)
{
    return is_word(c) || c == '.' || c == '%' || c == '+' || c == '-';
}

/* End of pii._DOMAIN matched at `pos` (anchored, with the regex's backtracking): labels
 * of [\w-] split by single dots; the match ends in the letters (2 to 63) that start the
 * last label, after the first, that begins with at least two letters. -1: no match. */
static Py_ssize_t
match_domain(const char *s, Py_ssize_t n, Py_ssize_t pos)
{
    Py_ssize_t i = pos;
    while (i < n && is_label((unsigned char)s[i])) {
        i++;
    }
    if (i == pos) {
        return -1;
    }
    Py_ssize_t best = -1;
    while (i + 1 < n && s[i] == '.' && is_label((unsigned char)s[i + 1])) {
        Py_ssize_t start = i + 1, k = start;
        while (k < n && k - start < 63 && is_alpha((unsigned char)s[k])) {
            k++;
        }
        if (k - start >= 2) {
            best = k;
        }
        i = start;
        while (i < n && is_label((unsigned char)s[i])) {
            i++;
        }
    }
    return best;
}

/* The digest of s[0:n] as hash mode writes it, appended to `out`. */
static int
put_digest(Run *r, Buf *out, const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_DecodeASCII(s, n, NULL);
    if (text == NULL) {
        return -1;
    }
    PyObject *digest = PyObject_CallOneArg(r->e->hash_fn, text);
    Py_DECREF(text);
    if (digest == NULL) {
        return -1;
    }
    Py_ssize_t dn;
    const char *d = str_result(digest, "hash_fn", &dn);
    int rc = d == NULL ? -1 : buf_put(out, d, dn);
    Py_DECREF(digest);
    return rc;
}

/* pii.Masker._emails on ASCII text. */
static int
mask_emails(Run *r, const char *s, Py_ssize_t n, Buf *out)
{
    Py_ssize_t done = 0;
    const char *hit = memchr(s, '@', (size_t)n);
    Py_ssize_t at = hit ? hit - s : -1;
    while (at >= 0) {
        Py_ssize_t end = match_domain(s, n, at + 1);
        if (end >= 0) {
            Py_ssize_t lo = at - 64 > done ? at - 64 : done;
            Py_ssize_t start = at;
            while (start > lo && is_local((unsigned char)s[start - 1])) {
                start--;
            }
            if (start < at) {
                if (buf_put(out, s + done, start - done) < 0) {
                    return -1;
                }
                if (r->e->mask_mode == 2) {
                    if (put_digest(r, out, s + start, end - start) < 0) {
                        return -1;
                    }
                }
                else if (buf_put(out, s + start, 1) < 0 || PUT_LIT(out, "***@") < 0 ||
                         buf_put(out, s + at + 1, end - at - 1) < 0) {
                    return -1;
                }
                done = end;
            }
        }
        Py_ssize_t from = at + 1 > done ? at + 1 : done;
        hit = from < n ? memchr(s + from, '@', (size_t)(n - from)) : NULL;
        at = hit ? hit - s : -1;
    }
    return buf_put(out, s + done, n - done);
}

static Py_ssize_t
digit_run(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t j = i;
    while (j < n && is_digit((unsigned char)s[j])) {
        j++;
    }
    return j - i;
}

/* pii._DOTTED_QUAD at i: the four octets' starts and lengths; 0 when it does not match. */
static int
match_quad(const char *s, Py_ssize_t n, Py_ssize_t i, Py_ssize_t at[4], Py_ssize_t len[4])
{
    Py_ssize_t p = i;
    for (int k = 0; k < 3; k++) {
        Py_ssize_t run = digit_run(s, n, p);
        if (run < 1 || run > 3 || p + run >= n || s[p + run] != '.') {
            return 0;
        }
        at[k] = p;
        len[k] = run;
        p += run + 1;
    }
    Py_ssize_t run = digit_run(s, n, p);
    if (run < 1) {
        return 0;
    }
    at[3] = p;
    len[3] = run > 3 ? 3 : run;
    return 1;
}

/* Whether a dotted quad at [start, end) is an address (pii.Masker._ipv4). */
static int
is_address(const char *s, Py_ssize_t n, Py_ssize_t start, Py_ssize_t end,
           const Py_ssize_t at[4], const Py_ssize_t len[4])
{
    if (start > 0) {
        unsigned char before = (unsigned char)s[start - 1];
        if (is_digit(before) || (before == '.' && start > 1 && is_digit((unsigned char)s[start - 2]))) {
            return 0;
        }
    }
    if (end < n) {
        unsigned char after = (unsigned char)s[end];
        if (is_digit(after) || (after == '.' && end + 1 < n && is_digit((unsigned char)s[end + 1]))) {
            return 0;
        }
    }
    for (int k = 0; k < 4; k++) {
        if (len[k] == 3 && memcmp(s + at[k], "255", 3) > 0) {
            return 0;
        }
    }
    return 1;
}

/* pii._DOTTED_QUAD.sub(Masker._ipv4, text) on ASCII text. */
static int
mask_ipv4(Run *r, const char *s, Py_ssize_t n, Buf *out)
{
    Py_ssize_t done = 0, i = 0;
    while (i < n) {
        Py_ssize_t at[4], len[4];
        if (!is_digit((unsigned char)s[i]) || !match_quad(s, n, i, at, len)) {
            i++;
            continue;
        }
        Py_ssize_t end = at[3] + len[3];
        if (is_address(s, n, i, end, at, len)) {
            if (buf_put(out, s + done, i - done) < 0) {
                return -1;
            }
            if (r->e->mask_mode == 2) {
                if (put_digest(r, out, s + i, end - i) < 0) {
                    return -1;
                }
            }
            else if (buf_put(out, s + at[0], len[0]) < 0 || PUT_LIT(out, ".") < 0 ||
                     buf_put(out, s + at[1], len[1]) < 0 || PUT_LIT(out, ".x.x") < 0) {
                return -1;
            }
            done = end;
        }
        i = end;
    }
    return buf_put(out, s + done, n - done);
}

static Py_ssize_t
count_dots(const char *s, Py_ssize_t n)
{
    Py_ssize_t dots = 0;
    for (const char *p = s; (p = memchr(p, '.', (size_t)(n - (p - s)))) != NULL; p++) {
        dots++;
    }
    return dots;
}

/* Masker.apply on ASCII text: the result in *res (maybe `s` itself, maybe scratch). */
static int
mask_ascii(Run *r, const char *s, Py_ssize_t n, const char **res, Py_ssize_t *res_n)
{
    *res = s;
    *res_n = n;
    if (memchr(s, '@', (size_t)n) != NULL) {
        r->scratch1.len = 0;
        if (mask_emails(r, s, n, &r->scratch1) < 0) {
            return -1;
        }
        *res = r->scratch1.p;
        *res_n = r->scratch1.len;
    }
    if (count_dots(*res, *res_n) >= 3) {
        r->scratch2.len = 0;
        if (mask_ipv4(r, *res, *res_n, &r->scratch2) < 0) {
            return -1;
        }
        *res = r->scratch2.p;
        *res_n = r->scratch2.len;
    }
    return 0;
}

/* The message as stored: masked when it may hold an address. `*keep` owns any new
 * object the result points into. `obj` may be NULL (built from the bytes if needed). */
static int
resolve_msg(Run *r, PyObject *obj, const char *s, Py_ssize_t n, int ascii, const char **res,
            Py_ssize_t *res_n, PyObject **keep)
{
    *res = s;
    *res_n = n;
    *keep = NULL;
    if (r->e->mask_mode == 0 || n == 0 ||
        (memchr(s, '@', (size_t)n) == NULL && memchr(s, '.', (size_t)n) == NULL)) {
        return 0;
    }
    if (ascii) {
        return mask_ascii(r, s, n, res, res_n);
    }
    PyObject *text = obj;
    if (text == NULL) {
        text = PyUnicode_DecodeUTF8(s, n, NULL);
        if (text == NULL) {
            return -1;
        }
    }
    else {
        Py_INCREF(text);
    }
    PyObject *masked = PyObject_CallOneArg(r->e->mask_fn, text);
    Py_DECREF(text);
    if (masked == NULL) {
        return -1;
    }
    *res = str_result(masked, "mask_fn", res_n);
    if (*res == NULL) {
        Py_DECREF(masked);
        return -1;
    }
    *keep = masked;
    return 0;
}
