"""How many messages one batch (one run) holds at most, whichever way they arrive: a Kafka range
(`kafka.ranges`) or a landing file that `metrify ingest` or a simulation writes (`landing.land_batches`).
A run's memory and a retry's work stay bounded whatever the backlog or the input file's size."""

MAX_BATCH_MESSAGES = 50_000
