"""Benchmarks (DESIGN §10): run by hand or `make bench`, never by the test suite."""
