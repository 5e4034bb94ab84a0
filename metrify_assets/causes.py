"""The chain of errors behind an exception, as Python's traceback shows it.

Free of Dagster and psycopg imports, so the CLI can read an error's causes without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator


def causes(err: BaseException) -> Iterator[BaseException]:
    """`err`, then what led to it: its explicit cause, else the error it was raised while handling
    unless that was suppressed (`raise ... from None` says the two are unrelated). Each error once,
    so a chain that loops back ends."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
