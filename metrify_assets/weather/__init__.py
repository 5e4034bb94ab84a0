"""The weather room: degree-day bases, environmental classes (`conditions.py`) and the settings of the
weather-sensitivity regression (`sensitivity.py`), all passed to dbt as vars."""
