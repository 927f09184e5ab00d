"""Send records to Kafka at a paced rate with a progress bar (used by the invoke tasks)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from typing import TextIO

from fintank.engine import kafka


class Progress:
    """A one-line progress bar on a terminal (plain lines every 10% elsewhere)."""

    def __init__(self, total: int, label: str, out: TextIO = sys.stderr) -> None:
        self.total, self.label, self.out = total, label, out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    def update(self, done: int) -> None:
        if self.total <= 0:
            return
        frac = done / self.total
        if self.tty:
            bar = "#" * int(frac * 30)
            rate = done / max(time.monotonic() - self.started, 1e-9)
            self.out.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} {rate:,.0f}/s")
            self.out.flush()
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            self.out.write(f"{self.label}: {done}/{self.total}\n")

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


async def send_paced(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    total: int,
    rate: float = 0,
    label: str = "sending",
) -> int:
    """Send (key, value) records; ``rate`` > 0 paces them per second. Returns how many were sent."""
    producer = kafka.producer(kafka.KafkaSettings(bootstrap, ""), linger_ms=5)
    await producer.start()
    progress = Progress(total, label)
    sent = 0
    started = time.monotonic()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if sent % 500 == 0 or sent == total:
                progress.update(sent)
        await producer.flush()
    finally:
        progress.update(sent)
        progress.close()
        await producer.stop()
    return sent
