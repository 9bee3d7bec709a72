"""Compilation to PyTorch and ONNX. Everything here imports torch; the static path never does."""
