"""The names of the file layouts `metrify ingest --preset` knows (docs/ingest-mapping.md). Their readers
(`ingestion.readers.presets`) import pandas; the CLI's help lists the names without importing them."""

UCI_PRESET = "uci-household"
OPENSTEF_PRESET = "openstef"
PRESETS = (UCI_PRESET, OPENSTEF_PRESET)
