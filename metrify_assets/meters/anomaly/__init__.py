"""Anomaly detection on meter readings: an expected-consumption model (gradient boosting on calendar,
weather, segment and the meter's level) scoring readings and meter-days, beside the robust seasonal
baseline it replaced, both trained weekly and versioned in the lake."""
