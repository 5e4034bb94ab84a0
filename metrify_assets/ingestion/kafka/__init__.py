"""Kafka: a real local broker, the Kafka resource, offset-range planning, the range reader and the producer."""
