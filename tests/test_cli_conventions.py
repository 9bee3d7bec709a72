"""The command line's everyday conventions, on real `python -m archspec` processes: --version,
shell completion, `ops NAME` (text and JSON, from the same code as docs/reference.md), help
text at 80 columns (no type labels on flags, no line broken before the terminal's edge), and
what a cold `check` / `report` imports (commands load on demand; nothing heavy)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import typer

import archspec
from archspec.blocks import BLOCKS
from archspec.commands import COMMANDS
from archspec.ops import OPS
from archspec.report.reference import block_doc, default_text, op_doc
from conftest import ROOT, run_cli, zoo_specs

ALL_COMMANDS = ["check", "report", *COMMANDS]


def _env(**extra) -> dict:
    return {**os.environ, **extra}


# ---- --version ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_package_version(flag):
    result = run_cli(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"archspec {archspec.__version__}\n"
    assert result.stderr == ""


# ---- shell completion ---------------------------------------------------------------------

# typer detects the shell from the process tree; this variable makes --show-completion take
# the shell as its value instead, so the test does not depend on the shell running pytest
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


@pytest.mark.parametrize("shell, line", [
    ("bash", "complete -o default -F _archspec_completion archspec"),
    ("zsh", "compdef _archspec_completion archspec"),
    ("fish", "complete --command archspec"),
])
def test_show_completion_prints_the_script_for_a_shell(shell, line):
    result = run_cli("--show-completion", shell, env=_env(**NO_DETECTION))
    assert result.returncode == 0, result.stderr
    assert line in result.stdout
    assert f"_ARCHSPEC_COMPLETE=complete_{shell}" in result.stdout


def _complete_bash(words: str) -> list[str]:
    parts = words.split(" ")
    result = run_cli(env=_env(_ARCHSPEC_COMPLETE="complete_bash", COMP_WORDS=words,
                              COMP_CWORD=str(len(parts) - 1)))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_offers_commands_options_and_op_names():
    assert _complete_bash("archspec ch") == ["check"]
    assert _complete_bash("archspec gr") == ["graph"]  # a command loaded on demand
    assert _complete_bash("archspec report --fo") == ["--format"]
    assert _complete_bash("archspec ops resid") == ["residual"]
    assert _complete_bash("archspec ops conv") == sorted(n for n in OPS if n.startswith("conv"))


# ---- ops NAME -----------------------------------------------------------------------------


def _settings_lines(doc: dict, text: str) -> None:
    """Every setting is one row: key, default as the reference shows it, then its type."""
    for row in doc["settings"]:
        pattern = rf"(?m)^  {re.escape(row['key'])} +{re.escape(default_text(row))} +" \
                  rf"{re.escape(row['type'].split()[0])}"
        assert re.search(pattern, text), (row, text)


def test_ops_name_describes_an_op_as_the_reference_does():
    result = run_cli("ops", "conv", env=_env(COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    doc, text = op_doc(OPS["conv"]), result.stdout
    flat = " ".join(text.split())  # wrapped to the terminal: compare the words
    assert text.startswith("conv (op, convolutions)\n")
    assert doc["summary"] in flat
    assert f"input: {doc['input']} output: {doc['output']} FLOPs: {doc['flops']}" in flat
    _settings_lines(doc, text)
    assert re.search(r"(?m)^  out +required +int ≥ 1$", text)
    assert re.search(r"(?m)^  stride +1 +int ≥ 1", text)
    for example in doc["examples"]:
        assert f"example:\n  {example}\n" in text + "\n"
    # the same description docs/reference.md shows
    reference = (ROOT / "docs" / "reference.md").read_text()
    section = reference.split('<a id="op-conv"></a>')[1].split("<a id=")[0]
    assert doc["summary"] in section and doc["examples"][0] in section


def test_ops_name_describes_a_block_with_its_shape_rule_and_examples():
    result = run_cli("ops", "residual", env=_env(COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    doc, text = block_doc(BLOCKS["residual"]), result.stdout
    flat = " ".join(text.split())
    assert text.startswith("residual (block)\n")
    assert doc["input"].startswith("(C, L), (C, H, W) or (C, D, H, W)")
    assert f"input: {doc['input']} output: {doc['output']}" in flat
    assert doc["output"].startswith("the body's output shape")
    _settings_lines(doc, text)
    assert "- residual: {id: block, preset: basic, out: 128, stride: 2}" in text
    assert "docs/reference.md#block-residual" in text


def test_a_shared_docstring_gives_each_block_its_own_shape_rule_and_example():
    dense, transition = block_doc(BLOCKS["dense"]), block_doc(BLOCKS["transition"])
    assert dense["output"].startswith("(C + layers·growth")
    assert transition["output"].startswith("(⌊C·compression⌋")
    assert all(e.lstrip().startswith("- dense") for e in dense["examples"])
    assert all(e.lstrip().startswith("- transition") for e in transition["examples"])


OP_KEYS = {"name", "kind", "family", "summary", "input", "output", "inputs", "onnx", "flops",
           "saved_for_backward", "notes", "settings", "examples"}
BLOCK_KEYS = {"name", "kind", "summary", "input", "output", "description", "settings", "examples"}
SETTING_KEYS = {"key", "type", "required", "default", "description"}


@pytest.mark.parametrize("name, keys", [("conv", OP_KEYS), ("add", OP_KEYS), ("residual", BLOCK_KEYS)])
def test_ops_name_json_is_the_documented_document(name, keys):
    result = run_cli("ops", name, "-f", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    expected = op_doc(OPS[name]) if name in OPS else block_doc(BLOCKS[name])
    assert doc == json.loads(json.dumps(expected))
    assert set(doc) == keys
    assert all(set(row) == SETTING_KEYS for row in doc["settings"])
    if name == "add":
        assert doc["inputs"]["min"] == 2 and doc["inputs"]["max"] > 2
    if name == "conv":
        stride = next(r for r in doc["settings"] if r["key"] == "stride")
        assert (stride["required"], stride["default"]) == (False, 1)


def test_ops_json_lists_every_op_and_block():
    result = run_cli("ops", "--format", "json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert set(listing) == {"ops", "blocks"}
    assert [e["name"] for e in listing["ops"]] == sorted(OPS)
    assert [e["name"] for e in listing["blocks"]] == sorted(BLOCKS)
    assert all(set(e) == {"name", "kind", "family", "summary"} and e["kind"] == "op" for e in listing["ops"])
    assert all(set(e) == {"name", "kind", "summary"} and e["kind"] == "block" for e in listing["blocks"])


def test_every_json_key_is_documented():
    text = (ROOT / "docs" / "json.md").read_text()
    ops_section = "".join(part.split("\n## ", 1)[0] for part in text.split("\n## ops")[1:])
    for key in OP_KEYS | BLOCK_KEYS | SETTING_KEYS | {"ops", "blocks", "min", "max"}:
        assert f"`{key}`" in ops_section, key


@pytest.mark.parametrize("name, hint", [("cnv", "did you mean 'conv'?"),
                                        ("residul", "did you mean 'residual'?"),
                                        ("zzzz", "`archspec ops` lists them")])
def test_an_unknown_name_is_one_line_exit_2(name, hint):
    for args in (["ops", name], ["ops", name, "-f", "json"]):
        result = run_cli(*args)
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr == f"error: unknown op or block '{name}'; {hint}\n"


# ---- help at 80 columns -------------------------------------------------------------------


def premature_breaks(text: str, width: int = 80) -> list[str]:
    """Lines of wrapped help that end before they had to: the next line continues the same
    text (same indentation, not a new `term  description` row) and its first word would have
    fitted (with a margin of 4 for the formatter's own borders). Box-drawing borders, as a
    rich panel draws them, count as spaces."""
    lines = [re.sub(r"[│╭╮╰╯─]", " ", line).rstrip() for line in text.splitlines()]
    found = []
    for line, following in zip(lines, lines[1:]):
        if not line or not following.strip():
            continue
        indent = len(following) - len(following.lstrip())
        columns = {len(line) - len(line.lstrip())} | {m.end() for m in re.finditer(r"\S {2,}(?=\S)", line)}
        is_row = re.match(r"\s*\S.*? {2,}\S", following) is not None  # `term  description`
        if indent in columns and not is_row:
            word = following.split()[0]
            if len(line) + 1 + len(word) <= width - 4:
                found.append(line.strip())
    return found


# what `archspec --help` printed before: docstrings' own line breaks kept inside a rich panel
BEFORE = """\
╭─ Commands ───────────────────────────────────────────────────────────────────╮
│ check   Validate specs: schema, references and every shape. Reports every    │
│         independent error of                                                 │
│         each file (with its code), not just the first. Exit 1 if any spec is │
│         invalid (2 if a --set                                                │
│         names no variable of a spec).                                        │
│ report  Per-layer output shape, parameters, MACs (and FLOPs), memory and     │
│         receptive field, with                                                │
│         totals; inference peak and training memory at --batch and --dtype.   │
│ ops     List the primitive ops and built-in blocks.                          │
╰──────────────────────────────────────────────────────────────────────────────╯
"""


def test_the_break_check_catches_the_old_help():
    assert premature_breaks(BEFORE) == ["independent error of", "invalid (2 if a --set", "receptive field, with"]
    assert premature_breaks("  check   Validate specs.\n  report  Per-layer shapes.\n") == []


@pytest.mark.parametrize("command", [None, *ALL_COMMANDS])
def test_help_reads_cleanly_at_80_columns(command):
    result = run_cli(*([command] if command else []), "--help", env=_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "<bool>" not in text
    assert max(map(len, text.splitlines())) <= 80, text
    assert premature_breaks(text) == [], text
    if command is None:  # every command listed, each with its whole summary sentence
        listed = re.findall(r"(?m)^  (\w+) {2,}(.*)$", text.split("Commands:")[1])
        assert [name for name, _ in listed] == ALL_COMMANDS
        assert all(summary.endswith(".") and not summary.endswith("...") for _, summary in listed), listed


def test_the_command_table_names_what_each_module_registers():
    modules = set(COMMANDS.values())
    for module in modules:
        family = typer.Typer()
        __import__(f"archspec.commands.{module}", fromlist=["register"]).register(family)
        names = {info.name for info in family.registered_commands}
        assert names == {n for n, m in COMMANDS.items() if m == module}, module


# ---- what a cold start imports ----------------------------------------------------------

# Runs `python -m archspec ARGS` and, at exit, writes every module the process loaded.
PROBE = r"""
import atexit, json, os, runpy, sys
atexit.register(lambda: open(os.environ["PROBE_OUT"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["archspec", *sys.argv[1:]]
runpy.run_module("archspec", run_name="__main__", alter_sys=True)
"""
HEAVY = ("networkx", "graphviz", "rich", "torch", "torchvision", "onnx", "onnxruntime", "onnxscript",
         "numpy", "pygls", "lsprotocol")


def _loaded(tmp_path, *args) -> list[str]:
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                            env=_env(PROBE_OUT=str(out)), timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("command", ["check", "report"])
def test_a_cold_check_or_report_imports_nothing_it_does_not_use(tmp_path, command):
    loaded = _loaded(tmp_path, command, "specs/resnet152.yaml")
    assert "archspec.check" in loaded or "archspec.report.command" in loaded  # the probe saw the run
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert heavy == [], heavy
    commands = [m for m in loaded if m.startswith("archspec.commands.") and m != "archspec.commands.options"]
    assert commands == [], commands  # no other command's module
    unused = ["archspec.compile", "archspec.lsp", "archspec.report.diagram", "archspec.report.reference",
              "archspec.spec.jsonschema", "archspec.io" if command == "check" else "archspec.compile"]
    if command == "check":  # the summary needs params and MACs only, not the full analysis
        unused += ["archspec.graph.analyze", "archspec.graph.memory", "archspec.graph.receptive",
                   "archspec.report"]
    assert [m for m in loaded if any(m == u or m.startswith(u + ".") for u in unused)] == []


def test_importing_archspec_loads_only_what_is_used(tmp_path):
    code = ("import sys, archspec; before = sorted(m for m in sys.modules if m.startswith('archspec')); "
            "spec = archspec.load('specs/resnet18.yaml'); graph = archspec.expand(spec); "
            "print(before, archspec.analyze(graph).totals['params'], archspec.SpecError.__name__, "
            "'build' in dir(archspec))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['archspec']", "11689512", "SpecError", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        archspec.nonesuch  # noqa: B018


def test_check_summary_counts_as_the_full_analysis():
    from archspec.check import check_file
    from archspec.graph.analyze import analyze

    for path in zoo_specs():
        result = check_file(path)
        assert result.graph is not None, path
        summary, totals = result.to_json()["summary"], analyze(result.graph).totals
        assert (summary["params"], summary["macs"]) == (totals["params"], totals["macs"]), path


def test_the_editor_shows_the_same_settings_as_the_reference():
    from archspec.lsp import registry_docs
    from archspec.report.reference import settings

    for name in [*OPS, *BLOCKS]:
        owner = OPS.get(name) or BLOCKS[name]
        rows = settings(type(owner).Params, {}, getattr(owner, "nested", ()))
        shown = registry_docs.settings(name)
        assert [(s.key, s.type, s.default, s.required) for s in shown] == \
            [(r["key"], r["type"], default_text(r, "`"), r["required"]) for r in rows], name


def test_only_check_and_report_run_without_the_garbage_collector():
    """`main` pauses the cyclic collector for a fast start; any other command (the language
    server runs for hours) gets it back before it runs."""
    import gc

    from typer.main import get_command

    from archspec import cli

    group = get_command(cli.app)
    ctx = group.context_class(group)
    gc.disable()
    cli._gc_paused[0] = True
    try:
        group.resolve_command(ctx, ["check", "x.yaml"])
        group.resolve_command(ctx, ["report", "x.yaml"])
        assert not gc.isenabled()
        assert group.resolve_command(ctx, ["lsp"])[0] == "lsp"
        assert gc.isenabled() and not cli._gc_paused[0]
    finally:
        gc.unfreeze()
        gc.enable()
        cli._gc_paused[0] = False


@pytest.mark.parametrize("name", sorted([*OPS, *BLOCKS]))
def test_every_op_and_block_has_a_shape_rule_and_an_example(name):
    from archspec.commands.ops import describe

    doc = describe(name)
    assert doc["input"] and doc["output"], f"{name}: its docstring needs 'Input shape: … Output shape: …'"
    assert doc["examples"], f"{name}: its docstring needs a ```yaml example"
    json.dumps(doc)  # a JSON document as it is
