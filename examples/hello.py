import orjson

from fintank import Batch, Bolt, Out, Topology


class Mid(Bolt):
    inputs = ("ticks",)
    outputs = ("mids",)

    def process(self, batch: Batch, now: float) -> Out:
        out = Out()
        for tick in batch.values():
            mid = (tick["bid"] + tick["ask"]) / 2
            out.emit("mids", tick["symbol"], {"symbol": tick["symbol"], "mid": mid})
        return out


topology = Topology("hello")
topology.stream("ticks", decode=orjson.loads, key="symbol")
topology.stream("mids", key="symbol")
topology.stream("deadletters")
topology.bolt(Mid)
