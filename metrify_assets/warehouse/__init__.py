"""The dbt warehouse (staging -> intermediate -> marts) as Dagster assets."""
