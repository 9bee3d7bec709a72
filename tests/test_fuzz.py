"""Fuzzing `archspec check` with mutants of the zoo specs (tests/fuzzing.py): whatever the
input, a result in bounded time, never a traceback, a crash or an internal error, and for
what is accepted, a built module that is what the report says.

Fixed seed and budget: MUTANTS mutants (>= 2,000) through the check API in-process, a sample
through the CLI in-process, a sample through real `archspec check` processes, and a sample of
the accepted mutants compiled with torch: parameter count and output shapes (every output)
equal the static figures.
"""
from __future__ import annotations

import collections
import json
import random
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from conftest import ROOT, zoo_specs
from fuzzing import mutant

SEED = 20261123
MUTANTS = 2200
PER_MUTANT_S = 30.0  # a mutant may legitimately expand to 10^5 nodes (seconds); the median is milliseconds
CLI_SAMPLE = 250
PROCESS_SAMPLE = 120
BUILD_SAMPLE = 25
pytestmark = pytest.mark.slow  # about 80 s on one core, most of it the 2,200 checks

BUILD_MEMORY = 256 * 2 ** 20  # bytes (archspec.resources estimate at batch 2)
LOCATED = re.compile(r"^.+\.yaml:\d+:\d+: error: .+ \[AS\d{3}\]$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The mutants as files, beside copies of the zoo (so `extends` has something to find)."""
    root = tmp_path_factory.mktemp("fuzz")
    zoo = [(path.stem, path.read_text()) for path in zoo_specs()]
    for stem, text in zoo:
        (root / f"{stem}.yaml").write_text(text)
    (root / "base.yaml").write_text(dict(zoo)["lenet5"])
    (root / "loop.yaml").write_text("archspec: 1\nextends: loop.yaml\n")
    paths = []
    for i in range(MUTANTS):
        rng = random.Random(SEED * 1_000_003 + i)
        stem, text = zoo[rng.randrange(len(zoo))]
        path = root / f"m{i:05d}_{stem}.yaml"
        path.write_bytes(mutant(rng, text))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def checked(corpus):
    """Every mutant through the check API: {path: (CheckResult or the exception's traceback, seconds)}."""
    from archspec.check import check_file

    results = {}
    for path in corpus:
        start = time.perf_counter()
        try:
            result = check_file(path)
        except Exception:  # noqa: BLE001 - the test reports it
            result = traceback.format_exc()
        results[path] = (result, time.perf_counter() - start)
    return results


def test_check_api_on_every_mutant(checked):
    from archspec.errors import CODES
    from archspec.graph.analyze import analyze
    from archspec.report.diagram import default_depth, to_dot
    from archspec.report.render import RENDERERS

    assert len(checked) >= 2000
    crashes = {p.name: r for p, (r, _) in checked.items() if isinstance(r, str)}
    assert not crashes, next(iter(crashes.items()))
    slow = {p.name: round(t, 2) for p, (_, t) in checked.items() if t > PER_MUTANT_S}
    assert not slow, slow
    codes = collections.Counter()
    for path, (result, _) in checked.items():
        for error in result.errors:
            codes[error.code] += 1
            assert error.code in CODES and error.code != "AS900", (path.name, str(error))
            loc = error.loc
            assert loc is not None and loc.line >= 1 and loc.col >= 1, (path.name, str(error))
            where = Path(loc.file).resolve()  # the mutant, or a file it extends
            assert where == path.resolve() or where.parent == path.parent.resolve(), (path.name, str(error))
            str(error), error.to_json()
        if result.ok:
            report = analyze(result.graph)  # what `report` prints, in every format
            for render in RENDERERS.values():
                render(report)
            result.to_json()
            if len(result.graph.nodes) <= 2000:  # what `graph` draws
                to_dot(result.graph, default_depth(result.graph), "TB")
    accepted = sum(r.ok for r, _ in checked.values())
    times = sorted(t for _, t in checked.values())
    print(f"{len(checked)} mutants: {accepted} accepted, {len(checked) - accepted} refused; "
          f"median {times[len(times) // 2] * 1e3:.1f} ms, max {times[-1]:.2f} s; codes {dict(codes.most_common())}")
    assert accepted >= 100 and len(checked) - accepted >= 1000  # the fuzzer reaches both sides


def test_cli_in_process_sample(corpus):
    from typer.testing import CliRunner

    from archspec.cli import app

    runner = CliRunner()
    for path in random.Random(SEED).sample(corpus, CLI_SAMPLE):
        result = runner.invoke(app, ["check", "-q", str(path)])
        assert result.exit_code in (0, 1, 2), (path.name, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            path.name, "".join(traceback.format_exception(result.exception)))
        assert "AS900" not in result.output and "Traceback" not in result.output, (path.name, result.output)
        if result.exit_code == 1:  # located in the mutant or in a file it extends
            assert LOCATED.match(result.output.splitlines()[0]), (path.name, result.output)


def test_real_processes_sample(corpus):
    sample = random.Random(SEED + 1).sample(corpus, PROCESS_SAMPLE)
    done = subprocess.run([sys.executable, "-m", "archspec", "check", "--format", "json", *map(str, sample)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-2000:]
    files = json.loads(done.stdout)["files"]
    assert [f["file"] for f in files] == list(map(str, sample))
    for entry in files:
        for error in entry["errors"]:
            assert error["code"] != "AS900" and error["line"] >= 1, (entry["file"], error)
    for path in sample[:8]:  # one process each, text output
        one = subprocess.run([sys.executable, "-m", "archspec", "check", str(path)], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
        assert one.returncode in (0, 1, 2) and "Traceback" not in one.stderr and "AS900" not in one.stderr
        if one.returncode == 1:
            assert LOCATED.match(one.stderr.splitlines()[0]), one.stderr


def test_accepted_mutants_build_as_reported(checked, one_torch_thread):
    """Static = runtime on accepted mutants small enough to run: the compiled module has the
    report's parameters and every output the static shape (batch 2)."""
    import torch

    import archspec
    from archspec.compile.torch_fx import module_outputs
    from archspec.resources import memory_estimate

    candidates = [(p, r.graph) for p, (r, _) in sorted(checked.items()) if not isinstance(r, str) and r.ok]
    small = [(p, g) for p, g in candidates
             if len(g.nodes) <= 600 and memory_estimate(g, 2, training_heads=True) <= BUILD_MEMORY]
    sample = random.Random(SEED + 2).sample(small, min(BUILD_SAMPLE, len(small)))
    assert len(sample) >= 10, f"only {len(small)} accepted mutants are small enough to run"
    for k, (path, graph) in enumerate(sample):
        heads = k % 2 == 1
        model = archspec.build(graph, seed=0, training_heads=heads).eval()
        report = archspec.analyze(graph)
        want = report.totals["params"] + (report.training_only.get("params", 0) if heads else 0)
        assert sum(p.numel() for p in model.parameters()) == want, path.name
        with torch.inference_mode():
            out = model(torch.randn(2, *graph.input_shape))
        outs = out if isinstance(out, tuple) else (out,)
        names = module_outputs(graph, heads)
        assert [tuple(o.shape) for o in outs] == [(2, *graph.shape(n)) for n in names], path.name
