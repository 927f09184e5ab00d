"""Analytics bolts: candles, indicators, signals and alerts, all pure.

Every function here takes its state and a value and returns the new state and
what it emits; none does I/O or reads a clock (wall-clock ``now`` is passed
in), so the Faust agents that run them stay thin and every rule of
CONTRACT.md is testable with plain values:

- `fintank.analytics.candles`: ticks -> OHLC candles per symbol and interval.
- `fintank.analytics.indicators`: closed candles -> SMA, EMA, RSI.
- `fintank.analytics.signals`: indicators -> RSI crossing signals.
- `fintank.analytics.alerts`: ticks -> "hot mover" alerts.
- `fintank.analytics.points`: candles -> InfluxDB line protocol.
- `fintank.analytics.http`: the web server's candle and instrument answers.
"""
