"""Benchmarks: python -m benchmarks.<name> prints markdown tables (ratios from one run)."""
