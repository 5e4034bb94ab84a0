"""VEE of meter intervals: validation catalogue, estimation, editing, audit trail, billing gate.

`catalogue.py` (rules and thresholds), `grid.py` (the intervals a meter-day should hold),
`estimation.py`, `gate.py`, `process.py` (the pure steps composed), `store.py` (PostgreSQL),
`review.py` (a reviewer's decision made an edit) and `assets.py` (the `vee_meter_readings` asset).
"""
