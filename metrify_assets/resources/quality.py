"""Quality settings as a resource, so assets and checks get them passed in, not from the environment."""

from __future__ import annotations

import dagster as dg

DEFAULT_ALERT_THRESHOLD = 95.0


class QualityResource(dg.ConfigurableResource):
    """`alert_threshold`: a batch whose quality score is below it raises a quality alert
    (METRIFY_QUALITY_ALERT_THRESHOLD)."""

    alert_threshold: float = DEFAULT_ALERT_THRESHOLD
