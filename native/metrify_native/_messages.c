/* Decoding the usual contract-v1 message straight into columns.
 *
 * A batch's messages are nearly all alike: an object of the contract's fields, or `{"records": [...]}`
 * of them, every value of its contract type. In Python each record cost a decoded object, then a
 * getattr and a list slot per field, then Arrow's conversion of those lists. Here one pass over a
 * message appends its values to per-field buffers laid out as Arrow arrays (validity bitmap, int32
 * offsets and bytes for texts, doubles for numbers).
 *
 * It takes only what it can decode exactly as the Python path would, and gives every other message
 * back (its count is -1), leaving no trace in the columns: anything but bytes or text, an unknown,
 * repeated or escaped key, a text with an escape, a control character or a byte past ASCII, a
 * boolean, a nested value, a number outside the strict JSON grammar (or an integer field's number
 * with a fraction, an exponent or more than 15 digits), `records` beside other keys, more records
 * than `max_records`, anything after the value. The Python path then decides, and names what is
 * wrong. A text-list field (a list of texts) is stored comma-joined, an empty list as null: what the
 * Python path stores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* A required text list's empty list is given back: the Python path tells it from a missing one. */
enum { KIND_TEXT = 0, KIND_FLOAT = 1, KIND_INT = 2, KIND_TEXT_LIST = 3, KIND_REQUIRED_TEXT_LIST = 4 };
enum { OK = 0, GIVE_BACK = -1, NO_MEMORY = -2 };

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static int reserve(buffer *b, size_t extra) {
    if (b->len + extra <= b->cap) return OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) return NO_MEMORY;
    memset(data + b->cap, 0, cap - b->cap); /* validity bits start cleared */
    b->data = data;
    b->cap = cap;
    return OK;
}

static int put(buffer *b, const void *src, size_t n) {
    if (n == 0) return OK;
    if (reserve(b, n) < 0) return NO_MEMORY;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return OK;
}

typedef struct {
    int kind;
    const char *name;
    Py_ssize_t name_len;
    buffer values;  /* texts' bytes, or one double per record */
    buffer offsets; /* texts: int32 end offset of each record's text (the first, 0, put at the start) */
    buffer valid;   /* texts: validity bitmap, one bit per record */
    int seen;       /* whether the record being read set it */
} column;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    column *columns;
    Py_ssize_t ncolumns;
    Py_ssize_t rows; /* records appended so far */
} reader;

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int expect(reader *r, char c) {
    skip_space(r);
    if (r->p >= r->end || *r->p != (uint8_t)c) return GIVE_BACK;
    r->p++;
    return OK;
}

/* A text without escapes, control characters or bytes past ASCII: its bytes are the value. */
static int read_text(reader *r, const uint8_t **start, size_t *len) {
    if (r->p >= r->end || *r->p != '"') return GIVE_BACK;
    const uint8_t *s = ++r->p;
    while (r->p < r->end) {
        uint8_t b = *r->p;
        if (b == '"') {
            *start = s;
            *len = (size_t)(r->p - s);
            r->p++;
            return OK;
        }
        if (b == '\\' || b < 0x20 || b >= 0x80) return GIVE_BACK;
        r->p++;
    }
    return GIVE_BACK;
}

static int read_null(reader *r) {
    if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
        r->p += 4;
        return OK;
    }
    return GIVE_BACK;
}

static int is_digit(const uint8_t *p, const uint8_t *end) { return p < end && *p >= '0' && *p <= '9'; }

/* A number in JSON's grammar: an integer field's without fraction or exponent, up to 15 digits (so a
 * double holds it exactly); a float field's as Python's float() reads its text. */
