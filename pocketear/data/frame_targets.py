"""Discrete frame targets for HuBERT and BEATs: features, codebooks, target files.

A ``FrameLabeler`` turns a normalised log-mel slice ``(B, S, F)`` into one label per encoder
output frame ``(B, T')``: it computes frame features, then picks the nearest codebook entry.
Feature kinds:

- ``mfcc``: 13 DCT-II coefficients of the log-mel frame + Δ + ΔΔ (39-d; HuBERT iteration 1,
  Hsu et al. 2021, §IV.B, clusters 39-d MFCCs), averaged over each output frame's input frames;
- ``logmel``: the log-mel frame itself, averaged the same way;
- ``patch``: the output frame's input frames flattened, randomly projected (BEATs' iteration-1
  random-projection tokenizer, Chen et al. 2022, §2.2, after BEST-RQ);
- ``model``: a frozen previous encoder's features at one layer (HuBERT's later iterations).

``metric`` is ``euclidean`` (k-means) or ``cosine`` (both sides L2-normalised: BEATs' codebook
lookup). Target files are ``.npz`` of plain arrays (read with ``allow_pickle=False``): the
codebook, the metric, the feature kind and, for ``model`` targets, the encoder's registry config
and weights, so a file is self-contained and needs no path to the run it came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketear.encoders.base import Encoder
from pocketear.errors import InvalidValue, MissingPath
from pocketear.registry import create

FORMAT = "pocketear-targets-v1"
KINDS = ("mfcc", "logmel", "patch", "model")


def dct_matrix(n_mels: int, n_coeffs: int = 13) -> torch.Tensor:
    """Orthonormal DCT-II ``(n_mels, n_coeffs)``: log-mel frames → cepstra."""
    m = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_coeffs, dtype=torch.float64)[:, None]
    c = torch.cos(torch.pi * k * (m + 0.5) / n_mels) * (2.0 / n_mels) ** 0.5
    c[0] /= 2**0.5
    return c.T.float()


def deltas(c: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over time (dim -2) with edge replication (HTK's formula)."""
    t = c.shape[-2]
    idx = torch.arange(t)
    num = sum(n * (c[..., (idx + n).clamp(max=t - 1), :] - c[..., (idx - n).clamp(min=0), :])
              for n in range(1, width + 1))
    return num / (2 * sum(n * n for n in range(1, width + 1)))


def mfcc(logmel: torch.Tensor, n_coeffs: int = 13) -> torch.Tensor:
    """``(…, T, F)`` log-mel → ``(…, T, 3·n_coeffs)`` MFCC + Δ + ΔΔ."""
    c = logmel @ dct_matrix(logmel.shape[-1], n_coeffs).to(logmel.dtype)
    d = deltas(c)
    return torch.cat([c, d, deltas(d)], dim=-1)


