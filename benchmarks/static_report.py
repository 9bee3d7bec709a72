"""Cold start of `check` and `report`, a static report against torchinfo's summary, and
scaling with depth.

1. `archspec check` and `archspec report` of specs/resnet152.yaml in fresh processes, beside
   `python -c pass` (the interpreter's own start) in the same run, interleaved, medians.
   Target: both under 0.25 s.
2. `archspec report specs/resnet152.yaml` in a fresh process against torchinfo.summary of
   torchvision's resnet152 in a fresh process (what a user waits for at the shell), timed
   interleaved, medians. Target: archspec at least 15x faster.
3. `archspec check` on generated chains of N residual blocks (N = 250 ... 8000, about 7 ops
   each): time per op should stay flat (linear scaling).

    python benchmarks/static_report.py [--repeats 5] [--no-torchinfo]

The figures depend on whether Python may cache bytecode: with PYTHONDONTWRITEBYTECODE set,
every run compiles archspec's sources again (the script says which case it measured).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCHINFO = ("import torchinfo, torchvision; "
             "torchinfo.summary(torchvision.models.resnet152(), input_size=(1, 3, 224, 224), verbose=0)")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def interleaved(commands: dict, repeats: int) -> dict:
    """Median seconds per command label, each round running every command once, in a rotating
    order (the machines are noisy)."""
    times: dict = {label: [] for label in commands}
    labels = list(commands)
    for i in range(repeats):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            times[label].append(timed(commands[label]))
    return {label: statistics.median(values) for label, values in times.items()}


def cold_check_and_report(repeats: int) -> None:
    spec = "specs/resnet152.yaml"
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                f"archspec check {spec}": [sys.executable, "-m", "archspec", "check", spec],
                f"archspec report {spec}": [sys.executable, "-m", "archspec", "report", spec]}
    medians = interleaved(commands, repeats)
    cached = "off (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"cold start (median of {repeats}, interleaved; bytecode cache {cached})")
    for label, seconds in medians.items():
        print(f"  {label:40} {seconds:6.3f} s")
    print("  target: check and report under 0.250 s\n")


def cold_start(repeats: int) -> None:
    ours_cmd = [sys.executable, "-m", "archspec", "report", "specs/resnet152.yaml"]
    theirs_cmd = [sys.executable, "-c", TORCHINFO]
    ours, theirs = [], []
    for i in range(repeats):
        first, second = (ours_cmd, theirs_cmd) if i % 2 == 0 else (theirs_cmd, ours_cmd)
        a, b = timed(first), timed(second)
        ours.append(a if first is ours_cmd else b)
        theirs.append(b if first is ours_cmd else a)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"cold report of resnet152 (median of {repeats}, interleaved)")
    print(f"  archspec report       {o:7.2f} s")
    print(f"  torchinfo.summary     {t:7.2f} s")
    print(f"  speed-up              {t / o:7.1f}x  (target >= 15x)")


def chain_spec(blocks: int) -> str:
    return (f"archspec: 1\nname: chain{blocks}\ninput: [16, 8, 8]\nlayers:\n"
            f"  - residual: {{id: body, preset: basic, out: 16, repeat: {blocks}}}\n")


def scaling(sizes) -> None:
    print("\narchspec check on deep generated nets (one process each)")
    print(f"  {'blocks':>7} {'ops':>8} {'seconds':>8} {'us/op':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"chain{n}.yaml"
            path.write_text(chain_spec(n))
            seconds = timed([sys.executable, "-m", "archspec", "check", "-q", str(path)])
            ops = n * 7
            print(f"  {n:>7} {ops:>8} {seconds:8.2f} {seconds / ops * 1e6:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="250,1000,4000,8000")
    parser.add_argument("--no-torchinfo", action="store_true", help="skip the comparison with torchinfo")
    parser.add_argument("--cold-only", action="store_true", help="only the cold start of check and report")
    args = parser.parse_args()
    cold_check_and_report(args.repeats)
    if args.cold_only:
        return
    if not args.no_torchinfo:
        cold_start(args.repeats)
    scaling([int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
