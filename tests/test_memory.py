"""Memory figures against what PyTorch records, never against the formula that made them.

- Saved activations: every tensor autograd saves during a training forward pass is recorded
  with `torch.autograd.graph.saved_tensors_hooks` (pack hook: the tensor's untyped storage and
  its size); parameters and buffers (the module's own state, counted as weights) are left out;
  a storage saved several times counts once. The report's figure must be equal, byte for byte:
  no op in the registry needs a tolerance on CPU, where these run (dropout saves its scaled
  random mask in the activation dtype there; CUDA's fused kernel would save a bool mask).
- Inference peak: the compiled module runs node by node under torch.fx's Interpreter, which
  drops each value after its last use as the generated code does (refcounts free the memory);
  after every node the storages still referenced (inputs, views, the new output) are summed,
  parameters and buffers left out. Both sides count the tensors that pass between nodes, not
  temporaries inside one node's module, so they must be equal exactly.
- Weights, gradients, optimizer state: a real optimizer step, summing the tensors PyTorch holds.
"""
from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch

import archspec
from archspec.graph.memory import inference_peak, saved_activations
from archspec.ops import OPS
from conftest import SPECS, run_cli, write_spec  # noqa: F401 - write_spec is a fixture
from test_compile_parity import CASES, ZOO, smallest_valid, tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BATCH = 2
HEAVY = 50_000_000  # parameters: building and running these takes long enough to mark them slow


# ---- measurements -----------------------------------------------------------------------------


def module_state(model) -> set:
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}


def recorded_saved_bytes(model, x) -> int:
    """Bytes of the distinct storages autograd saves in a training forward pass of `model`,
    parameters and buffers left out."""
    state, storages, held = module_state(model), {}, []

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in state:
            storages[storage.data_ptr()] = storage.nbytes()
        held.append(storage)  # keeps the storage alive, so its address is not reused
        # Neither `held` nor what pack returns may lead back to the graph: autograd keeps this
        # hook in every node it saves for, and a tensor with a grad_fn here would close a cycle
        # through C++ that Python's collector cannot see, keeping model and activations alive.
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


def measured_saved(graph, batch=BATCH, dtype=torch.float32) -> int:
    heads = any(n.training_only for n in graph.nodes.values())
    model = archspec.build(graph, training_heads=heads, seed=0).to(dtype).train()
    return recorded_saved_bytes(model, torch.randn(batch, *graph.input_shape, dtype=dtype))


class LiveStorages(torch.fx.Interpreter):
    """Runs the module node by node (values dropped after their last use) and records the most
    bytes of distinct storages alive at once, parameters and buffers left out."""

    def __init__(self, module):
        super().__init__(module)
        self.state, self.peak = module_state(module), 0

    def run_node(self, node):
        result = super().run_node(node)
        live = {}
        for value in [*self.env.values(), result]:
            for tensor in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(tensor, torch.Tensor):
                    storage = tensor.untyped_storage()
                    if storage.data_ptr() not in self.state:
                        live[storage.data_ptr()] = storage.nbytes()
        self.peak = max(self.peak, sum(live.values()))
        return result


def measured_peak(graph, batch=BATCH) -> int:
    interpreter = LiveStorages(archspec.build(graph, seed=0).eval())
    with torch.no_grad():
        interpreter.run(torch.randn(batch, *graph.input_shape))
    return interpreter.peak


def check_graph(graph):
    assert saved_activations(graph, BATCH)[0] == measured_saved(graph), f"{graph.name}: saved bytes"
    assert inference_peak(graph, BATCH)[0] == measured_peak(graph), f"{graph.name}: inference peak"


# ---- the zoo and the registry ------------------------------------------------------------------


def _zoo_params():
    marked = []
    for path in ZOO:
        params = archspec.analyze(archspec.expand(archspec.load(path))).totals["params"]
        marks = [pytest.mark.slow] if params > HEAVY else []
        marked.append(pytest.param(path, id=path.stem, marks=marks))
    return marked


