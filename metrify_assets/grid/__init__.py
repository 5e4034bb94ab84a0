"""The grid room: frequency bands, synchronous areas, stability figures, system states, events and risk."""
