"""``kwt_super``: a once-for-all KWT supernet whose weight-shared subnets are plain KWTs.

Wang et al., "LightHuBERT: Lightweight and Configurable Speech Representation Learning with
Once-for-All Hidden-Unit BERT", Interspeech 2022 (arXiv 2203.15610): one Transformer holds
every subnet over embedding dimension, attention heads (fixed head width, so the attention
width is ``heads × head_dim``), FFN ratio and depth; a subnet uses the leading slice of every
weight (the first ``dim`` channels, heads, hidden units, blocks). It is trained by
distillation, sampling subnets each step (here the sandwich rule of Yu et al., "BigNAS",
ECCV 2020 / Yu & Huang, "Universally slimmable networks", ICCV 2019: the largest, the smallest
and random subnets; ``tasks/distill.py``), and a subnet is then searched under a budget
(``pocketear subnet``) and extracted as a standalone :class:`~pocketear.encoders.kwt.KWT`.

Departure: one configuration for every layer (LightHuBERT samples heads and FFN ratio per
layer), so each subnet is a plain KWT that evaluates, exports and quantises like any other.
The supernet itself is a KWT whose :attr:`active` subnet (the largest unless set) is what it
computes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pocketear.encoders.kwt import KWT, TransformerBlock, attend
from pocketear.errors import InvalidValue
from pocketear.registry import register


@dataclass(frozen=True, order=True)
class Subnet:
    """One architecture in the supernet: its width, depth, heads and MLP hidden size."""

    dim: int
    depth: int
    heads: int
    mlp: int

    def __str__(self) -> str:
        return f"dim={self.dim},depth={self.depth},heads={self.heads},mlp={self.mlp}"

    @classmethod
    def parse(cls, text: str) -> Subnet:
        """``"dim=32,depth=4,heads=1,mlp=64"`` (what :meth:`__str__` writes)."""
        try:
            parts = dict(p.split("=") for p in text.replace(" ", "").split(","))
            return cls(**{k: int(v) for k, v in parts.items()})
        except (TypeError, ValueError) as err:
            raise InvalidValue(f"subnet {text!r}: expected dim=D,depth=L,heads=H,mlp=M") from err


def _choices(values: Sequence[Any] | str, name: str, kind: type = int) -> tuple[Any, ...]:
    items = values.split(",") if isinstance(values, str) else list(values)
    try:
        out = tuple(sorted({kind(v) for v in items}))
    except ValueError as err:
        raise InvalidValue(f"encoder.{name}={values!r}: a comma-separated list of numbers") from err
    if not out or out[0] <= 0:
        raise InvalidValue(f"encoder.{name}={values!r}: give at least one value, all > 0")
    return out


class SuperKWT(KWT):
    """A KWT whose leading slices are the subnets of a search space (LightHuBERT).

    Args:
        dims: Embedding widths to choose from (the largest sizes the shared weights).
        depths: Numbers of blocks.
        heads: Attention heads, each ``head_dim`` wide.
        mlp_ratios: MLP hidden size as a multiple of the subnet's width.
        head_dim: Width of one head (fixed: LightHuBERT's layout).
        n_mels, max_frames, prenorm, dropout, input_frames: as :class:`KWT`.
    """

    def __init__(self, dims: Sequence[int] | str = (32, 48, 64),
                 depths: Sequence[int] | str = (4, 8, 12), heads: Sequence[int] | str = (1, 2),
                 mlp_ratios: Sequence[float] | str = (2.0, 3.0, 4.0), head_dim: int = 32,
                 n_mels: int = 64, max_frames: int = 256, prenorm: bool = True,
                 dropout: float = 0.0, input_frames: int = 96) -> None:
        self.dims, self.depths = _choices(dims, "dims"), _choices(depths, "depths")
        self.head_choices = _choices(heads, "heads")
        self.mlp_ratios = _choices(mlp_ratios, "mlp_ratios", float)
        self._largest = Subnet(self.dims[-1], self.depths[-1], self.head_choices[-1],
                               self.mlp_of(self.dims[-1], self.mlp_ratios[-1]))
        top = self._largest
        super().__init__(top.dim, top.depth, top.heads, top.mlp, n_mels, max_frames, prenorm,
                         dropout, input_frames, head_dim)
        self.head_dim = int(head_dim)
        self.active = top

    @staticmethod
    def mlp_of(dim: int, ratio: float) -> int:
        """MLP hidden size of a subnet of width ``dim`` at ``ratio``."""
        return max(1, round(dim * ratio))

    @property
    def embed_dim(self) -> int:  # type: ignore[override]
        """Width of the active subnet's frames."""
        return self.active.dim if hasattr(self, "active") else self._largest.dim

    @embed_dim.setter
    def embed_dim(self, value: int) -> None:  # KWT.__init__ sets it; the active subnet rules
        pass

    @property
    def subnets(self) -> list[Subnet]:
        """Every subnet of the search space, smallest first."""
        return sorted(Subnet(d, n, h, self.mlp_of(d, r)) for d, n, h, r in itertools.product(
            self.dims, self.depths, self.head_choices, self.mlp_ratios))

    @property
    def largest(self) -> Subnet:
        """The whole supernet."""
        return self._largest

    @property
    def smallest(self) -> Subnet:
        """The smallest value of every dimension."""
        return Subnet(self.dims[0], self.depths[0], self.head_choices[0],
                      self.mlp_of(self.dims[0], self.mlp_ratios[0]))

    def random_subnet(self, rng: np.random.Generator) -> Subnet:
        """A subnet drawn uniformly per dimension."""
        dim = int(rng.choice(self.dims))
        return Subnet(dim, int(rng.choice(self.depths)), int(rng.choice(self.head_choices)),
                      self.mlp_of(dim, float(rng.choice(self.mlp_ratios))))

    def set_active(self, subnet: Subnet) -> None:
        """Compute ``subnet`` from now on."""
        self.active = self._fit(subnet)

    def _fit(self, subnet: Subnet) -> Subnet:
        top = self._largest
        if not (subnet.dim <= top.dim and subnet.depth <= top.depth
                and subnet.heads <= top.heads and subnet.mlp <= top.mlp) or min(
                    asdict(subnet).values()) < 1:
            raise InvalidValue(f"subnet {subnet} does not fit in the supernet {top}")
        return subnet

    def tokenize(self, x: torch.Tensor) -> torch.Tensor:
        """The active width's slice of the projection and positions."""
        self._check(x)
        t, d = x.shape[2], self.active.dim
        if t > self.max_frames:
            raise InvalidValue(f"kwt_super takes at most max_frames={self.max_frames} frames, "
                               f"got {t}; window the input or build it with a larger max_frames")
        return F.linear(x[:, 0], self.proj.weight[:d], self.proj.bias[:d]) + self.pos[:, :t, :d]

    def encode_tokens(self, h: torch.Tensor, collect: str | None = None,
                      mask: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The active subnet's blocks (the first ``depth``), each on its weights' slices."""
        s, layers = self.active, []
        for block in self.blocks[: s.depth]:
            h, f = self._block(block, h, mask)  # type: ignore[arg-type]
            if collect == "block":
                layers.append(h)
            elif collect == "ffn":
                layers.append(f)
        return self._norm(self.final_norm, h), layers

    def _norm(self, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(norm, nn.LayerNorm):
            return x
        d = x.shape[-1]
        return F.layer_norm(x, (d,), norm.weight[:d], norm.bias[:d], norm.eps)

    def _block(self, block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        s, p = self.active, block.drop.p if self.training else 0.0

        def attn(y: torch.Tensor) -> torch.Tensor:
            a = block.attn
            rows = torch.cat([torch.arange(s.heads * self.head_dim, device=y.device) + i * (
                a.heads * self.head_dim) for i in range(3)])
            qkv = F.linear(y, a.qkv.weight[rows, : s.dim], a.qkv.bias[rows])
            out = attend(qkv, s.heads, self.head_dim, mask)
            width = s.heads * self.head_dim
            return F.linear(out, a.out.weight[: s.dim, :width], a.out.bias[: s.dim])

        def mlp(y: torch.Tensor) -> torch.Tensor:
            first, drop, second = block.mlp[0], block.mlp[2].p, block.mlp[3]
            y = F.gelu(F.linear(y, first.weight[: s.mlp, : s.dim], first.bias[: s.mlp]))
            y = F.dropout(y, drop if self.training else 0.0)
            return F.linear(y, second.weight[: s.dim, : s.mlp], second.bias[: s.dim])

        if block.prenorm:
            x = x + F.dropout(attn(self._norm(block.norm1, x)), p)
            f = F.dropout(mlp(self._norm(block.norm2, x)), p)
            return x + f, f
        x = self._norm(block.norm1, x + F.dropout(attn(x), p))
        f = F.dropout(mlp(x), p)
        return self._norm(block.norm2, x + f), f

    def subnet_options(self, subnet: Subnet | None = None) -> dict[str, Any]:
        """The ``kwt1`` options (``encoder.*``) of a standalone KWT equal to ``subnet``."""
        s = subnet or self.active
        return {**asdict(s), "head_dim": self.head_dim, "max_frames": self.max_frames,
                "prenorm": self.blocks[0].prenorm, "input_frames": self.input_frames}

    def extract(self, subnet: Subnet | None = None) -> KWT:
        """A standalone KWT holding ``subnet``'s slices (default: the active one), in eval mode.

        Its outputs equal the supernet's with ``subnet`` active (tested).
        """
        s = self._fit(subnet or self.active)
        kwt = KWT(n_mels=self.n_mels, dropout=self.blocks[0].drop.p, **self.subnet_options(s))
        hd, big = self.head_dim, self._largest.heads * self.head_dim
        rows = torch.cat([torch.arange(s.heads * hd) + i * big for i in range(3)])
        state = {"proj.weight": self.proj.weight[: s.dim], "proj.bias": self.proj.bias[: s.dim],
                 "pos": self.pos[:, :, : s.dim]}
        if isinstance(self.final_norm, nn.LayerNorm):
            state |= {"final_norm.weight": self.final_norm.weight[: s.dim],
                      "final_norm.bias": self.final_norm.bias[: s.dim]}
        for i in range(s.depth):
            b, pre = self.blocks[i], f"blocks.{i}."
            state |= {pre + f"{n}.{w}": getattr(getattr(b, n), w)[: s.dim]
                      for n in ("norm1", "norm2") for w in ("weight", "bias")}
            state |= {
                pre + "attn.qkv.weight": b.attn.qkv.weight[rows, : s.dim],
                pre + "attn.qkv.bias": b.attn.qkv.bias[rows],
                pre + "attn.out.weight": b.attn.out.weight[: s.dim, : s.heads * hd],
                pre + "attn.out.bias": b.attn.out.bias[: s.dim],
                pre + "mlp.0.weight": b.mlp[0].weight[: s.mlp, : s.dim],
                pre + "mlp.0.bias": b.mlp[0].bias[: s.mlp],
                pre + "mlp.3.weight": b.mlp[3].weight[: s.dim, : s.mlp],
                pre + "mlp.3.bias": b.mlp[3].bias[: s.dim]}
        kwt.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        kwt.readout = self.readout
        return kwt.eval()


@register("encoder", "kwt_super")
def kwt_super(n_mels: int = 64, **kwargs: Any) -> SuperKWT:
    """Once-for-all KWT: widths 32/48/64, depths 4/8/12, 1–2 heads of 32, MLP ratio 2–4.

    The largest subnet is KWT-1's size (dim 64, depth 12, MLP 256, ~0.65 M params); choices
    are ``encoder.dims``, ``encoder.depths``, ``encoder.heads``, ``encoder.mlp_ratios``
    (comma-separated) and ``encoder.head_dim``.
    """
    return SuperKWT(n_mels=n_mels, **kwargs)
