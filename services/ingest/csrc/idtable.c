/*
 * IdTable: the sink's idempotency index in 32 to 40 bytes an id (a Python dict of id
 * strings takes about 130), so millions of remembered batch ids stay small.
 *
 * Keys are 16-byte digests of the batch ids (computed by the caller), values the
 * counts a duplicate is answered with. At most `max_ids` are kept; the oldest go
 * first. The entries sit in a ring in insertion order (24 bytes each); an open-
 * addressing index of 4-byte positions (linear probing, backward-shift deletion, at
 * most half full) finds them. Both grow as ids come, so memory follows the number of
 * ids, not the cap.
 *
 * Part of the one translation unit built from ../_native.c, which includes it.
 */

typedef struct {
    uint64_t k0, k1;
    uint32_t accepted, rejected;
} IdEntry;

typedef struct {
    PyObject_HEAD
    IdEntry *entries;   /* a ring in insertion order: the oldest at `head` */
    size_t cap, head, count, max_ids;
    uint32_t *index;    /* open addressing: 0 empty, else 1 + the entry's ring position */
    size_t mask;        /* index slots - 1; a power of two */
} IdTable;

static const IdEntry *
id_entry_at(const IdTable *t, size_t slot)
{
    return &t->entries[t->index[slot] - 1];
}

/* The index slot holding the key, or the empty slot where it would go. */
static int
id_find(const IdTable *t, uint64_t k0, uint64_t k1, size_t *slot)
{
    for (size_t i = (size_t)k0 & t->mask;; i = (i + 1) & t->mask) {
        if (t->index[i] == 0) {
            *slot = i;
            return 0;
        }
        const IdEntry *e = id_entry_at(t, i);
        if (e->k0 == k0 && e->k1 == k1) {
            *slot = i;
            return 1;
        }
    }
}

/* Index every entry again (after the ring or the index changed size). */
static int
id_reindex(IdTable *t, size_t slots)
{
    uint32_t *index = PyMem_RawCalloc(slots, sizeof(uint32_t));
    if (index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_RawFree(t->index);
    t->index = index;
    t->mask = slots - 1;
    for (size_t k = 0; k < t->count; k++) {
        size_t pos = (t->head + k) % t->cap, slot;
        id_find(t, t->entries[pos].k0, t->entries[pos].k1, &slot);
        t->index[slot] = (uint32_t)(pos + 1);
    }
    return 0;
}

/* A bigger ring (up to max_ids), unrolled so the oldest entry comes first. */
static int
id_grow_ring(IdTable *t)
{
    size_t cap = t->cap * 2 < t->max_ids ? t->cap * 2 : t->max_ids;
    IdEntry *entries = PyMem_RawMalloc(cap * sizeof(IdEntry));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < t->count; k++) {
        entries[k] = t->entries[(t->head + k) % t->cap];
    }
    PyMem_RawFree(t->entries);
    t->entries = entries;
    t->cap = cap;
    t->head = 0;
    return id_reindex(t, t->mask + 1);
}

/* Empty the index slot i, shifting later members of its probe run back. */
static void
id_unindex(IdTable *t, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->index[j] == 0) {
            break;
        }
        size_t home = (size_t)id_entry_at(t, j)->k0 & t->mask;
        /* It moves into the hole unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->index[i] = t->index[j];
            i = j;
        }
    }
    t->index[i] = 0;
}

static void
id_evict_oldest(IdTable *t)
{
    const IdEntry *e = &t->entries[t->head];
    size_t slot;
    id_find(t, e->k0, e->k1, &slot);
    id_unindex(t, slot);
    t->head = (t->head + 1) % t->cap;
    t->count--;
}

/* IdTable.__new__ alone (or a failed __init__) leaves no ring and no index to probe. */
static int
id_ready(const IdTable *t)
{
    if (t->entries == NULL || t->index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "IdTable.__init__ did not run or failed");
        return 0;
    }
    return 1;
}

static int
id_digest(PyObject *digest, uint64_t *k0, uint64_t *k1)
{
    if (!PyBytes_Check(digest) || PyBytes_GET_SIZE(digest) != 16) {
        PyErr_SetString(PyExc_ValueError, "a key is a 16-byte digest");
        return -1;
    }
    memcpy(k0, PyBytes_AS_STRING(digest), 8);
    memcpy(k1, PyBytes_AS_STRING(digest) + 8, 8);
    return 0;
}

