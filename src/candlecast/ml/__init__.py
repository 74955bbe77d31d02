"""Forecasting: causal features, targets, training and evaluation. Pure functions, no I/O."""
