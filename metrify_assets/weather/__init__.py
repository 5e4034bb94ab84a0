"""The weather room: degree-day bases and, to come, environmental classes and weather impact."""
