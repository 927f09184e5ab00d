"""Sinks: where fintank's records leave the stream (InfluxDB line protocol)."""
