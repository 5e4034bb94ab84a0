/* Kafka record parsing: the records of one (decompressed) v2 record batch into Python lists.
 *
 * kafka-python parses a record in Python (a varint at a time) and builds two objects per record;
 * at 15-20 us a message that was the largest single cost of an ingest run. This reads the same
 * layout (KIP-98's Record: length, attributes, timestamp delta, offset delta, key, value, headers)
 * in one pass and appends only what a range read keeps. Every length is checked against the
 * buffer: a malformed batch raises ValueError, never reads past its end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} cursor;

/* A zigzag varint (up to 64 bits). Returns 0, or -1 when the buffer ends or it overflows. */
static int read_varint(cursor *c, int64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) return -1;
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return -1;
}

/* A length-prefixed field: a negative length is null (as Kafka's Java client and kafka-python read
 * it), a length past the record an error. */
static int read_field(cursor *c, const uint8_t **data, int64_t *len) {
    if (read_varint(c, len) < 0) return -1;
    if (*len < 0) {
        *data = NULL;
        return 0;
    }
    if (*len > c->end - c->p) return -1;
    *data = c->p;
    c->p += *len;
    return 0;
}

static int append_new(PyObject *list, PyObject *item) {
    if (item == NULL) return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *bytes_or_none(const uint8_t *data, int64_t len) {
    if (data == NULL) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
}

static PyObject *corrupt(Py_ssize_t index, const char *what) {
    PyErr_Format(PyExc_ValueError, "record %zd of the batch: %s", index, what);
    return NULL;
}

static PyObject *parse_records(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t count;
    long long base_offset, first_timestamp, max_timestamp, start, end;
    int log_append_time;
    const char *flag_name;
    Py_ssize_t flag_len;
    PyObject *values, *offsets, *keys, *stamps, *flags;
    if (!PyArg_ParseTuple(args, "y*nLLpLLLy#O!O!O!O!O!", &view, &count, &base_offset, &first_timestamp,
                          &log_append_time, &max_timestamp, &start, &end, &flag_name, &flag_len,
                          &PyList_Type, &values, &PyList_Type, &offsets, &PyList_Type, &keys,
                          &PyList_Type, &stamps, &PyList_Type, &flags))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t kept = 0;
    cursor c = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    if (count < 0) {
        corrupt(0, "negative record count");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t length, ts_delta, offset_delta, key_len, value_len, header_count;
        const uint8_t *key, *value;
        if (read_varint(&c, &length) < 0 || length < 1 || length > c.end - c.p) {
            corrupt(i, "length past the batch's end");
            goto done;
        }
        cursor r = {c.p, c.p + length};
        c.p += length;
        r.p++; /* attributes: unused by format v2 records */
        if (read_varint(&r, &ts_delta) < 0 || read_varint(&r, &offset_delta) < 0) {
            corrupt(i, "timestamp or offset delta past the record's end");
            goto done;
        }
        if (read_field(&r, &key, &key_len) < 0 || read_field(&r, &value, &value_len) < 0) {
            corrupt(i, "key or value past the record's end");
            goto done;
        }
        if (read_varint(&r, &header_count) < 0 || header_count < 0) {
            corrupt(i, "invalid header count");
            goto done;
        }
        int flagged = 0;
        for (int64_t h = 0; h < header_count; h++) {
            const uint8_t *h_key, *h_value;
            int64_t h_key_len, h_value_len;
            if (read_field(&r, &h_key, &h_key_len) < 0 || h_key == NULL ||
                read_field(&r, &h_value, &h_value_len) < 0) {
                corrupt(i, "header past the record's end");
                goto done;
            }
            if (h_key_len == flag_len && memcmp(h_key, flag_name, (size_t)flag_len) == 0 &&
                h_value != NULL && h_value_len == 1 && h_value[0] == '1')
                flagged = 1;
        }
        if (r.p != r.end) {
            corrupt(i, "bytes left after the record's headers");
            goto done;
        }
        long long offset, stamp = max_timestamp;
        /* The deltas are the record's own bytes (the batch's CRC does not cover its base offset). */
        if (__builtin_add_overflow(base_offset, offset_delta, &offset) ||
            (!log_append_time && __builtin_add_overflow(first_timestamp, ts_delta, &stamp))) {
            corrupt(i, "offset or timestamp delta out of range");
            goto done;
        }
        if (offset < start || offset >= end) continue;
        if (append_new(values, bytes_or_none(value, value_len)) < 0 ||
            append_new(offsets, PyLong_FromLongLong(offset)) < 0 ||
            append_new(keys, bytes_or_none(key, key_len)) < 0 ||
            append_new(stamps, PyLong_FromLongLong(stamp)) < 0 ||
            PyList_Append(flags, flagged ? Py_True : Py_False) < 0)
            goto done;
        kept++;
    }
    if (c.p != c.end) {
        PyErr_Format(PyExc_ValueError, "%zd bytes left after the batch's %zd records", (Py_ssize_t)(c.end - c.p),
                     count);
        goto done;
    }
    result = PyLong_FromSsize_t(kept);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_records", parse_records, METH_VARARGS,
     "parse_records(buffer, count, base_offset, first_timestamp, log_append_time, max_timestamp, start, end,\n"
     "              flag_header, values, offsets, keys, timestamps, flags) -> int\n\n"
     "Append the value, offset, key, timestamp and flag (the header `flag_header` is b'1') of each of\n"
     "the batch's `count` records whose offset is in [start, end) to the five lists; return how many.\n"
     "Raises ValueError on a malformed batch (the lists may then hold part of it)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_records", NULL, -1, methods};

PyMODINIT_FUNC PyInit__records(void) { return PyModule_Create(&module); }
