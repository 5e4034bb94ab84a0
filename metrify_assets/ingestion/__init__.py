"""Ingestion: landing directory and Kafka into immutable raw batches and validated tables."""
