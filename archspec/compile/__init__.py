"""Compilation to PyTorch and ONNX (these modules import torch), and ONNX Runtime sessions
(`runtime.py`, which imports neither torch nor the rest of this package)."""