def pool_frames(feat: torch.Tensor, n_out: int) -> torch.Tensor:
    """Average ``(B, S, D)`` input-frame features over each of ``n_out`` output frames.

    The stride is ``ceil(S / n_out)``; the last output frame takes what is left.
    """
    b, s, d = feat.shape
    stride = -(-s // n_out)
    owner = torch.arange(s).div(stride, rounding_mode="floor").clamp(max=n_out - 1)
    total = feat.new_zeros(b, n_out, d).index_add_(1, owner, feat)
    count = torch.bincount(owner, minlength=n_out).clamp(min=1).to(feat.dtype)
    return total / count[:, None]


def patches(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """``(B, S, F)`` → ``(B, n_out, stride·F)``: each output frame's input frames, flattened.

    The end is padded by repeating the last frame.
    """
    b, s, f = x.shape
    stride = -(-s // n_out)
    pad = n_out * stride - s
    if pad:
        x = torch.cat([x, x[:, -1:].expand(b, pad, f)], dim=1)
    return x.reshape(b, n_out, stride * f)


def nearest(feat: torch.Tensor, codebook: torch.Tensor, metric: str) -> torch.Tensor:
    """Index of the nearest codebook row for each feature ``(…, D)``."""
    if metric == "cosine":
        f = nn.functional.normalize(feat.float(), dim=-1)
        return (f @ nn.functional.normalize(codebook, dim=-1).T).argmax(-1)
    if metric == "euclidean":
        f = feat.float()
        d = f.pow(2).sum(-1, keepdim=True) - 2 * f @ codebook.T + codebook.pow(2).sum(-1)
        return d.argmin(-1)
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def encoder_layer(encoder: Encoder, x: torch.Tensor, layer: int) -> torch.Tensor:
    """Frame features of ``(B, 1, T, F)`` at ``layer``.

    Layer 0 is the encoder's output, ``l ≥ 1`` is block ``l`` (needs ``layer_outputs``).

    Raises:
        InvalidValue: The user's ``--layer`` needs per-layer outputs the encoder lacks, or is out
            of range.
    """
    if layer == 0:
        return encoder(x)
    if not (isinstance(encoder, Encoder) and encoder.has_layer_outputs):
        raise InvalidValue(f"{type(encoder).__name__} has no per-layer outputs; use --layer 0")
    layers = encoder.layer_outputs(x)
    if not 1 <= layer <= len(layers):
        raise InvalidValue(f"layer must be 0 … {len(layers)}, got {layer}")
    return layers[layer - 1]


class FrameLabeler(nn.Module):
    """Frozen frame → label map (features + codebook).

    Every array is a buffer, so it travels in the task's state dict and checkpoints.

    Raises:
        InvalidValue: An unknown feature ``kind`` (from a config or a target file).
        ValueError: ``projection``/``encoder`` not matching ``kind`` (a caller bug).
    """

    def __init__(self, kind: str, codebook: torch.Tensor, metric: str = "euclidean",
                 projection: torch.Tensor | None = None, encoder: nn.Module | None = None,
                 layer: int = 0) -> None:
        super().__init__()
        if kind not in KINDS:
            raise InvalidValue(f"target features must be one of {KINDS}, got {kind!r}")
        if (kind == "patch") != (projection is not None) or (kind == "model") != (encoder
                                                                                  is not None):
            raise ValueError("patch targets need a projection, model targets an encoder")
        self.kind, self.metric, self.layer = kind, metric, int(layer)
        self.register_buffer("codebook", codebook.float().clone())
        self.register_buffer("projection", None if projection is None else
                             projection.float().clone())
        self.encoder = None if encoder is None else encoder.requires_grad_(False).eval()

    @property
    def k(self) -> int:
        """Number of labels (codebook rows)."""
        return int(self.codebook.shape[0])

    def train(self, mode: bool = True) -> FrameLabeler:
        """Ignore ``mode``: the labeler (and its encoder) stays in eval mode; labels stay fixed."""
        super().train(False)  # always frozen, deterministic
        return self

    @torch.no_grad()
    def features(self, x: torch.Tensor, n_out: int) -> torch.Tensor:
        """Frame features ``(B, n_out, D)`` of normalised log-mels ``(B, S, F)``.

        Raises:
            InvalidValue: A ``patch`` tokenizer built for another encoder stride (the user's
                tokenizer file does not fit this encoder).
        """
        x = x.float()
        if self.kind == "mfcc":
            return pool_frames(mfcc(x), n_out)
        if self.kind == "logmel":
            return pool_frames(x, n_out)
        if self.kind == "patch":
            p = patches(x, n_out)
            if p.shape[-1] != self.projection.shape[0]:
                raise InvalidValue(f"tokenizer projects {self.projection.shape[0]} values per "
                                   f"frame, got {p.shape[-1]}: built for another encoder stride")
            return p @ self.projection
        h = encoder_layer(self.encoder, x.unsqueeze(1), self.layer).float()
        if h.shape[1] != n_out:  # another frame rate: nearest frame in time
            idx = ((torch.arange(n_out) + 0.5) * h.shape[1] / n_out).long().clamp(
                max=h.shape[1] - 1)
            h = h[:, idx]
        return h

    @torch.no_grad()
    def forward(self, x: torch.Tensor, n_out: int) -> torch.Tensor:
        """Labels ``(B, n_out)``: the nearest codebook row of each frame's features."""
        return nearest(self.features(x, n_out), self.codebook, self.metric)


def save_targets(path: str | os.PathLike[str], codebook: np.ndarray, kind: str,
                 metric: str = "euclidean", layer: int = 0,
                 encoder_cfg: dict[str, Any] | None = None,
                 encoder_state: dict[str, torch.Tensor] | None = None,
                 projection: np.ndarray | None = None,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write a target/tokenizer file (plain arrays only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "kind": np.array(kind), "metric": np.array(metric),
        "layer": np.array(int(layer)), "codebook": np.asarray(codebook, np.float32),
        "meta": np.array(json.dumps(meta or {})),
        "encoder_cfg": np.array(json.dumps(encoder_cfg or {})),
    }
    if projection is not None:
        arrays["projection"] = np.asarray(projection, np.float32)
    for name, t in (encoder_state or {}).items():
        arrays[f"enc.{name}"] = t.detach().cpu().numpy()
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_targets(path: str | os.PathLike[str]) -> FrameLabeler:
    """Read a target file into a :class:`FrameLabeler` (no pickle).

    Raises:
        MissingPath: ``path`` does not exist.
        InvalidValue: It is not a readable pocketear targets file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"{path}: no such targets file; make one with `pocketear "
                          "cluster` (HuBERT) or `pocketear tokenizer` (BEATs)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise InvalidValue(f"{path}: not a readable targets file ({err})") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise InvalidValue(f"{path}: not a pocketear targets file (no '{FORMAT}' marker)")
    kind, metric = str(arrays["kind"]), str(arrays["metric"])
    encoder = None
    if kind == "model":
        cfg = json.loads(str(arrays["encoder_cfg"]))
        cfg.pop("readout", None)  # frame targets come from layer outputs, never the read-out
        encoder = create("encoder", cfg.pop("name"), **cfg)
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("enc.")}
        encoder.load_state_dict(state)
    projection = torch.from_numpy(arrays["projection"]) if "projection" in arrays else None
    return FrameLabeler(kind, torch.from_numpy(arrays["codebook"]), metric, projection,
                        encoder, int(arrays["layer"]))


def random_projection_tokenizer(in_dim: int, dim: int = 16, k: int = 1024,
                                seed: int = 0) -> FrameLabeler:
    """BEATs' iteration-1 tokenizer (Chen et al. 2022, §2.2), a pure function of ``seed``.

    A frozen random projection (Xavier-normal) of each patch and a random standard-normal
    codebook, looked up by cosine similarity.
    """
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(in_dim, dim, generator=g) * (2.0 / (in_dim + dim)) ** 0.5
    codebook = torch.randn(k, dim, generator=g)
    return FrameLabeler("patch", codebook, "cosine", projection=proj)
