"""A mutation fuzzer for spec files, used by tests/test_fuzz.py.

`mutant(rng, text)` takes a zoo spec's text and returns the bytes of a mutant: one to three
structural mutations of the parsed YAML (delete, duplicate or insert layers; numbers and
strings replaced by edge values; keys swapped or misspelt; ids renamed to reserved or hostile
names; `from`, `output`, `training_only`, `repeat` rewired; layers nested deeply; templates,
variables, expressions, `extends` and input shapes replaced), then, for some mutants, a
textual one (YAML anchors, tags, merge keys, several documents, tabs, a BOM, NUL and invalid
UTF-8 bytes, duplicate keys, truncation, flipped bytes, flow nesting thousands deep).
Everything is drawn from the given `random.Random`, so a seed reproduces a mutant exactly.
"""
from __future__ import annotations

import copy
import random

import yaml

EDGE_NUMBERS = [0, -1, 1, 2, 3, 7, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 2 ** 63, 10 ** 400, 1e308,
                -1e308, 1e-308, 0.5, -0.0, float("inf"), float("nan")]
EDGE_STRINGS = ["", " ", "x" * 100_000, "$nope", "${1/0}", "${2**64}", "${s * 100000000 * 100}", "${max()}",
                "${int(1e999)}", "${(-8)**0.5}", "${" + "1+" * 300 + "1}", "${" + "(" * 200 + "1" + ")" * 200 + "}",
                "${__import__('os').system('true')}", "${a.b}", "${[1]*9}", "${lambda: 1}", "${'a' % 3}",
                "\x00", "é", "a\nb", "forward", "__init__", "input", "../x", "${9 ** 9 ** 9}", "$classes",
                "${classes * 2}", "${1e308 * 10}", "${-2**53}", "${round(1e300)}", "${10 // 0.0}"]
EDGE_OTHERS = [None, True, False, [], {}, [[[]]], {"a": {"b": {}}}, [1, 2, 3], [3, 0, 0], {"conv": {}}]
HOSTILE_NAMES = ["forward", "training", "eval", "__init__", "class", "def", "lambda", "graph", "self", "code",
                 "input", "", "a b", 'x")\nimport os\n#', "a.b", "é", "1x", "-a", "x" * 129, "a\n", "_modules",
                 "meta", "torch", "getattr", "x", "block1-0", "0", "None", "state_dict", "__class__"]
LAYER_POOL = [
    "relu", "flatten", "identity", {"conv": {"out": 4, "kernel": 3}}, {"conv": {"out": 0, "kernel": 1}},
    {"maxpool": {"kernel": 2}}, {"linear": {"out": 3}}, {"batchnorm": {}}, {"dropout": {"p": 1.5}},
    {"add": {"from": ["input", "input"]}}, {"concat": {"from": ["input"]}}, {"mul": {"from": ["x", "y"]}},
    {"seq": {"layers": []}}, {"seq": {"layers": ["relu"], "repeat": 3}},
    {"residual": {"body": [{"conv": {"out": 8, "kernel": 3, "stride": 2, "padding": 1}}]}},
    {"inception": {"branches": {"a": "relu", "b": [{"conv": {"out": 2, "kernel": 1}}]}}},
    {"se": {"reduction": 0}}, {"upsample": {"scale": 2 ** 40}}, {"global_avgpool": {}},
    {"conv_transpose": {"out": 1, "kernel": 1, "stride": 2 ** 52}}, {"relu": {"repeat": 20000}},
    {"relu": {"repeat": 100001}}, {"upsample": {"scale": 2 ** 20, "repeat": 40}},
    {"conv": {"out": 1, "kernel": 1, "stride": 2 ** 53 - 1, "repeat": 50}},
    {"unknown_op": {}}, {"conv": "not a mapping"}, {"conv": {"out": 4, "kernel": 3, "groups": 3}},
    {"relu": {"output": True}}, {"conv": {"out": 2, "kernel": 1, "training_only": True}},
]
FROM_VALUES = ["input", "nowhere", [], ["input", "input", "input"], 3, None, "layer1.0.conv1", "fc"]
EXTENDS = ["base.yaml", "../base.yaml", "/etc/passwd", "/dev/zero", "loop.yaml", "self.yaml", "\x00",
           "x" * 300 + ".yaml", "", "missing.yaml", "."]
