"""BYOL-A's other augmentations: Pre-/Post-Normalisation and Random Resize Crop.

Niizumi et al. 2021, "BYOL for Audio: Self-Supervised Learning for General-Purpose Audio
Representation" (IJCNN 2021, §3.2–3.4), and the 2023 TASLP extension "BYOL for Audio: Exploring
Pre-trained General-purpose Audio Representations" (§III-B). BYOL-A's module chain is
``pre_norm → log_mixup_exp → random_resize_crop → post_norm`` (mixing lives in ``mixing.py``).
Written from the papers, not from the reference code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pocketear.augment.base import Augmentation
from pocketear.errors import InvalidValue
from pocketear.registry import register


class _Standardise(Augmentation):
    """``(x - mean) / std`` with statistics fitted on the clips ``fit`` is given."""

    stochastic = False

    def __init__(self, per_bin: bool = False, max_clips: int = 2000, eps: float = 1e-5) -> None:
        if max_clips < 1 or eps <= 0:
            raise InvalidValue(f"need max_clips >= 1 and eps > 0; got {max_clips}, {eps}")
        self.per_bin, self.max_clips, self.eps = bool(per_bin), int(max_clips), float(eps)
        self.mean = np.zeros((), np.float32)
        self.std = np.ones((), np.float32)
        self.fitted = False

    def fit(self, clips: Sequence[np.ndarray], rng: np.random.Generator,
            progress: bool = False) -> None:
        """Mean and std over every frame of up to ``max_clips`` random clips.

        Two scalars, or one mean and std per mel bin with ``per_bin``.
        """
        n = len(clips)
        if n < 1:
            raise ValueError(f"{type(self).__name__}: no clips to fit statistics on")
        pick = np.sort(rng.permutation(n)[: self.max_clips])
        axis = 0 if self.per_bin else None
        count, total, squares = 0, 0.0, 0.0
        for i in tqdm(pick, desc=f"{type(self).__name__} statistics", unit="clip",
                      disable=not progress):
            c = np.asarray(clips[int(i)], np.float64)
            count += c.shape[0] if self.per_bin else c.size
            total = total + c.sum(axis)
            squares = squares + np.square(c).sum(axis)
        mean = np.asarray(total / count)
        var = np.maximum(np.asarray(squares / count) - np.square(mean), 0.0)
        self.mean = mean.astype(np.float32)
        self.std = np.sqrt(var).astype(np.float32)
        self.fitted = True

    def state(self) -> dict[str, np.ndarray]:
        """The fitted ``mean`` and ``std`` (empty before :meth:`fit`)."""
        return {"mean": self.mean, "std": self.std} if self.fitted else {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore ``mean`` and ``std`` saved by :meth:`state`."""
        if set(state) != {"mean", "std"}:
            raise InvalidValue(f"{type(self).__name__} state needs 'mean' and 'std', got "
                             f"{sorted(state)}")
        self.mean = np.asarray(state["mean"], np.float32)
        self.std = np.asarray(state["std"], np.float32)
        self.fitted = True

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(x - mean) / (std + eps)``; draws nothing from ``rng``."""
        return ((x - self.mean) / (self.std + self.eps)).astype(np.float32)


@register("augmentation", "pre_norm")
class PreNorm(_Standardise):
    """BYOL-A's Pre-Normalisation: standardise inputs by statistics of the corpus (§3.2).

    Our slices are already normalised per mel bin on the corpus, so the fitted scalar mean and
    std are ~0 and ~1 and this is nearly the identity; it is kept so BYOL-A's chain can be
    written as in the paper (and matters with ``per_bin=False`` inputs of other origins).
    Unfitted it is the identity.

    Args:
        per_bin: one mean/std per mel bin instead of BYOL-A's two scalars.
        max_clips: clips (random) the statistics are computed on.
        eps: added to the std.
    """


@register("augmentation", "post_norm")
class PostNorm(_Standardise):
    """BYOL-A's Post-Normalisation: standardise views by statistics of augmented views (§3.2).

    The statistics are computed before training, to undo the drift mixup and crops introduce.

    Inside a :class:`Compose` it is fitted on the clips as transformed by the augmentations
    before it. Unfitted it is the identity. Args as :class:`PreNorm`.
    """


def _uniform_pair(name: str, value: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0.0 < lo <= hi:
        raise InvalidValue(f"{name} must be (low, high) with 0 < low <= high, got {tuple(value)}")
    return lo, hi


@register("augmentation", "random_resize_crop")
class RandomResizeCrop(Augmentation):
    """BYOL-A's Random Resize Crop (§3.4): a random crop of a virtual canvas, resized back.

    The slice sits at the centre of a zero canvas (0 is the normalised mean) of
    ``time_canvas × T`` by ``freq_canvas × F``; a crop of ``round(T · s_t)`` by
    ``round(F · s_f)`` with ``s_t ~ U(time_scale)`` and ``s_f ~ U(freq_scale)``, each clipped to
    the canvas, is taken at a uniform position and resized to ``(T, F)``. With BYOL-A's defaults
    (canvas 1.5 in time, 1.0 in frequency; scales 0.6–1.5) the crop shifts and stretches time and
    stretches frequency (a frequency crop wider than the canvas is the whole axis).
    ``last_crop`` is the last ``(frames, bins)`` cropped, ``last_offset`` its corner.

    Args:
        time_canvas: canvas length as a multiple of ``T`` (>= 1).
        freq_canvas: canvas height as a multiple of ``F`` (>= 1).
        time_scale: ``(low, high)`` crop length relative to ``T``.
        freq_scale: ``(low, high)`` crop height relative to ``F``.
        interpolation: ``"bicubic"`` (BYOL-A) or ``"bilinear"``.
        p: probability of applying it.
    """

    def __init__(self, time_canvas: float = 1.5, freq_canvas: float = 1.0,
                 time_scale: Sequence[float] = (0.6, 1.5),
                 freq_scale: Sequence[float] = (0.6, 1.5),
                 interpolation: str = "bicubic", p: float = 1.0) -> None:
        if time_canvas < 1.0 or freq_canvas < 1.0 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need canvases >= 1 and 0 <= p <= 1; got time_canvas="
                             f"{time_canvas}, freq_canvas={freq_canvas}, p={p}")
        if interpolation not in ("bicubic", "bilinear"):
            raise InvalidValue(f"interpolation must be 'bicubic' or 'bilinear', got "
                             f"{interpolation!r}")
        self.time_canvas, self.freq_canvas = float(time_canvas), float(freq_canvas)
        self.time_scale = _uniform_pair("time_scale", time_scale)
        self.freq_scale = _uniform_pair("freq_scale", freq_scale)
        self.interpolation, self.p = interpolation, float(p)
        self.last_crop: tuple[int, int] | None = None
        self.last_offset: tuple[int, int] | None = None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random crop of the slice on its canvas, resized back to the slice's shape."""
        self.last_crop = self.last_offset = None
        if rng.random() >= self.p:
            return x
        t, f = x.shape
        ct, cf = round(t * self.time_canvas), round(f * self.freq_canvas)
        canvas = np.zeros((ct, cf), np.float32)
        t0, f0 = (ct - t) // 2, (cf - f) // 2
        canvas[t0 : t0 + t, f0 : f0 + f] = x
        h = int(np.clip(round(t * rng.uniform(*self.time_scale)), 1, ct))
        w = int(np.clip(round(f * rng.uniform(*self.freq_scale)), 1, cf))
        i, j = int(rng.integers(ct - h + 1)), int(rng.integers(cf - w + 1))
        self.last_crop, self.last_offset = (h, w), (i, j)
        crop = torch.from_numpy(np.ascontiguousarray(canvas[i : i + h, j : j + w]))[None, None]
        out = F.interpolate(crop, size=(t, f), mode=self.interpolation, align_corners=False)
        return out[0, 0].numpy().astype(np.float32)
