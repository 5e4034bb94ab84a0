"""Day-ahead load forecasts per region x segment: features known at the forecast's origin, two seasonal
baselines, a quantile gradient-boosting model, rolling-origin backtests, and the Dagster asset that
stores tomorrow's forecast (docs/forecasting.md)."""
