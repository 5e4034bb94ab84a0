"""Run launchers for Metrify's Dagster instance."""

from metrify_assets.launcher.warm import WarmRunLauncher

__all__ = ["WarmRunLauncher"]
