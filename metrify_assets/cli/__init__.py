"""The `metrify` command line."""
