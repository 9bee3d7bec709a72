"""Primitive ops. Importing this package registers every op family in `OPS`."""
from archspec.ops import activation, affine, channels, conv, dense, merge, norm, pool, resize  # noqa: F401
from archspec.ops.registry import OPS, Op, OpParams

__all__ = ["OPS", "Op", "OpParams"]
