"""Shared test factories and hypothesis strategies (one module per concept)."""
