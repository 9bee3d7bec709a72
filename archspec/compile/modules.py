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


class TableConv2d(nn.Module):
    """A convolution where output channel j sees only the input channels connections[j].

    Only the connected filters are parameters (LeNet-5's C3 has 1,516, not 2,416); forward
    gathers them into a dense, masked weight and runs one ordinary convolution.
    """

    def __init__(self, in_channels, out_channels, connections, kernel, stride, padding, dilation, bias):
        super().__init__()
        links = [(j, i) for j, row in enumerate(connections) for i in row]
        self.weight = nn.Parameter(torch.empty(len(links), *kernel))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        gather = torch.zeros(out_channels, in_channels, dtype=torch.long)
        mask = torch.zeros(out_channels, in_channels, 1, 1)
        for n, (j, i) in enumerate(links):
            gather[j, i] = n
            mask[j, i] = 1.0
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        fan_in = max(len(r) for r in connections) * kernel[0] * kernel[1]
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        weight = self.weight[self.gather] * self.mask  # (out, in, kh, kw)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)


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
