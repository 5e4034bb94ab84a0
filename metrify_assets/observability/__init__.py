"""Operations: Prometheus metrics, structured logs, OpenTelemetry traces and the audit log."""
