"""Day-ahead load forecasts per region x segment: features known at the forecast's origin, three
baselines, a quantile gradient-boosting model with conformal intervals, rolling-origin backtests, and
the Dagster asset that stores the next day's forecast (docs/forecasting.md)."""
