"""fintank's stream engine: consumption, tasks, state and commits over public aiokafka APIs."""

from fintank.engine.assignor import CopartitionedAssignor, Routing
from fintank.engine.engine import (
    Engine,
    EngineConfig,
    EngineError,
    Fenced,
    KafkaClients,
)
from fintank.engine.kafka import KafkaSettings
from fintank.engine.spec import Group, Processor, Table
from fintank.engine.store import PartitionStore
from fintank.engine.task import Batch, Context, Lane, Task

__all__ = [
    "Batch",
    "Context",
    "CopartitionedAssignor",
    "Engine",
    "EngineConfig",
    "EngineError",
    "Fenced",
    "Group",
    "KafkaClients",
    "KafkaSettings",
    "Lane",
    "PartitionStore",
    "Processor",
    "Routing",
    "Table",
    "Task",
]