static int read_number(reader *r, int integer, double *out) {
    const uint8_t *s = r->p, *p = r->p;
    if (p < r->end && *p == '-') p++;
    const uint8_t *digits = p;
    if (!is_digit(p, r->end)) return GIVE_BACK;
    if (*p == '0') p++;
    else
        while (is_digit(p, r->end)) p++;
    size_t int_digits = (size_t)(p - digits);
    int plain = 1; /* no fraction, no exponent: an integer's text */
    if (p < r->end && *p == '.') {
        plain = 0;
        p++;
        if (!is_digit(p, r->end)) return GIVE_BACK;
        while (is_digit(p, r->end)) p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        plain = 0;
        p++;
        if (p < r->end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, r->end)) return GIVE_BACK;
        while (is_digit(p, r->end)) p++;
    }
    size_t n = (size_t)(p - s);
    if (integer) {
        if (!plain || int_digits > 15) return GIVE_BACK;
        int64_t v = 0;
        for (const uint8_t *d = digits; d < p; d++) v = v * 10 + (*d - '0');
        *out = (double)(*s == '-' ? -v : v); /* -0 is the integer 0 */
        r->p = p;
        return OK;
    }
    char text[40];
    if (n >= sizeof text) return GIVE_BACK;
    memcpy(text, s, n);
    text[n] = '\0';
    char *stop = NULL;
    double v = PyOS_string_to_double(text, &stop, NULL); /* locale-free, correctly rounded */
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return GIVE_BACK;
    }
    if (stop != text + n || isinf(v) || isnan(v)) return GIVE_BACK;
    *out = plain && v == 0.0 ? 0.0 : v; /* `-0` is the integer 0, as msgspec and orjson read it */
    r->p = p;
    return OK;
}

static int set_bit(buffer *bits, Py_ssize_t row, int on) {
    size_t need = (size_t)(row >> 3) + 1;
    if (need > bits->len) {
        if (reserve(bits, need - bits->len) < 0) return NO_MEMORY;
        memset(bits->data + bits->len, 0, need - bits->len);
        bits->len = need;
    }
    uint8_t mask = (uint8_t)(1u << (row & 7));
    if (on) bits->data[row >> 3] |= mask;
    else bits->data[row >> 3] &= (uint8_t)~mask;
    return OK;
}

/* End the record's text at the values' current length; over 2 GiB of text goes back to Python. */
static int end_text(column *c, Py_ssize_t row, int valid) {
    if (c->values.len > INT32_MAX) return GIVE_BACK;
    int32_t end = (int32_t)c->values.len;
    if (put(&c->offsets, &end, sizeof end) < 0 || set_bit(&c->valid, row, valid) < 0) return NO_MEMORY;
    return OK;
}

static int put_double(column *c, double v) { return put(&c->values, &v, sizeof v); }

static int read_value(reader *r, column *c) {
    skip_space(r);
    if (r->p >= r->end) return GIVE_BACK;
    int rc;
    if (*r->p == 'n') {
        if (read_null(r) < 0) return GIVE_BACK;
        return c->kind == KIND_FLOAT || c->kind == KIND_INT ? put_double(c, NAN) : end_text(c, r->rows, 0);
    }
    switch (c->kind) {
    case KIND_TEXT: {
        const uint8_t *s;
        size_t n;
        if ((rc = read_text(r, &s, &n)) < 0) return rc;
        if (put(&c->values, s, n) < 0) return NO_MEMORY;
        return end_text(c, r->rows, 1);
    }
    case KIND_FLOAT:
    case KIND_INT: {
        double v;
        if ((rc = read_number(r, c->kind == KIND_INT, &v)) < 0) return rc;
        return put_double(c, v);
    }
    default: { /* a text list: the texts comma-joined, an empty list null */
        if (*r->p != '[') return GIVE_BACK;
        r->p++;
        skip_space(r);
        if (r->p < r->end && *r->p == ']') {
            if (c->kind == KIND_REQUIRED_TEXT_LIST) return GIVE_BACK;
            r->p++;
            return end_text(c, r->rows, 0);
        }
        for (int first = 1;; first = 0) {
            const uint8_t *s;
            size_t n;
            skip_space(r);
            if ((rc = read_text(r, &s, &n)) < 0) return rc;
            if ((!first && put(&c->values, ",", 1) < 0) || put(&c->values, s, n) < 0) return NO_MEMORY;
            skip_space(r);
            if (r->p >= r->end) return GIVE_BACK;
            if (*r->p == ']') {
                r->p++;
                return end_text(c, r->rows, 1);
            }
            if (*r->p++ != ',') return GIVE_BACK;
        }
    }
    }
}

static column *field_named(reader *r, const uint8_t *key, size_t len) {
    for (Py_ssize_t i = 0; i < r->ncolumns; i++)
        if ((size_t)r->columns[i].name_len == len && memcmp(r->columns[i].name, key, len) == 0)
            return &r->columns[i];
    return NULL;
}

