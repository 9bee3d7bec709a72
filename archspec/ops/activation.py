"""Element-wise activations. Shape in = shape out, no parameters, no MACs."""
from __future__ import annotations

from pydantic import Field

from archspec.ops.registry import Op, OpParams, register


class LeakyReLUParams(OpParams):
    negative_slope: float = 0.01


class ELUParams(OpParams):
    alpha: float = 1.0


class GELUParams(OpParams):
    approximate: str = Field("none", pattern="^(none|tanh)$")


def _activation(op_name: str, doc: str, build, params=None, fresh=False, aliases=False, onnx=""):
    """Define and register an activation op whose PyTorch module is `build(p)`. `fresh`: its
    output is a new tensor autograd does not keep (see Op.fresh_output); `aliases`: its output
    is its input (identity); `onnx`: what the exporter emits, where it is not one obvious op."""
    attrs = {"name": op_name, "__doc__": doc, "torch": lambda self, p, inputs, out: build(p),
             "fresh_output": fresh, "aliases_input": aliases, "onnx_notes": onnx}
    if params is not None:
        attrs["Params"] = params
    cls = type(op_name.title().replace("_", ""), (Op,), attrs)
    return register(cls)


def _nn():
    import torch.nn as nn

    return nn


def _module(name):
    from archspec.compile import modules

    return getattr(modules, name)


_activation("relu", "Rectified linear unit: max(0, x).\n\n```yaml\n- relu\n```",
            lambda p: _nn().ReLU(inplace=True))
_activation("relu6", "ReLU clipped at 6: min(max(0, x), 6) (MobileNet).\n\n```yaml\n- relu6\n```",
            lambda p: _nn().ReLU6(inplace=True))
_activation("leaky_relu", "Leaky ReLU: x if x > 0 else negative_slope·x.\n\n"
            "```yaml\n- leaky_relu: {negative_slope: 0.1}\n```",
            lambda p: _nn().LeakyReLU(p.negative_slope), LeakyReLUParams, fresh=True)
_activation("elu", "Exponential linear unit.\n\n```yaml\n- elu: {alpha: 1.0}\n```",
            lambda p: _nn().ELU(p.alpha), ELUParams)
_activation("gelu", "Gaussian error linear unit.\n\n```yaml\n- gelu\n```",
            lambda p: _nn().GELU(approximate=p.approximate), GELUParams, fresh=True)
_activation("sigmoid", "Logistic sigmoid 1/(1+e^-x).\n\n```yaml\n- sigmoid\n```",
            lambda p: _nn().Sigmoid())
_activation("tanh", "Hyperbolic tangent.\n\n```yaml\n- tanh\n```", lambda p: _nn().Tanh())
_activation("scaled_tanh", "LeCun's scaled tanh: 1.7159·tanh(2x/3) (LeNet-5).\n\n"
            "```yaml\n- scaled_tanh\n```", lambda p: _module("ScaledTanh")(), fresh=True)
_activation("softmax", "Softmax over the channel/feature axis.\n\n```yaml\n- softmax\n```",
            lambda p: _nn().Softmax(dim=1))
_activation("identity", "Identity: passes its input through unchanged.\n\n```yaml\n- identity\n```",
            lambda p: _nn().Identity(), aliases=True)

# Their backward reads the input, not the output: the output is fresh. SiLU and Hardswish are
# built in place as torchvision builds them (the compiler turns that off where unsafe).
_activation("silu", "Sigmoid-weighted linear unit (swish): x·sigmoid(x) (EfficientNet).\n\n"
            "```yaml\n- silu\n```", lambda p: _nn().SiLU(inplace=True), fresh=True,
            onnx="exported as Sigmoid and Mul")
_activation("hardswish", "Hard swish: x·relu6(x + 3)/6 (MobileNetV3).\n\n```yaml\n- hardswish\n```",
            lambda p: _nn().Hardswish(inplace=True), fresh=True, onnx="exported as HardSwish")
_activation("hardsigmoid", "Hard sigmoid: relu6(x + 3)/6 (MobileNetV3's squeeze-and-excitation gate)."
            "\n\n```yaml\n- hardsigmoid\n```", lambda p: _nn().Hardsigmoid(), fresh=True,
            onnx="exported as HardSigmoid (alpha 1/6, beta 0.5)")
_activation("mish", "Mish: x·tanh(softplus(x)).\n\n```yaml\n- mish\n```", lambda p: _nn().Mish(),
            fresh=True, onnx="exported as Mish")
_activation("log_softmax", "Log-softmax over the channel/feature axis (for NLLLoss).\n\n"
            "```yaml\n- log_softmax\n```", lambda p: _nn().LogSoftmax(dim=1),
            onnx="exported as LogSoftmax on axis 1")
