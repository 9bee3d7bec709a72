"""Element-wise activations. Shape in = shape out, no parameters, no MACs.

FLOPs count a comparison, an arithmetic operation or a transcendental function (exp, log,
tanh, erf) as 1 each, per element."""
from __future__ import annotations

from math import prod

from pydantic import Field

from archspec.ops.registry import Op, OpParams, register
from archspec.ops.saving import saved_input, saved_new, saved_output


class LeakyReLUParams(OpParams):
    negative_slope: float = 0.01


class ELUParams(OpParams):
    alpha: float = 1.0


class GELUParams(OpParams):
    approximate: str = Field("none", pattern="^(none|tanh)$")


def _activation(op_name: str, doc: str, build, params=None, fresh=False, aliases=False, onnx="",
                cost=1, flops_rule="", saves="input", in_place="", layout=True):
    """Define and register an activation op whose PyTorch module is `build(p)`. `fresh`: its
    output is a new tensor autograd does not keep (see Op.fresh_output); `aliases`: its output
    is its input (identity); `onnx`: what the exporter emits, where it is not one obvious op.

    Cost: `cost(p)` (or a number) FLOPs per element, stated by `flops_rule`; `saves` what
    autograd keeps — "input", "output", "internal" (a result computed inside, the output's
    size) or "nothing"; `in_place`: the module is built in place (Op.in_place); `layout`:
    keeps a channels-last input's order (softmax's kernel writes a dense result)."""
    per_element = cost if callable(cost) else (lambda p, n=cost: n)
    attrs = {"name": op_name, "__doc__": doc, "torch": lambda self, p, inputs, out: build(p),
             "fresh_output": fresh, "aliases_input": aliases, "onnx_notes": onnx,
             "moves_data": saves == "nothing", "flops_rule": flops_rule, "in_place": in_place,
             "saves_rule": SAVES_RULES[saves], "keeps_layout": layout,
             "flops": lambda self, p, inputs, out: per_element(p) * prod(out),
             "saved": lambda self, p, inputs, out, ctx: _saves(saves, ctx, prod(out))}
    if params is not None:
        attrs["Params"] = params
    cls = type(op_name.title().replace("_", ""), (Op,), attrs)
    return register(cls)


SAVES_RULES = {
    "input": "its input (run in place: a copy of the input, made before it is overwritten)",
    "output": "its output",
    "internal": "one tensor of the output's size computed inside (tanh's result)",
    "nothing": "nothing",
}


def _saves(kind: str, ctx, numel_per_sample: int) -> list:
    if kind == "nothing":
        return []
    if kind == "output":
        return [saved_output()]
    if kind == "internal" or ctx.in_place:  # in-place kernels save the original input as a copy
        return [saved_new(ctx.batch * numel_per_sample)]
    return [saved_input()]


def _nn():
    import torch.nn as nn

    return nn


def _module(name):
    from archspec.compile import modules

    return getattr(modules, name)


_activation("relu", "Rectified linear unit: max(0, x).\n\n```yaml\n- relu\n```",
            lambda p: _nn().ReLU(inplace=True), cost=1, flops_rule="1 per element (a comparison)",
            saves="output", in_place="first")
_activation("relu6", "ReLU clipped at 6: min(max(0, x), 6) (MobileNet).\n\n```yaml\n- relu6\n```",
            lambda p: _nn().ReLU6(inplace=True), cost=2, flops_rule="2 per element (two comparisons)",
            in_place="first")
_activation("leaky_relu", "Leaky ReLU: x if x > 0 else negative_slope·x.\n\n"
            "```yaml\n- leaky_relu: {negative_slope: 0.1}\n```",
            lambda p: _nn().LeakyReLU(p.negative_slope), LeakyReLUParams, fresh=True,
            cost=2, flops_rule="2 per element (a comparison, a multiplication)")
_activation("elu", "Exponential linear unit.\n\n```yaml\n- elu: {alpha: 1.0}\n```",
            lambda p: _nn().ELU(p.alpha), ELUParams,
            cost=4, flops_rule="4 per element (a comparison, exp, a subtraction, a multiplication)")
