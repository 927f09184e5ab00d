"""fintank: real-time market data and order flow on Kafka, as Storm-style bolts run by Faust."""

__version__ = "0.1.0"
