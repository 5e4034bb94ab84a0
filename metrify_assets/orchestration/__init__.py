"""Running the code location's jobs from the CLI: the local instance, catch-up runs, Kafka drains."""
