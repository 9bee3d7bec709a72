"""Cold `archspec run resnet18.onnx`: a new process each time, as on a deployment machine,
beside the floor a Python process and ONNX Runtime's import set (and, for scale, importing torch,
which this path no longer does).

Exports resnet18 once to a temporary directory, then times each command in a fresh process,
interleaved (the machines are noisy), and prints medians. The run's own JSON gives the session
creation and inference times. Target: the cold run under 1.5 s, session creation included.

    python benchmarks/run_cold.py [--repeats 5] [--no-torch]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.5


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def export_resnet18(directory: Path) -> Path:
    model = directory / "resnet18.onnx"
    print("exporting specs/resnet18.yaml once (verified)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "archspec", "export", "specs/resnet18.yaml", "-o", str(model)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true", help="skip the `import torch` row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archspec-run-cold-") as tmp:
        model = export_resnet18(Path(tmp))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import onnxruntime'": [sys.executable, "-c", "import onnxruntime"],
            "archspec run resnet18.onnx -f json": [sys.executable, "-m", "archspec", "run", str(model),
                                                   "-f", "json"],
        }
        if not args.no_torch:
            commands["python -c 'import torch'"] = [sys.executable, "-c", "import torch"]
        times = {label: [] for label in commands}
        inner = []
        order = list(commands.items())
        for i in range(args.repeats):
            for label, cmd in (order if i % 2 == 0 else order[::-1]):
                seconds, out = timed(cmd)
                times[label].append(seconds)
                if label.startswith("archspec"):
                    inner.append(json.loads(out)["timing_ms"])
    print(f"cold start, new process each, median of {args.repeats} interleaved runs "
          f"(python {sys.version.split()[0]})")
    for label, values in times.items():
        print(f"  {label:<38} {statistics.median(values):6.2f} s   "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    run = statistics.median(times["archspec run resnet18.onnx -f json"])
    print(f"  inside the run: session creation {statistics.median(t['session'] for t in inner):.0f} ms, "
          f"inference (batch 1, 224x224) {statistics.median(t['run'] for t in inner):.0f} ms")
    print(f"  target: run under {TARGET_S} s — {'met' if run < TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
