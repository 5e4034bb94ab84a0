"""How many messages one batch (one run) holds at most, whichever way they arrive: a Kafka range
(`kafka.ranges`) or a landing file that `metrify ingest` or a simulation writes (`landing.land_batches`).
A run's memory and a retry's work stay bounded whatever the backlog or the input file's size.

And how many records one message holds at most (`decode`): a message is one record or
`{"records": [...]}`, and without a bound one message of a million tiny records (`[7,7,...]`, 2 bytes
each) multiplied a batch's work, memory and quarantine a millionfold while the message bound above
counted it once."""

MAX_BATCH_MESSAGES = 50_000

# 10,000: a producer batches readings into a message (a meter's day is 96 quarter-hours, 1,440
# minutes; the API's benchmarks send 500 a request), and Kafka's default 1 MB message size fits
# about 7,000-12,000 of the smallest valid records (80-140 bytes). A message over it is not a batch of
# readings but junk or a misuse: it is dead-lettered whole, once, as one record
# (`malformed:too_many_records`), which its records are never decoded into.
MAX_MESSAGE_RECORDS = 10_000
