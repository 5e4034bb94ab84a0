"""Run launchers for Metrify's Dagster instance."""

from metrify_platform.launcher.warm import WarmRunLauncher

__all__ = ["WarmRunLauncher"]
