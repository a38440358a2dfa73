"""The graph IR: the contract between frontends, analyses and backends."""
from archc.ir.graph import BlockInstance, Graph, Node, Value
from archc.ir.types import DTYPES, Dim, TensorType

__all__ = ["BlockInstance", "Graph", "Node", "Value", "TensorType", "Dim", "DTYPES"]