INPUTS = [[3, 0, 0], [3, 2 ** 52, 2 ** 52], [], [1], [3, 8, 8, 8, 8], [3, -1, 5], [3, 1, 1], [2 ** 53, 1, 1],
          "big", [3, 7, 7], [0], [3, 224.5, 224]]


def mutant(rng: random.Random, text: str) -> bytes:
    """The bytes of one mutant of the spec `text`."""
    data = yaml.safe_load(text)
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(STRUCTURAL)(rng, data)
    try:
        out = yaml.safe_dump(data, sort_keys=False, default_flow_style=rng.random() < 0.3, width=120,
                             allow_unicode=rng.random() < 0.5)
    except (yaml.YAMLError, ValueError, RecursionError):
        out = text
    raw = out.encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        raw = rng.choice(TEXTUAL)(rng, raw)
    return raw


# ---- where things are ---------------------------------------------------------------------


def _containers(data, kind):
    """Every list (kind=list) or dict (kind=dict) inside `data`, the root included."""
    found, stack = [], [data]
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            found.append(node)
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _layer_lists(data):
    lists = [v for d in _containers(data, dict) for k, v in d.items()
             if k in ("layers", "body", "after", "shortcut") and isinstance(v, list)]
    return lists or _containers(data, list) or [[]]


def _bodies(data):
    """Settings mappings of layer entries (`{conv: {...}}` -> the inner dict)."""
    return [next(iter(entry.values())) for lst in _layer_lists(data) for entry in lst
            if isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict)]


def _ids(data):
    return [b["id"] for b in _bodies(data) if isinstance(b.get("id"), str)]


def _edge(rng):
    pool = rng.choice([EDGE_NUMBERS, EDGE_NUMBERS, EDGE_STRINGS, EDGE_OTHERS])
    return copy.deepcopy(rng.choice(pool))


# ---- structural mutations --------------------------------------------------------------------


def replace_value(rng, data):
    dicts = [d for d in _containers(data, dict) if d]
    lists = [lst for lst in _containers(data, list) if lst]
    if dicts and (not lists or rng.random() < 0.6):
        d = rng.choice(dicts)
        d[rng.choice(list(d))] = _edge(rng)
    elif lists:
        lst = rng.choice(lists)
        lst[rng.randrange(len(lst))] = _edge(rng)
    return data


def delete(rng, data):
    target = rng.choice(_layer_lists(data) + [d for d in _containers(data, dict) if d])
    if isinstance(target, list) and target:
        del target[rng.randrange(len(target))]
    elif isinstance(target, dict) and target:
        del target[rng.choice(list(target))]
    return data


def duplicate(rng, data):
    lst = rng.choice(_layer_lists(data))
    if lst:
        lst.insert(rng.randrange(len(lst) + 1), copy.deepcopy(rng.choice(lst)))
    return data


def insert_layer(rng, data):
    lst = rng.choice(_layer_lists(data))
    lst.insert(rng.randrange(len(lst) + 1), copy.deepcopy(rng.choice(LAYER_POOL)))
    return data


def swap_keys(rng, data):
    dicts = [d for d in _containers(data, dict) if len(d) >= 1]
    if not dicts:
        return data
    d = rng.choice(dicts)
    keys = list(d)
    if len(keys) >= 2 and rng.random() < 0.5:
        a, b = rng.sample(keys, 2)
        d[a], d[b] = d[b], d[a]
    else:
        key = rng.choice(keys)
        new = rng.choice([key[:-1], key + "s", key.upper(), "id", "from", "repeat", "first", "expect",
                          "layers", "body", "<<", "", "x" * 200, 7])
        d[new] = d.pop(key)
    return data


def rename_id(rng, data):
    bodies = _bodies(data)
    if bodies:
        body = rng.choice(bodies)
        ids = _ids(data)
        body["id"] = rng.choice(HOSTILE_NAMES + (ids or ["x"]))
    return data


def rewire(rng, data):
    bodies = _bodies(data)
    if not bodies:
        return data
    body = rng.choice(bodies)
    key = rng.choice(["from", "output", "training_only", "repeat", "first", "trainable", "expect"])
    values = {"from": FROM_VALUES + _ids(data), "output": [True, False, "yes"], "training_only": [True, 1],
              "repeat": [0, -1, 1, 3, 1000, 2 ** 53, "$depth"], "first": [{}, {"stride": 2}, [1], {"id": "x"}],
              "trainable": [False, None], "expect": [[1, 1, 1], [], "x", [2 ** 60]]}[key]
    body[key] = copy.deepcopy(rng.choice(values))
    return data


