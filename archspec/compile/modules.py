"""The few PyTorch modules archspec needs that torch.nn does not have."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Group(nn.Module):
    """A named level of the hierarchy (`layer1`, `layer1.0`): holds submodules, has no forward
    of its own (the GraphModule's generated code calls the leaves). Indexable like
    nn.Sequential, so `model.layer1[0].conv1` reads as it does on torchvision models."""

    def __getitem__(self, key):
        if isinstance(key, int) and key < 0:
            key += len(self._modules)
        try:
            return self._modules[str(key)]
        except KeyError:
            raise KeyError(f"{self._get_name()} has no submodule {key!r}") from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Add(nn.Module):
    """Sum of the inputs. With `inplace` (set by the compiler only when nothing else reads the
    first input), the sum accumulates into the first input, as torchvision's `out += identity`."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, *xs):
        out = xs[0]
        if self.inplace:
            for x in xs[1:]:
                out += x
            return out
        for x in xs[1:]:
            out = out + x
        return out

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Mul(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x  # (N, C, H, W) * (N, C, 1, 1) broadcasts
        return out


class Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, 1)


class ScaledTanh(nn.Module):
    """LeCun's 1.7159·tanh(2x/3)."""

    def forward(self, x):
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class ChannelScale(nn.Module):
    """y = w_c·x + b_c per channel."""

    def __init__(self, channels: int, rank: int, bias: bool = True):
        super().__init__()
        self.view = (1, channels) + (1,) * (rank - 1)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x):
        out = x * self.weight.view(self.view)
        return out + self.bias.view(self.view) if self.bias is not None else out