/* One record's object, its first key already read (`key`, or none when the object is empty). */
static int read_record_from(reader *r, const uint8_t *key, size_t key_len, int have_key) {
    int rc;
    for (Py_ssize_t i = 0; i < r->ncolumns; i++) r->columns[i].seen = 0;
    while (have_key) {
        column *c = field_named(r, key, key_len);
        if (c == NULL || c->seen) return GIVE_BACK; /* unknown or repeated */
        c->seen = 1;
        if ((rc = expect(r, ':')) < 0 || (rc = read_value(r, c)) < 0) return rc;
        skip_space(r);
        if (r->p >= r->end) return GIVE_BACK;
        if (*r->p == '}') break;
        if (*r->p++ != ',') return GIVE_BACK;
        skip_space(r);
        if ((rc = read_text(r, &key, &key_len)) < 0) return rc;
    }
    r->p++; /* the closing brace */
    for (Py_ssize_t i = 0; i < r->ncolumns; i++) {
        column *c = &r->columns[i];
        if (c->seen) continue;
        rc = c->kind == KIND_FLOAT || c->kind == KIND_INT ? put_double(c, NAN) : end_text(c, r->rows, 0);
        if (rc < 0) return rc;
    }
    r->rows++;
    return OK;
}

/* After the opening brace: an empty object, or its first key. */
static int first_key(reader *r, const uint8_t **key, size_t *len, int *have_key) {
    skip_space(r);
    if (r->p >= r->end) return GIVE_BACK;
    if (*r->p == '}') {
        *have_key = 0;
        return OK;
    }
    *have_key = 1;
    return read_text(r, key, len);
}

static int read_record(reader *r) {
    const uint8_t *key = NULL;
    size_t len = 0;
    int have_key, rc;
    if ((rc = expect(r, '{')) < 0 || (rc = first_key(r, &key, &len, &have_key)) < 0) return rc;
    return read_record_from(r, key, len, have_key);
}

/* One message: its records appended; returns how many, or GIVE_BACK / NO_MEMORY. `single` is set
 * when the message is one record's object rather than `{"records": [...]}`. */
static Py_ssize_t read_message(reader *r, Py_ssize_t max_records, int *single) {
    const uint8_t *key = NULL;
    size_t len = 0;
    int have_key, rc;
    Py_ssize_t count;
    if ((rc = expect(r, '{')) < 0 || (rc = first_key(r, &key, &len, &have_key)) < 0) return rc;
    *single = !(have_key && len == 7 && memcmp(key, "records", 7) == 0);
    if (!*single) {
        if ((rc = expect(r, ':')) < 0 || (rc = expect(r, '[')) < 0) return rc;
        skip_space(r);
        count = 0;
        if (r->p < r->end && *r->p == ']') r->p++;
        else
            for (;;) {
                if (++count > max_records) return GIVE_BACK;
                if ((rc = read_record(r)) < 0) return rc;
                skip_space(r);
                if (r->p >= r->end) return GIVE_BACK;
                if (*r->p == ']') {
                    r->p++;
                    break;
                }
                if (*r->p++ != ',') return GIVE_BACK;
            }
        if ((rc = expect(r, '}')) < 0) return rc; /* nothing beside `records` */
    } else {
        if ((rc = read_record_from(r, key, len, have_key)) < 0) return rc;
        count = 1;
    }
    skip_space(r);
    return r->p == r->end ? count : GIVE_BACK;
}

typedef struct {
    size_t lens[3]; /* a column's buffer lengths where a message began: values, offsets, valid */
} mark;

static PyObject *bytes_of(buffer *b) { return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len); }

