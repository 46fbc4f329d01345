"""Metrics, result loading, best-config export, figures and reports."""
