"""The grid room: frequency bands and, to come, stability, system states and risk."""
