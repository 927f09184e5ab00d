"""fintank: real-time market data and order flow on Kafka, as Storm-style bolts run by Faust.

The public API: a `Bolt` (one partition's batches in, an `Out` out), its
`Table` state, and a `Topology` that names the streams and runs the bolts::

    from fintank import Batch, Bolt, Out, Topology
"""

__version__ = "0.2.0"

from fintank.bolt import Batch, Bolt, Out, State, Table
from fintank.records import DeadLetter
from fintank.topology import Request, Response, Stream, Topology, TopologyError

__all__ = [
    "Batch",
    "Bolt",
    "DeadLetter",
    "Out",
    "Request",
    "Response",
    "State",
    "Stream",
    "Table",
    "Topology",
    "TopologyError",
    "__version__",
]
