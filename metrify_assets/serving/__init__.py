"""The data API (FastAPI): ingestion, data access, review and health over HTTP, bearer-token auth,
the Redis cache, and the JSON Schemas of message contract v1 (docs/api.md)."""
