"""The framework's ceiling for the API benchmark: a bare FastAPI app whose one endpoint returns a
constant, served by uvicorn exactly as the data API is (benchmarks/cases/api.py)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/constant")
def constant() -> dict[str, bool]:
    return {"ok": True}
