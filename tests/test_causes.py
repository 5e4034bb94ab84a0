"""The error chain walk shared by the step classifier and the CLI's one-line outage message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metrify_assets.causes import causes


def raised(
    make: type[Exception], inner: Exception, *, suppress: bool = False, explicit: bool = False
) -> Exception:
    """`make` raised while handling `inner`: implicitly, `from inner`, or `from None`."""
    with pytest.raises(make) as caught:
        try:
            raise inner
        except Exception as handled:
            if suppress:
                raise make("outer") from None
            if explicit:
                raise make("outer") from handled
            raise make("outer")  # noqa: B904 - the implicit context is what is tested
    return caught.value


def test_the_chain_follows_a_cause_or_the_context_handled() -> None:
    inner = ConnectionError("refused")
    for explicit in (True, False):
        outer = raised(RuntimeError, inner, explicit=explicit)
        assert [type(e) for e in causes(outer)] == [RuntimeError, ConnectionError]
        assert list(causes(outer))[1] is inner


def test_a_suppressed_context_is_not_a_cause() -> None:
    outer = raised(KeyError, ConnectionError("refused"), suppress=True)
    assert list(causes(outer)) == [outer]


def test_a_chain_that_loops_back_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert list(causes(first)) == [first, second]


def test_the_walk_imports_neither_dagster_nor_psycopg() -> None:
    probe = "import sys, metrify_assets.causes; print(sorted({'dagster', 'psycopg'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
