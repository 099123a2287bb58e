"""Benchmark of the ari component (see __main__)."""
