"""A short InfluxDB outage loses no point: the persister retries until the real server is back."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fintank.records import Tick
from fintank.sinks.influx import InfluxPersister
from fintank.sinks.lines import BidAskLines
from fintank.sinks.query import influx_count
from fintank.sinks.transports import InfluxV1Transport
from fintank.stack import Stack, procs
from tests.integration.conftest import Env


def test_points_written_during_an_outage_arrive_after_it(env: Env) -> None:
    # A dedicated InfluxDB, so stopping it cannot disturb the shared test stack.
    settings = replace(
        env.settings,
        influx_port=18186,
        influx_url="http://127.0.0.1:18186",
        state_dir=env.settings.state_dir + "/outage",
    )
    influx = Stack(settings)
    influx.start_influxdb(print)
    influx.create_database()
    lines = BidAskLines().lines(
        Tick(f"OUT{env.suffix}", "NYSE", 10.0, 10.1, 1763722800.0 + i * 0.001) for i in range(3000)
    )

    async def scenario() -> InfluxPersister:
        persister = InfluxPersister(
            InfluxV1Transport(settings.influx_url, settings.influx_database),
            batch_size=500,
            max_buffer=5000,
            max_backoff=0.5,
        )
        persister.add(lines[:1000])
        await persister.flush()
        procs.stop(influx.influxdb.pid_file)  # the outage begins
        persister.add(lines[1000:])
        writing = asyncio.ensure_future(persister.flush())
        await asyncio.sleep(2.0)
        assert not writing.done()  # still retrying: nothing was dropped
        await asyncio.to_thread(influx.start_influxdb, print)  # the outage ends
        await asyncio.wait_for(writing, timeout=60)
        await persister.close()
        return persister

    try:
        persister = asyncio.run(scenario())
        assert persister.stats.retries > 0
        assert persister.stats.written == 3000
        assert influx_count(settings.influx_url, settings.influx_database, "bid_ask", "bid") == 3000
    finally:
        procs.stop(influx.influxdb.pid_file)
