"""SpecAugment-style masks and additive Gaussian noise on normalised log-mel slices.

Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic Speech
Recognition" (Interspeech 2019, §2): frequency masking sets ``f ~ U{0..F}`` consecutive bins
``[f0, f0 + f)`` with ``f0 ~ U{0..ν - f}``, time masking ``t ~ U{0..T}`` frames with
``t <= p·τ``; masked values are the mean, which is 0 for our normalised slices. Time warping is
not included (``time_stretch`` covers speed). Our default widths are scaled to 64 mel bins and
~1 s slices (Park's LibriSpeech policies use F = 27 of 80 bins and T = 100 of long utterances).
"""

from __future__ import annotations

import numpy as np

from pocketear.augment.base import Augmentation
from pocketear.errors import InvalidValue
from pocketear.registry import register


@register("augmentation", "spec_augment")
class SpecAugment(Augmentation):
    """Time and frequency masks (Park et al. 2019, §2; no time warp).

    ``last_masks`` lists the masks of the last call as ``(axis, start, width)`` with axis 0 =
    time, 1 = frequency (width-0 masks included: Park's widths start at 0).

    Args:
        time_masks: number of time masks ``m_T``.
        time_width: largest time-mask width ``T`` (frames).
        freq_masks: number of frequency masks ``m_F``.
        freq_width: largest frequency-mask width ``F`` (bins).
        max_time_ratio: Park's ``p``: a time mask covers at most this fraction of the slice.
        fill: value of masked cells (0: the normalised mean, as in Park et al.).
        p: probability of applying the masks.
    """

    def __init__(self, time_masks: int = 2, time_width: int = 10, freq_masks: int = 2,
                 freq_width: int = 8, max_time_ratio: float = 1.0, fill: float = 0.0,
                 p: float = 1.0) -> None:
        if min(time_masks, time_width, freq_masks, freq_width) < 0:
            raise InvalidValue(f"mask counts and widths must be >= 0; got time_masks={time_masks},"
                             f" time_width={time_width}, freq_masks={freq_masks}, "
                             f"freq_width={freq_width}")
        if not 0.0 < max_time_ratio <= 1.0 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need 0 < max_time_ratio <= 1 and 0 <= p <= 1; got "
                             f"{max_time_ratio}, {p}")
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.max_time_ratio, self.fill, self.p = float(max_time_ratio), float(fill), float(p)
        self.last_masks: list[tuple[int, int, int]] = []

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy with time, then frequency masks set to ``fill`` (``x`` with prob. ``1 - p``)."""
        self.last_masks = []
        if rng.random() >= self.p:
            return x
        out = np.array(x, dtype=np.float32, copy=True)
        t, f = x.shape
        limits = ((0, self.time_masks, min(self.time_width, int(self.max_time_ratio * t), t)),
                  (1, self.freq_masks, min(self.freq_width, f)))
        for axis, count, width in limits:
            size = x.shape[axis]
            for _ in range(count):
                w = int(rng.integers(width + 1))
                start = int(rng.integers(size - w + 1))
                self.last_masks.append((axis, start, w))
                if axis == 0:
                    out[start : start + w] = self.fill
                else:
                    out[:, start : start + w] = self.fill
        return out


@register("augmentation", "gaussian_noise")
class GaussianNoise(Augmentation):
    """Add i.i.d. ``N(0, sigma²)`` to every cell (in units of each bin's corpus std).

    Args:
        sigma: noise standard deviation.
        p: probability of adding it.
    """

    def __init__(self, sigma: float = 0.1, p: float = 1.0) -> None:
        if sigma <= 0 or not 0.0 <= p <= 1.0:
            raise InvalidValue(f"need sigma > 0 and 0 <= p <= 1; got sigma={sigma}, p={p}")
        self.sigma, self.p = float(sigma), float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The slice plus fresh noise (or unchanged, with probability ``1 - p``)."""
        if rng.random() >= self.p:
            return x
        return (x + rng.normal(0.0, self.sigma, x.shape)).astype(np.float32)
