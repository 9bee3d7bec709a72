"""What README.md and docs/*.md point at exists: relative links (and their #anchors), the
repository paths they name, and every option of every `archspec <command>` they show. The
durable fix for drift between the docs and the code."""
import re

import pytest
import typer.main

from archspec.cli import app
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A path into the repository, as the docs name files: `docs/format.md`, tests/test_fuzz.py
# (not `specs/x.yaml:14:7:`, the file of an example message).
REPO_PATH = re.compile(r"(?<![\w./-])((?:\.ci|archspec|benchmarks|docs|examples|schemas|specs|tests)"
                       r"/[\w./-]*\w\.(?:md|py|yaml|yml|json|toml)|\.ci/run)\b(?!:\d)")
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
SPAN = re.compile(r"`([^`\n]+)`")
INVOCATION = re.compile(r"^(?:\$ )?(?:python -m )?archspec ([a-z][a-z-]*)(.*)$")


def commands() -> dict:
    """command name -> its option strings (long and short)."""
    group = typer.main.get_command(app)
    ctx = typer.Context(group)  # commands load on demand: ask the group, as click does
    return {name: {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
            for name in group.list_commands(ctx) for cmd in [group.get_command(ctx, name)]}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path) -> set:
    text = FENCE.sub("", path.read_text())
    found = {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def links():
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                yield pytest.param(doc, target, id=f"{doc.name}:{target}")


@pytest.mark.parametrize("doc,target", list(links()))
def test_relative_link_exists(doc, target):
    file, _, anchor = target.partition("#")
    path = (doc.parent / file).resolve() if file else doc
    assert path.exists(), f"{doc.name} links to {target}, which does not exist"
    if anchor and path.suffix == ".md":
        assert anchor in anchors(path), f"{doc.name} links to {target}: no such heading or anchor"


def test_named_repository_paths_exist():
    missing = [f"{doc.relative_to(ROOT)}: {name}" for doc in DOCS
               for name in sorted(set(REPO_PATH.findall(doc.read_text()))) if not (ROOT / name).exists()]
    assert missing == []


def invocations(text: str):
    """(command, option-ish words) of every `archspec CMD ...` in code: fenced blocks (line
    continuations joined, comments cut) and inline code spans."""
    lines = []
    for block in FENCE.findall(text):
        lines += block.replace("\\\n", " ").splitlines()
    lines += SPAN.findall(FENCE.sub("", text))
    for line in lines:
        match = INVOCATION.match(line.strip())
        if match:
            words = match.group(2).split(" #")[0].split()
            options = [w for w in words if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", w)]
            yield match.group(1), [w.split("=")[0] for w in options]


def test_every_documented_command_and_option_exists():
    known = commands()
    problems, seen = [], 0
    for doc in DOCS:
        for command, options in invocations(doc.read_text()):
            seen += 1
            if command not in known:
                problems.append(f"{doc.name}: archspec {command} (no such command)")
                continue
            problems += [f"{doc.name}: archspec {command} {opt} (no such option)"
                         for opt in options if opt not in known[command] | {"--help"}]
    assert seen > 20  # the README's tour alone shows more
    assert problems == []


def test_the_checkers_see_what_is_wrong(tmp_path):
    """The checks can fail: an option no command has, a command that does not exist, a path
    or anchor that is not there."""
    assert slug("Counting conventions") == "counting-conventions" and slug("`graph` & co.") == "graph--co"
    assert "counting-conventions" in anchors(ROOT / "docs" / "format.md")
    assert REPO_PATH.findall("see docs/counting.md, `tests/test_x.py`; specs/x.yaml:14:7: error") == \
        ["docs/counting.md", "tests/test_x.py"]
    known = commands()
    found = list(invocations("```console\n$ archspec report a.yaml --no-such-flag -o x  # --ok\n```\n"
                             "and `archspec frobnicate x.yaml`"))
    assert found == [("report", ["--no-such-flag", "-o"]), ("frobnicate", [])]
    assert "--no-such-flag" not in known["report"] and "frobnicate" not in known
    assert "--allow-outside" in known["diff"]


def test_docs_named_in_the_code_exist():
    """Docstrings and messages point readers at docs/*.md; those files must exist (a registry
    docstring once pointed at a docs/counting.md that never did)."""
    missing = sorted({f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / "archspec").rglob("*.py")
                      for name in re.findall(r"\bdocs/[\w.-]+\.md\b", path.read_text())
                      if not (ROOT / name).exists()})
    assert missing == []


def test_every_command_taking_a_spec_takes_allow_outside():
    """The AS308 hint and docs/format.md offer `--allow-outside` on every command that reads a
    spec; a command that reads one without the option would make the hint a lie."""
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    takes_files = {name for name in group.list_commands(ctx) if name != "ops"  # ops NAME: no file
                   and any(p.param_type_name == "argument" for p in group.get_command(ctx, name).params)}
    assert {"check", "report", "diff", "graph", "sizes", "build", "export"} <= takes_files
    assert [n for n in sorted(takes_files) if "--allow-outside" not in commands()[n]] == []
