"""Scoring forecasts against held-out truth, M4-style, and the classical baselines."""
