"""Benchmarks (`python -m benchmarks.<name>`): they print rates measured in one run; no stage imports them."""
