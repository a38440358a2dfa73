"""Analyses over the IR: pure functions of a graph (no torch, no YAML)."""