static PyObject *decode_messages(PyObject *self, PyObject *args) {
    PyObject *messages, *names, *kinds_obj;
    Py_ssize_t max_records;
    if (!PyArg_ParseTuple(args, "OO!O!n", &messages, &PyTuple_Type, &names, &PyTuple_Type, &kinds_obj,
                          &max_records))
        return NULL;
    Py_ssize_t ncolumns = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(kinds_obj) != ncolumns) {
        PyErr_SetString(PyExc_ValueError, "names and kinds differ in length");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(messages, "messages must be a sequence");
    if (seq == NULL) return NULL;
    PyObject *result = NULL;
    column *columns = PyMem_Calloc((size_t)(ncolumns ? ncolumns : 1), sizeof(column));
    mark *marks = NULL;
    buffer counts = {0}, singles = {0};
    if (columns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ncolumns; i++) {
        column *c = &columns[i];
        c->name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names, i), &c->name_len);
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(kinds_obj, i));
        if (c->name == NULL || PyErr_Occurred()) goto done;
        if (kind < KIND_TEXT || kind > KIND_REQUIRED_TEXT_LIST) {
            PyErr_Format(PyExc_ValueError, "unknown kind %ld", kind);
            goto done;
        }
        c->kind = (int)kind;
        int32_t zero = 0;
        if (c->kind != KIND_FLOAT && c->kind != KIND_INT && put(&c->offsets, &zero, sizeof zero) < 0) {
            PyErr_NoMemory();
            goto done;
        }
    }
    marks = PyMem_Calloc((size_t)(ncolumns ? ncolumns : 1), sizeof(mark));
    if (marks == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    reader r = {NULL, NULL, columns, ncolumns, 0};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (reserve(&counts, (size_t)n * sizeof(int64_t)) < 0 || reserve(&singles, (size_t)n) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t m = 0; m < n; m++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, m);
        const char *data = NULL;
        Py_ssize_t len = 0;
        if (PyBytes_Check(item)) {
            data = PyBytes_AS_STRING(item);
            len = PyBytes_GET_SIZE(item);
        } else if (PyUnicode_Check(item)) {
            data = PyUnicode_AsUTF8AndSize(item, &len);
            if (data == NULL) PyErr_Clear(); /* a lone surrogate: the Python path's to read */
        }
        int64_t count = GIVE_BACK;
        int single = 0;
        if (data != NULL && len > 0) {
            for (Py_ssize_t i = 0; i < ncolumns; i++)
                marks[i] = (mark){{columns[i].values.len, columns[i].offsets.len, columns[i].valid.len}};
            Py_ssize_t rows = r.rows;
            r.p = (const uint8_t *)data;
            r.end = r.p + len;
            Py_ssize_t got = read_message(&r, max_records, &single);
            if (got == NO_MEMORY) {
                PyErr_NoMemory();
                goto done;
            }
            if (got < 0) { /* back to where the message began (bits past `rows` are rewritten) */
                r.rows = rows;
                for (Py_ssize_t i = 0; i < ncolumns; i++) {
                    columns[i].values.len = marks[i].lens[0];
                    columns[i].offsets.len = marks[i].lens[1];
                    columns[i].valid.len = marks[i].lens[2];
                }
                single = 0;
            } else {
                count = got;
            }
        }
        memcpy(counts.data + counts.len, &count, sizeof count);
        counts.len += sizeof count;
        singles.data[singles.len++] = (char)single;
    }
    PyObject *cols = PyList_New(ncolumns);
    if (cols == NULL) goto done;
    for (Py_ssize_t i = 0; i < ncolumns; i++) {
        column *c = &columns[i];
        PyObject *col;
        if (c->kind == KIND_FLOAT || c->kind == KIND_INT)
            col = PyByteArray_FromStringAndSize(c->values.data ? c->values.data : "", (Py_ssize_t)c->values.len);
        else {
            if (set_bit(&c->valid, r.rows, 0) < 0) { /* the bitmap covers every row, even with none */
                Py_DECREF(cols);
                PyErr_NoMemory();
                goto done;
            }
            col = Py_BuildValue("(NNN)", bytes_of(&c->valid), bytes_of(&c->offsets), bytes_of(&c->values));
        }
        if (col == NULL) {
            Py_DECREF(cols);
            goto done;
        }
        PyList_SET_ITEM(cols, i, col);
    }
    result = Py_BuildValue("(NNnN)", bytes_of(&counts), bytes_of(&singles), r.rows, cols);
done:
    if (columns != NULL)
        for (Py_ssize_t i = 0; i < ncolumns; i++) {
            PyMem_Free(columns[i].values.data);
            PyMem_Free(columns[i].offsets.data);
            PyMem_Free(columns[i].valid.data);
        }
    PyMem_Free(columns);
    PyMem_Free(marks);
    PyMem_Free(counts.data);
    PyMem_Free(singles.data);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_messages", decode_messages, METH_VARARGS,
     "decode_messages(messages, names, kinds, max_records) -> (counts, singles, rows, columns)\n\n"
     "Decode the usual messages of a batch into columns of the fields `names` (tuple) of `kinds`\n"
     "(tuple: 0 text, 1 float, 2 integer, 3 list of texts, 4 list of texts given back when empty).\n"
     "`counts`: one native int64 per message,\n"
     "its records decoded here, or -1 for a message left to the caller. `singles`: one byte per\n"
     "message, 1 when it is one record's object (not a `records` list). `rows`: the records decoded.\n"
     "`columns`, per field: a bytearray of doubles (NaN for null) for numbers; for texts a tuple of\n"
     "Arrow buffers (validity bitmap, int32 offsets, bytes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_messages", NULL, -1, methods};

PyMODINIT_FUNC PyInit__messages(void) { return PyModule_Create(&module); }
