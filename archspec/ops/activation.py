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


def _activation(op_name: str, doc: str, build, params=None, fresh=False, aliases=False):
    """Define and register an activation op whose PyTorch module is `build(p)`. `fresh`: its
    output is a new tensor autograd does not keep (see Op.fresh_output); `aliases`: its output
    is its input (identity)."""
    attrs = {"name": op_name, "__doc__": doc, "torch": lambda self, p, inputs, out: build(p),
             "fresh_output": fresh, "aliases_input": aliases}
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
