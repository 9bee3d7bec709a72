"""Built-in blocks. Importing this package registers them in `BLOCKS`."""
from archspec.blocks import dense, inception, residual, se, seq  # noqa: F401
from archspec.blocks.registry import BLOCKS, Block

__all__ = ["BLOCKS", "Block"]
