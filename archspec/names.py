"""The one rule for names a user writes that reach generated code or the file system.

Layer ids, block and branch names, `shortcut_id`, template names and the spec's `name` become
PyTorch module names, attribute accesses in the `forward` code torch.fx generates, variables in
that code, and parts of file names. A name is therefore data that must never be able to act as
code: it is a word of letters, digits and `_`, with `-` allowed between words (torchvision's
RegNet names its blocks `block1-0`), or a plain index (`features.0`, as nn.Sequential names
them). Python keywords, `self`, dunders and the attributes of `nn.Module` / `fx.GraphModule`
(`forward`, `training`, `eval`, `graph`, `code`, ...) are refused: a submodule of that name would
shadow the attribute or break the generated code.

The compiler checks every module name again before it generates code (a second wall, for
graphs built without the loader), against the live attributes of the classes it uses.
"""
from __future__ import annotations

import keyword
import re

MAX_NAME = 128  # characters in one name (one level of a hierarchical name)

NAME_PATTERN = r"^(?:[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*|[0-9]+)$"
_NAME = re.compile(NAME_PATTERN)

# Attributes of nn.Module and fx.GraphModule instances (torch 2.14), so that the static path
# can refuse them without importing torch. tests/test_names.py checks this list still covers
# what the installed torch has; the compiler also checks the live classes.
MODULE_ATTRIBUTES = frozenset("""
T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code
compile cpu cuda delete_all_unused_submodules delete_submodule double dump_patches eval
extra_repr float forward get_buffer get_extra_state get_parameter get_submodule graph half ipu
load_state_dict meta modules mtia named_buffers named_children named_modules named_parameters
parameters print_readable recompile register_backward_hook register_buffer
register_forward_hook register_forward_pre_hook register_full_backward_hook
register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter
register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
set_submodule shape_env share_memory state_dict to to_empty to_folder train training type xpu
zero_grad
_apply _backward_hooks _backward_pre_hooks _boxed_call _buffers _call_impl _code
_compiled_call_impl _create_node_hooks _deepcopy_hooks _deepcopy_init _erase_node_hooks
_forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks
_forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks _get_name _graph
_is_full_backward_hook _lineno_map _load_from_state_dict _load_state_dict_post_hooks
_load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook _modules _named_members
_non_persistent_buffers_set _parameters _prologue_start _recompile_submodules
_register_create_node_hook _register_deepcopy_hook _register_erase_node_hook
_register_load_state_dict_pre_hook _register_replace_node_hook _register_state_dict_hook
_replace_hooks _replicate_for_data_parallel _save_to_state_dict _set_replace_hook _slow_forward
_state_dict_hooks _state_dict_pre_hooks _tracer_cls _tracer_extras _unregister_create_node_hook
_unregister_deepcopy_hook _unregister_erase_node_hook _unregister_replace_node_hook _version
_wrapped_call _wrapped_call_impl
___needs_generation_tag_patch
""".split())  # the last one: set on modules by torch.compile

# Words the generated code itself uses: `self` is forward's first argument (fx names a node's
# variable after its module, so a module called `self` would rebind it).
CODE_WORDS = frozenset({"self"})


def name_problem(name, *, attributes=MODULE_ATTRIBUTES) -> str | None:
    """Why `name` cannot be one level of a module name, or None if it can."""
    if not isinstance(name, str):
        return f"a name is text. Received: {name!r}"
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME:
        return f"a name has at most {MAX_NAME} characters. Received: {len(name)}"
    if not _NAME.fullmatch(name):  # fullmatch: "$" alone would accept a trailing newline
        return ("a name is letters, digits and '_' (with '-' between words, as in 'block1-0'), "
                f"starting with a letter or '_', or a plain index. Received: {_show(name)}")
    if keyword.iskeyword(name) or name in CODE_WORDS:
        return f"'{name}' is a Python keyword; choose another name"
    if name.startswith("__") and name.endswith("__"):
        return f"'{name}' is reserved (names of the form __x__ belong to Python)"
    if name in attributes:
        return (f"'{name}' is an attribute of every PyTorch module; a layer of that name would "
                "shadow it. Choose another name")
    return None


class InvalidName(ValueError):
    """A name that breaks the naming rule (pydantic validators raise it; errors get code AS206)."""


def check_name(name) -> str:
    """`name` if it is valid, else InvalidName with the reason (for pydantic validators)."""
    problem = name_problem(name)
    if problem:
        raise InvalidName(problem)
    return name


def safe_file_stem(name: str) -> str:
    """A file name stem derived from `name` that stays one plain path component."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._-")[:MAX_NAME]
    return stem or "model"


def _show(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."