def nest(rng, data):
    lst = rng.choice(_layer_lists(data))
    if not lst:
        return data
    i = rng.randrange(len(lst))
    entry = lst[i]
    for _ in range(rng.choice([1, 2, 10, 40, 70])):  # the loader refuses more than 64 levels
        entry = {"seq": {"layers": [entry]}}
    lst[i] = entry
    return data


def templates(rng, data):
    if not isinstance(data, dict):
        return data
    name = rng.choice(["t", "conv", "relu", "t2", "__init__", "a b"])
    body = rng.choice([[], ["relu"], [{name: {}}], {"conv": {"out": "$c", "kernel": 1}},
                       [{"t2": {"repeat": 1000}}], "relu", None, {"seq": {"layers": []}}])
    if not isinstance(data.get("templates"), dict):
        data["templates"] = {}
    data["templates"][name] = {"args": rng.choice([{}, {"c": "required"}, {"c": 4}, [], "x"]), "body": body}
    if rng.random() < 0.5:
        data["templates"]["t2"] = {"body": rng.choice([[], ["relu"], [{"t": {}}]])}
    lst = rng.choice(_layer_lists(data))
    lst.insert(rng.randrange(len(lst) + 1), {name: rng.choice([{}, {"c": 3}, {"repeat": 1000}, {"c": "${c}"}])})
    return data


def variables(rng, data):
    if not isinstance(data, dict):
        return data
    data["vars"] = rng.choice([{"s": "text", "classes": 10}, {"a": "${b}", "b": "${a}"}, {"c": "${2**52}"},
                               {"classes": "${s * 3}", "s": "x"}, {"depth": 10 ** 6}, [], "x",
                               {"classes": True}, {"x" * 300: 1}, {"c": "${" + "1*" * 500 + "1}"}])
    return data


def extends(rng, data):
    if isinstance(data, dict):
        data["extends"] = rng.choice(EXTENDS)
        if rng.random() < 0.5:
            data["override"] = rng.choice([{"fc": {"linear": {"out": 3}}}, {"nowhere": "relu"}, [], {"": {}}])
    return data


def input_shape(rng, data):
    if isinstance(data, dict):
        data["input"] = copy.deepcopy(rng.choice(INPUTS))
    return data


STRUCTURAL = [replace_value, replace_value, delete, duplicate, insert_layer, insert_layer, swap_keys,
              rename_id, rename_id, rewire, rewire, nest, templates, variables, extends, input_shape]


# ---- textual mutations ---------------------------------------------------------------------


def _insert_line(rng, raw: bytes, line: bytes) -> bytes:
    lines = raw.split(b"\n")
    lines.insert(rng.randrange(len(lines) + 1), line)
    return b"\n".join(lines)


def yaml_features(rng, raw):
    return _insert_line(rng, raw, rng.choice([
        b"anchor: &a [1, 2]", b"alias: *a", b"tagged: !!python/object/apply:os.system ['true']",
        b"merged: {<<: {a: 1}}", b"---", b"--- {}\n...", b"set: !!set {a, b}", b"bin: !!binary aGVsbG8=",
        b"ts: 2001-12-14t21:59:43.10-05:00", b"big: 0x" + b"f" * 100, b"oct: 0o777777777777777777777777",
        b"key: [" * 50, b"? [complex, key]\n: value", b"\ttabbed: 1", b"name: name"]))


def bytes_level(rng, raw):
    choice = rng.randrange(6)
    if choice == 0:
        return b"\xef\xbb\xbf" + raw  # a BOM
    if choice == 1:
        i = rng.randrange(len(raw) + 1)
        return raw[:i] + rng.choice([b"\x00", b"\xff\xfe", b"\xc3", b"\x1b[2J", b"\r", b"\x85"]) + raw[i:]
    if choice == 2:
        return raw[: rng.randrange(len(raw) + 1)]  # truncated
    if choice == 3:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 4:
        first = raw.split(b"\n", 1)[0]
        return raw + b"\n" + first  # a duplicate top-level key
    return raw + b"\n# " + b"x" * 200_000  # a very long line


def deep_flow(rng, raw):
    depth = rng.choice([63, 65, 200, 5000, 30000])
    return _insert_line(rng, raw, b"deep: " + b"[" * depth + b"]" * depth)


TEXTUAL = [yaml_features, yaml_features, bytes_level, bytes_level, deep_flow]
