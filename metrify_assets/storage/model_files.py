"""Fitted models as files in the lake: joblib (pickle, compressed) bytes and back.

The lake is trusted: only the pipeline writes `models/`, and loading a file unpickles it (runs code),
so a loaded object is checked to be of the type its reader expects.
"""

from __future__ import annotations

import io
from typing import TypeVar

import joblib

T = TypeVar("T")


def model_bytes(model: object) -> bytes:
    """joblib bytes of `model`."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def load_model(data: bytes, expected: type[T]) -> T:
    """The object `model_bytes` wrote, refused unless it is an `expected`."""
    loaded = joblib.load(io.BytesIO(data))
    if not isinstance(loaded, expected):
        raise TypeError(f"not a {expected.__name__}: {type(loaded).__name__}")
    return loaded
