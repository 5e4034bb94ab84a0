"""The API's routers, one module per concern: ingestion, data access, review, health."""