/* put(digest, accepted, rejected): remember an id (a known one keeps its age). */
static PyObject *
idtable_put(IdTable *t, PyObject *args)
{
    PyObject *digest;
    unsigned int accepted, rejected;
    uint64_t k0, k1;
    size_t slot;
    /* Checked after the arguments: converting them may run Python code (__index__). */
    if (!PyArg_ParseTuple(args, "OII", &digest, &accepted, &rejected) || !id_ready(t) ||
        id_digest(digest, &k0, &k1) < 0) {
        return NULL;
    }
    if (id_find(t, k0, k1, &slot)) {
        IdEntry *e = &t->entries[t->index[slot] - 1];
        e->accepted = accepted;
        e->rejected = rejected;
        Py_RETURN_NONE;
    }
    if (t->count == t->max_ids) {
        id_evict_oldest(t);
    }
    if ((t->count == t->cap && id_grow_ring(t) < 0) ||
        ((t->count + 1) * 2 > t->mask + 1 && id_reindex(t, (t->mask + 1) * 2) < 0)) {
        return NULL;
    }
    size_t pos = (t->head + t->count) % t->cap;
    t->entries[pos] = (IdEntry){k0, k1, accepted, rejected};
    id_find(t, k0, k1, &slot);
    t->index[slot] = (uint32_t)(pos + 1);
    t->count++;
    Py_RETURN_NONE;
}

/* get(digest) -> (accepted, rejected) | None */
static PyObject *
idtable_get(IdTable *t, PyObject *digest)
{
    uint64_t k0, k1;
    size_t slot;
    if (!id_ready(t) || id_digest(digest, &k0, &k1) < 0) {
        return NULL;
    }
    if (!id_find(t, k0, k1, &slot)) {
        Py_RETURN_NONE;
    }
    const IdEntry *e = id_entry_at(t, slot);
    return Py_BuildValue("(II)", e->accepted, e->rejected);
}

/* Back to the state of IdTable.__new__: nothing held, every method refuses. */
static void
id_free(IdTable *t)
{
    PyMem_RawFree(t->entries);
    PyMem_RawFree(t->index);
    t->entries = NULL;
    t->index = NULL;
    t->cap = t->head = t->count = t->max_ids = t->mask = 0;
}

static int
idtable_init(IdTable *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_ids", NULL};
    Py_ssize_t max_ids;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n", kwlist, &max_ids)) {
        return -1;
    }
    if (max_ids < 1 || max_ids > (Py_ssize_t)(UINT32_MAX / 4)) {
        PyErr_SetString(PyExc_ValueError, "max_ids must be from 1 to 2**30");
        return -1;
    }
    id_free(t);
    size_t cap = (size_t)max_ids < 1024 ? (size_t)max_ids : 1024;
    t->entries = PyMem_RawMalloc(cap * sizeof(IdEntry));
    t->index = PyMem_RawCalloc(2048, sizeof(uint32_t));
    if (t->entries == NULL || t->index == NULL) {
        id_free(t);
        PyErr_NoMemory();
        return -1;
    }
    t->max_ids = (size_t)max_ids;
    t->cap = cap;
    t->mask = 2047;
    return 0;
}

static void
idtable_dealloc(IdTable *t)
{
    id_free(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t
idtable_len(IdTable *t)
{
    return (Py_ssize_t)t->count;
}

static PyObject *
idtable_nbytes(IdTable *t, void *closure)
{
    size_t slots = t->index == NULL ? 0 : t->mask + 1;
    return PyLong_FromSize_t(t->cap * sizeof(IdEntry) + slots * sizeof(uint32_t));
}

static PyMethodDef idtable_methods[] = {
    {"put", (PyCFunction)idtable_put, METH_VARARGS,
     "put(digest, accepted, rejected): remember an id; past max_ids the oldest is forgotten"},
    {"get", (PyCFunction)idtable_get, METH_O, "get(digest) -> (accepted, rejected) or None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef idtable_getset[] = {
    {"nbytes", (getter)idtable_nbytes, NULL, "memory held by the table", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods idtable_as_sequence = {
    .sq_length = (lenfunc)idtable_len,
};

static PyTypeObject IdTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "services.ingest._native.IdTable",
    .tp_basicsize = sizeof(IdTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "IdTable(max_ids): batch id digests and their counts, the oldest forgotten first.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)idtable_init,
    .tp_dealloc = (destructor)idtable_dealloc,
    .tp_methods = idtable_methods,
    .tp_getset = idtable_getset,
    .tp_as_sequence = &idtable_as_sequence,
};