@pytest.mark.parametrize("path", _zoo_params())
def test_zoo_memory_matches_pytorch(path):
    """Saved activations (batch 2, training, heads included) and the inference peak of every zoo
    spec at a reduced input, exactly as PyTorch has them."""
    _, graph = smallest_valid(path)
    check_graph(graph)


# Configurations where what is saved depends on what requires grad, or on the storage layout.
MORE = {
    "frozen_first_conv": tiny((3, 6, 6), "  - conv: {out: 4, kernel: 3, trainable: false}\n  - relu\n"
                                         "  - conv: {out: 2, kernel: 1}\n"),
    "frozen_linear": tiny((6,), "  - linear: {out: 4}\n  - relu\n  - linear: {out: 3, trainable: false}\n  - tanh\n"),
    "frozen_scale_and_bn": tiny((3, 4, 4), "  - scale: {trainable: false}\n  - batchnorm: {trainable: false}\n"
                                           "  - conv: {out: 2, kernel: 1}\n"),
    "mul_three_inputs": tiny((4, 5, 5), "  - conv: {id: a, out: 4, kernel: 1}\n  - global_avgpool: {id: g}\n"
                                        "  - mul: {from: [a, g, input]}\n"),
    "mul_with_the_input": tiny((4, 5, 5), "  - conv: {id: a, out: 4, kernel: 1}\n  - mul: {from: [input, a]}\n"),
    "per_pixel_on_channels_first": tiny((4, 3, 3), "  - conv: {out: 6, kernel: 1}\n"
                                                   "  - linear: {out: 5, per_pixel: true}\n"),
    "flatten_channels_last": tiny((4, 3, 3), "  - layer_norm\n  - flatten\n  - linear: {out: 2}\n"),
    "flatten_a_chunk": tiny((4, 3, 3), "  - conv: {out: 4, kernel: 1}\n  - chunk: {parts: 2, index: 1}\n"
                                       "  - flatten\n  - linear: {out: 2}\n"),
    "instance_norm_channels_last": tiny((4, 3, 3), "  - layer_norm\n  - instance_norm: {affine: true}\n"),
    "conv_after_layer_norm": tiny((4, 5, 5), "  - layer_norm\n  - conv: {out: 4, kernel: 2, stride: 2}\n"
                                             "  - batchnorm\n  - flatten\n  - linear: {out: 3}\n"),
    "conv3d_after_layer_norm": tiny((4, 3, 4, 4), "  - layer_norm\n  - conv: {out: 4, kernel: 1}\n  - flatten\n"),
    "conv1d_after_layer_norm": tiny((4, 9), "  - layer_norm\n  - conv: {out: 4, kernel: 3}\n  - flatten\n"),
    "dropout_then_inplace_relu": tiny((8,), "  - linear: {out: 6}\n  - dropout: {p: 0.3}\n  - relu\n"
                                            "  - linear: {out: 2}\n"),
    "locally_connected_frozen": tiny((2, 6, 6), "  - conv: {out: 2, kernel: 1}\n"
                                                "  - locally_connected: {out: 3, kernel: 3, trainable: false}\n"),
    "silu_in_place_after_bn": tiny((3, 5, 5), "  - conv: {out: 4, kernel: 3}\n  - batchnorm\n  - silu\n"
                                              "  - conv: {out: 2, kernel: 1}\n"),
}


@pytest.mark.parametrize("case", sorted(MORE))
def test_grad_and_layout_cases_match_pytorch(case):
    check_graph(archspec.expand(archspec.loads(MORE[case], file=f"<{case}>")))


