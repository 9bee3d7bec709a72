"""Training proof: specs/lenet5_digits.yaml, compiled by archspec, learns scikit-learn's digits.

The full example (examples/train_digits.py, 30 epochs) reaches ≥ 97% held-out accuracy; this
runs a shortened version and asks for ≥ 90%."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def load_example():
    spec = importlib.util.spec_from_file_location("train_digits", ROOT / "examples" / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lenet5_digits_trains_to_90_percent(tmp_path):
    example = load_example()
    assert example.DEFAULT_SPEC == ROOT / "specs" / "lenet5_digits.yaml"
    threads = torch.get_num_threads()
    try:
        result = example.train(epochs=6, seed=0, threads=1, save=str(tmp_path / "digits.pth"), log=None)
    finally:
        torch.set_num_threads(threads)
    assert result["accuracy"] >= 0.90, result["accuracy"]
    state = torch.load(tmp_path / "digits.pth", weights_only=True)
    assert set(state) == set(result["model"].state_dict())


def test_main_parses_its_options(tmp_path, capsys):
    example = load_example()
    threads = torch.get_num_threads()
    try:
        assert example.main(["--epochs", "1", "--batch-size", "128", "--seed", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "held-out accuracy" in capsys.readouterr().out