_activation("gelu", "Gaussian error linear unit.\n\n```yaml\n- gelu\n```",
            lambda p: _nn().GELU(approximate=p.approximate), GELUParams, fresh=True,
            cost=lambda p: 9 if p.approximate == "tanh" else 5,
            flops_rule="5 per element: x·(1 + erf(x/√2))/2 (a division, erf, an addition, two "
                       "multiplications); 9 with `approximate: tanh` (x³ takes 2, three multiplications, "
                       "two additions, tanh, the final multiplication)")
_activation("sigmoid", "Logistic sigmoid 1/(1+e^-x).\n\n```yaml\n- sigmoid\n```",
            lambda p: _nn().Sigmoid(), cost=4,
            flops_rule="4 per element (a negation, exp, an addition, a division)", saves="output")
_activation("tanh", "Hyperbolic tangent.\n\n```yaml\n- tanh\n```", lambda p: _nn().Tanh(),
            cost=1, flops_rule="1 per element (tanh)", saves="output")
_activation("scaled_tanh", "LeCun's scaled tanh: 1.7159·tanh(2x/3) (LeNet-5).\n\n"
            "```yaml\n- scaled_tanh\n```", lambda p: _module("ScaledTanh")(), fresh=True,
            cost=3, flops_rule="3 per element (two multiplications and tanh)", saves="internal")
_activation("softmax", "Softmax over the channel/feature axis.\n\n```yaml\n- softmax\n```",
            lambda p: _nn().Softmax(dim=1), cost=5, saves="output", layout=False,
            flops_rule="5 per element (the maximum, a subtraction, exp, the sum, a division)")
_activation("identity", "Identity: passes its input through unchanged.\n\n```yaml\n- identity\n```",
            lambda p: _nn().Identity(), aliases=True, cost=0, saves="nothing",
            flops_rule="0: passes its input on")

# Their backward reads the input, not the output: the output is fresh. SiLU and Hardswish are
# built in place as torchvision builds them (the compiler turns that off where unsafe).
_activation("silu", "Sigmoid-weighted linear unit (swish): x·sigmoid(x) (EfficientNet).\n\n"
            "```yaml\n- silu\n```", lambda p: _nn().SiLU(inplace=True), fresh=True,
            onnx="exported as Sigmoid and Mul", cost=5, in_place="first",
            flops_rule="5 per element (sigmoid's 4 and a multiplication)")
_activation("hardswish", "Hard swish: x·relu6(x + 3)/6 (MobileNetV3).\n\n```yaml\n- hardswish\n```",
            lambda p: _nn().Hardswish(inplace=True), fresh=True, onnx="exported as HardSwish",
            cost=5, in_place="first",
            flops_rule="5 per element (an addition, two comparisons, a multiplication, a division)")
_activation("hardsigmoid", "Hard sigmoid: relu6(x + 3)/6 (MobileNetV3's squeeze-and-excitation gate)."
            "\n\n```yaml\n- hardsigmoid\n```", lambda p: _nn().Hardsigmoid(), fresh=True,
            onnx="exported as HardSigmoid (alpha 1/6, beta 0.5)", cost=4,
            flops_rule="4 per element (an addition, two comparisons, a division)")
_activation("mish", "Mish: x·tanh(softplus(x)).\n\n```yaml\n- mish\n```", lambda p: _nn().Mish(),
            fresh=True, onnx="exported as Mish", cost=5,
            flops_rule="5 per element (exp, an addition, log, tanh, a multiplication)")
_activation("log_softmax", "Log-softmax over the channel/feature axis (for NLLLoss).\n\n"
            "```yaml\n- log_softmax\n```", lambda p: _nn().LogSoftmax(dim=1),
            onnx="exported as LogSoftmax on axis 1", cost=5, saves="output", layout=False,
            flops_rule="5 per element (the maximum, a subtraction, exp, the sum, a subtraction of "
                       "the log-sum)")