def test_measuring_keeps_nothing_alive():
    """The measurement must let the model and its activations go once it returns: the suite
    measures every zoo net, and a worker that kept each one grew past 14 GiB."""
    graph = archspec.expand(archspec.loads(MORE["silu_in_place_after_bn"], file="<leak>"))
    model = archspec.build(graph, seed=0).train()
    x = torch.randn(BATCH, *graph.input_shape)
    assert recorded_saved_bytes(model, x) > 0
    gone = [weakref.ref(p) for p in model.parameters()]
    del model
    gc.collect()
    assert all(ref() is None for ref in gone)


# The blocks of today's families, small: MobileNetV3 (in-place hardswish, SE gate), EfficientNet
# (in-place SiLU, drop path, dropout), ShuffleNetV2 (chunks, channel shuffle), ConvNeXt
# (channels-last layer norm and per-pixel linear, layer scale, downsampling after a norm).
FAMILIES = {
"mbv3": tiny((8, 8, 8), """\
  - conv: {id: c0, out: 16, kernel: 1, bias: false}
  - batchnorm
  - hardswish
  - conv: {out: 16, kernel: 3, padding: 1, groups: 16, bias: false}
  - batchnorm
  - hardswish: {id: dw}
  - global_avgpool
  - conv: {out: 4, kernel: 1}
  - relu
  - conv: {out: 16, kernel: 1}
  - hardsigmoid: {id: gate}
  - mul: {from: [dw, gate]}
  - conv: {out: 8, kernel: 1, bias: false}
  - batchnorm: {id: proj}
  - add: {from: [proj, input]}
"""),
"effnet": tiny((8, 8, 8), """\
  - conv: {id: c0, out: 8, kernel: 3, padding: 1, bias: false}
  - batchnorm
  - silu: {id: stem}
  - conv: {out: 32, kernel: 1, bias: false}
  - batchnorm
  - silu
  - conv: {out: 32, kernel: 3, padding: 1, groups: 32, bias: false}
  - batchnorm
  - silu: {id: dw}
  - global_avgpool
  - conv: {out: 2, kernel: 1}
  - silu
  - conv: {out: 32, kernel: 1}
  - sigmoid: {id: gate}
  - mul: {from: [dw, gate]}
  - conv: {out: 8, kernel: 1, bias: false}
  - batchnorm
  - drop_path: {id: dp, p: 0.2}
  - add: {from: [dp, stem]}
  - global_avgpool
  - flatten
  - dropout: {p: 0.2}
  - linear: {out: 5}
"""),
"shufflenet": tiny((8, 8, 8), """\
  - conv: {id: c0, out: 8, kernel: 1}
  - relu: {id: x}
  - chunk: {id: x1, parts: 2, index: 0}
  - chunk: {from: x, parts: 2, index: 1}
  - conv: {out: 4, kernel: 1, bias: false}
  - batchnorm
  - relu
  - conv: {out: 4, kernel: 3, padding: 1, groups: 4, bias: false}
  - batchnorm
  - conv: {out: 4, kernel: 1, bias: false}
  - batchnorm
  - relu: {id: b}
  - concat: {from: [x1, b]}
  - channel_shuffle: {id: sh, groups: 2}
  - chunk: {id: y1, parts: 2, index: 0}
  - chunk: {id: y2, from: sh, parts: 2, index: 1}
  - conv: {out: 4, kernel: 1}
  - relu: {id: b2}
  - concat: {from: [y1, b2]}
  - channel_shuffle: {groups: 2}
  - global_avgpool
  - flatten
  - linear: {out: 3}
"""),
"convnext": tiny((3, 16, 16), """\
  - conv: {out: 8, kernel: 4, stride: 4}
  - layer_norm: {id: stem, eps: 1.0e-6}
  - conv: {out: 8, kernel: 7, padding: 3, groups: 8}
  - layer_norm: {eps: 1.0e-6}
  - linear: {out: 32, per_pixel: true}
  - gelu
  - linear: {out: 8, per_pixel: true}
  - layer_scale: {init: 1.0e-6}
  - drop_path: {p: 0.1, id: dp}
  - add: {id: blk, from: [dp, stem]}
  - conv: {out: 8, kernel: 7, padding: 3, groups: 8}
  - layer_norm: {eps: 1.0e-6}
  - linear: {out: 32, per_pixel: true}
  - gelu
  - linear: {out: 8, per_pixel: true}
  - layer_scale: {id: ls2, init: 1.0e-6}
  - add: {from: [blk, ls2]}
  - layer_norm: {eps: 1.0e-6}
  - conv: {out: 16, kernel: 2, stride: 2}
  - global_avgpool
  - layer_norm: {eps: 1.0e-6}
  - flatten
  - linear: {out: 4}
"""),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_blocks_match_pytorch(family):
    from test_flops import check_flops

    graph = archspec.expand(archspec.loads(FAMILIES[family], file=f"<{family}>"))
    check_graph(graph)
    check_flops(graph)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_declares_what_autograd_saves(op):
    """Every op in the registry states what it saves and, on each of its tiny specs, the saved
    bytes and the inference peak equal PyTorch's."""
    assert type(OPS[op]).saves_rule, f"op '{op}' states no saves_rule"
    for case, text in CASES[op]:
        check_graph(archspec.expand(archspec.loads(text, file=f"<{op}:{case}>")))


@pytest.mark.parametrize("op", sorted(OPS))
def test_in_place_declaration_matches_the_built_module(op):
    """Op.in_place (read by the static analysis) says exactly which modules are built able to
    overwrite an input."""
    from archspec.compile import modules

    case, text = CASES[op][0]
    graph = archspec.expand(archspec.loads(text, file=f"<{op}:{case}>"))
    node = next(n for n in graph.nodes.values() if n.op == op)
    module = OPS[op].torch(node.params, [graph.shape(i) for i in node.inputs], node.shape)
    can = isinstance(module, modules.Add) or getattr(module, "inplace", False) is True
    assert bool(OPS[op].in_place) == can


# ---- dtypes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["resnet18", "mobilenet_v2", "densenet121", "m5"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_saved_bytes(stem, dtype):
    """In half precision activations and statistics take 2 bytes, max pooling's indices stay
    int64: the report at --dtype equals a model converted to that dtype."""
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    _, graph = smallest_valid(SPECS / f"{stem}.yaml")
    assert saved_activations(graph, BATCH, 2)[0] == measured_saved(graph, dtype=torch_dtype)


# ---- weights, gradients and optimizer state --------------------------------------------------------


def float_buffers(model) -> list:
    """The module's floating-point state beside its parameters: the state_dict's other entries
    (a connection table's gather indices and mask are not saved state: not counted)."""
    params = dict(model.named_parameters())
    return [t for k, t in model.state_dict().items() if k not in params and t.is_floating_point()]


def _optimizer(name, params):
    return {"sgd": lambda: torch.optim.SGD(params, lr=0.1),
            "momentum": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
            "adam": lambda: torch.optim.Adam(params),
            "adamw": lambda: torch.optim.AdamW(params)}[name]()


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
@pytest.mark.parametrize("stem", ["googlenet", "lenet5", "resnet18"])
def test_training_weights_gradients_and_optimizer_state(stem, optimizer):
    """After a real training step: parameter bytes, float buffer bytes (batch norm's running
    statistics; the int64 `num_batches_tracked` counters, 8 bytes each, are left out), gradient bytes and the
    optimizer's state tensors (Adam's per-parameter `step` scalars left out) equal the report's
    training figures. googlenet has training-only heads: they are trained too."""
    _, graph = smallest_valid(SPECS / f"{stem}.yaml")
    memory = archspec.analyze(graph, batch=BATCH, optimizer=optimizer).memory["training"]
    model = archspec.build(graph, training_heads=True, seed=0).train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(optimizer, trained)
    outputs = model(torch.randn(BATCH, *graph.input_shape))
    sum(o.float().sum() for o in (outputs if isinstance(outputs, tuple) else (outputs,))).backward()
    opt.step()
    state = [t for s in opt.state.values() for key, t in s.items() if key != "step" and torch.is_tensor(t)]
    buffers = float_buffers(model)
    assert memory["params"] == sum(p.nbytes for p in model.parameters())
    assert memory["buffers"] == sum(b.nbytes for b in buffers)
    assert memory["gradients"] == sum(p.grad.nbytes for p in trained)
    assert memory["optimizer_state"] == sum(t.nbytes for t in state)


def test_inference_weights_and_totals():
    _, graph = smallest_valid(SPECS / "resnet18.yaml")
    memory = archspec.analyze(graph, batch=3, dtype="fp16").memory
    model = archspec.build(graph).half()
    inference = memory["inference"]
    assert inference["params"] == sum(p.nbytes for p in model.parameters())
    assert inference["buffers"] == sum(b.nbytes for b in float_buffers(model))
    assert inference["total"] == inference["params"] + inference["buffers"] + inference["activations_peak"]
    assert memory["batch"] == 3 and memory["bytes_per_value"] == 2
    # the peak is what one moment needs, far below keeping every activation
    report = archspec.analyze(graph)
    assert inference_peak(graph, 3, 2)[0] < 3 * 2 * report.totals["activation_bytes"] // 4 // 2


# ---- the command line -------------------------------------------------------------------------------


@pytest.mark.slow
def test_resnet50_batch32_adam_saved_bytes_equal_autograd():
    """`archspec report specs/resnet50.yaml --batch 32 --optimizer adam -f json`: its saved
    activations equal what saved_tensors_hooks records for the full 224x224 input at batch 32;
    the training total adds fp32 weights, gradients and Adam's two moments."""
    result = run_cli("report", SPECS / "resnet50.yaml", "--batch", "32", "--optimizer", "adam", "-f", "json")
    assert result.returncode == 0, result.stderr
    training = json.loads(result.stdout)["memory"]["training"]
    graph = archspec.expand(archspec.load(SPECS / "resnet50.yaml"))
    assert training["saved_activations"] == measured_saved(graph, batch=32)
    params = 25_557_032  # torchvision's resnet50
    assert training["params"] == training["gradients"] == 4 * params
    assert training["optimizer_state"] == 2 * 4 * params
    assert training["total"] == sum(training[k] for k in ("params", "buffers", "gradients", "optimizer_state",
                                                          "saved_activations"))


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--dtype", "fp64"], "--dtype must be one of"),
    (["--optimizer", "lion"], "--optimizer must be one of"),
    (["--dtype", "int8", "--optimizer", "adam"], "int8 is an inference format"),
])
def test_memory_options_are_checked(args, message):
    result = run_cli("report", SPECS / "lenet5.yaml", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_int8_reports_inference_only():
    result = run_cli("report", SPECS / "lenet5.yaml", "--dtype", "int8", "--batch", "4", "-f", "json")
    memory = json.loads(result.stdout)["memory"]
    assert memory["training"] is None and memory["bytes_per_value"] == 1 and memory["batch"] == 4


def test_table_shows_memory_at_the_batch_asked():
    result = run_cli("report", SPECS / "resnet18.yaml", "--batch", "16", "--dtype", "bf16", "--optimizer", "momentum")
    data = json.loads(run_cli("report", SPECS / "resnet18.yaml", "--batch", "16", "--dtype", "bf16",
                              "--optimizer", "momentum", "-f", "json").stdout)
    lines = result.stdout.splitlines()
    inference = next(line for line in lines if line.startswith("inference memory (batch 16, bf16)"))
    training = next(line for line in lines if line.startswith("training memory (batch 16, bf16, momentum)"))
    peak = data["memory"]["inference"]["activations_peak"]
    assert f"peak activations {peak / 2**20:,.2f} MiB" in inference
    assert f"saved activations {data['memory']['training']['saved_activations'] / 2**20:,.2f} MiB" in training