class EuclideanRBF(nn.Module):
    """y_j = Σ_i (x_i − w_ij)² with fixed prototypes w (not trained)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        # LeNet-5 draws its prototypes as ±1 bitmaps; random ±1 codes stand in for them.
        codes = torch.randint(0, 2, (out_features, in_features)).float() * 2 - 1
        self.weight = nn.Parameter(codes, requires_grad=False)

    def forward(self, x):  # (N, F) -> (N, out)
        diff = x.unsqueeze(1) - self.weight.unsqueeze(0)  # (N, out, F)
        return (diff * diff).sum(-1)


class TableConv(nn.Module):
    """A convolution (1-D, 2-D or 3-D, by the kernel's length) where output channel j sees only
    the input channels connections[j].

    Only the connected filters are parameters (LeNet-5's C3 has 1,516, not 2,416); forward
    gathers them into a dense, masked weight and runs one ordinary convolution.
    """

    def __init__(self, in_channels, out_channels, connections, kernel, stride, padding, dilation, bias):
        super().__init__()
        links = [(j, i) for j, row in enumerate(connections) for i in row]
        self.weight = nn.Parameter(torch.empty(len(links), *kernel))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        gather = torch.zeros(out_channels, in_channels, dtype=torch.long)
        mask = torch.zeros(out_channels, in_channels, *(1 for _ in kernel))
        for n, (j, i) in enumerate(links):
            gather[j, i] = n
            mask[j, i] = 1.0
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.rank = len(kernel)
        fan_in = max(len(r) for r in connections) * math.prod(kernel)
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        weight = self.weight[self.gather] * self.mask  # (out, in, *kernel)
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.rank - 1]
        return conv(x, weight, self.bias, self.stride, self.padding, self.dilation)


class LocallyConnected2d(nn.Module):
    """Convolution-shaped layer with a separate filter bank at every output position."""

    def __init__(self, in_channels, out_channels, in_size, out_size, kernel, stride, padding, bias):
        super().__init__()
        self.kernel, self.stride, self.padding = tuple(kernel), tuple(stride), tuple(padding)
        self.out_size = tuple(out_size)
        positions = out_size[0] * out_size[1]
        fan_in = in_channels * kernel[0] * kernel[1]
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(positions, fan_in, out_channels).uniform_(-bound, bound))
        self.bias = (nn.Parameter(torch.empty(out_channels, *out_size).uniform_(-bound, bound))
                     if bias else None)

    def forward(self, x):
        cols = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)  # (N, C*kh*kw, L)
        out = torch.einsum("ncl,lco->nol", cols, self.weight)  # (N, out, L)
        out = out.reshape(out.shape[0], out.shape[1], *self.out_size)  # (N, out, H', W')
        return out + self.bias if self.bias is not None else out


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over the channel axis of (N, C, *spatial) at every position (ConvNeXt's
    LayerNorm2d), or over the features of (N, F). Keeps nn.LayerNorm's `weight`/`bias` (C,)."""

    def __init__(self, channels: int, eps: float, affine: bool, bias: bool):
        super().__init__(channels, eps, elementwise_affine=affine, bias=bias)

    def forward(self, x):
        if x.dim() == 2:
            return super().forward(x)
        x = x.movedim(1, -1)  # (N, *spatial, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)  # (N, C, *spatial)


class PerPixelLinear(nn.Linear):
    """nn.Linear (weight (out, C)) applied to the channels at every position of (N, C, *spatial)."""

    def forward(self, x):
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)  # (N, out, *spatial)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (N, g·k, ...) -> view (N, g, k, ...) -> transpose -> flatten."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        x = x.unflatten(1, (self.groups, -1))  # (N, g, C/g, *spatial)
        return x.transpose(1, 2).flatten(1, 2)  # (N, C, *spatial), channels interleaved

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class Chunk(nn.Module):
    """torch.chunk(x, parts, dim=1)[index]: a view of the input."""

    def __init__(self, parts: int, index: int):
        super().__init__()
        self.parts, self.index = parts, index

    def forward(self, x):
        return x.chunk(self.parts, 1)[self.index]

    def extra_repr(self) -> str:
        return f"parts={self.parts}, index={self.index}"


class ChannelSlice(nn.Module):
    """x[:, start:stop]: a view of the input."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start:self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


class DropPath(nn.Module):
    """Stochastic depth, torchvision's StochasticDepth(p, "row"): in training every sample is
    kept with probability 1-p and scaled by 1/(1-p), else zeroed; the identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        noise = noise.bernoulli_(survival)  # (N, 1, ...): one draw per sample
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _linear_transposed(x, weight, bias):
    return F.linear(x, weight.t(), bias)  # weight (in, out) of the tied-to layer: x @ weight + bias


class TransposedTie(nn.Module):
    """A layer using another layer's weight as its transpose (`tie: {to: enc, transpose: true}`)
    with a bias of its own: `forward(x, weight)` takes the owner's weight, so the Parameter
    exists once (in the state_dict under the owner's name) and its gradient sums both uses.

    Built from the module the layer would have had alone (`layer`: nn.ConvNd, nn.ConvTransposeNd
    or nn.Linear), whose settings and bias it keeps; its weight is dropped. A conv_transpose with
    a conv's weight (the same (C2, C1/groups, *k) tensor) is that conv's adjoint, as a linear with
    W.t() is a linear's."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.bias = layer.bias  # an nn.Parameter, or None
        self.weight_shape = tuple(layer.weight.shape)  # what this layer's own weight would be
        self.is_linear = isinstance(layer, nn.Linear)
        if self.is_linear:
            self.function, self.settings = _linear_transposed, {}
        elif isinstance(layer, nn.modules.conv._ConvTransposeNd):
            rank = len(layer.kernel_size)
            self.function = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
            self.settings = dict(stride=layer.stride, padding=layer.padding, output_padding=layer.output_padding,
                                 groups=layer.groups, dilation=layer.dilation)
        elif isinstance(layer, nn.modules.conv._ConvNd) and layer.padding_mode == "zeros":
            rank = len(layer.kernel_size)
            self.function = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
            self.settings = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                 groups=layer.groups)
        else:
            raise TypeError(f"cannot share a weight transposed with {type(layer).__name__}")

    def forward(self, x, weight):
        return self.function(x, weight, self.bias, **self.settings)

    def extra_repr(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.function.__name__}, weight {self.weight_shape} of the tied layer" + (
            f", {settings}" if settings else "") + f", bias={self.bias is not None}"
