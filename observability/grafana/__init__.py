"""Grafana for LogOps: dashboards written with grafana-foundation-sdk, rendered to JSON."""
