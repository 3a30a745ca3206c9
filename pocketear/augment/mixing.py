"""Mixing with past inputs: BYOL-A's log-mixup-exp and SLICER's k-mix.

Both mix a slice with a partner drawn from a FIFO memory bank of past inputs, in the linear
(power) domain: ``x' = log((1 - λ) exp(x) + λ exp(m))`` (Niizumi et al. 2021, "BYOL for Audio",
§3.3, and the 2023 TASLP extension, §III-B: "Mixup for foreground acoustic event"), so the
partner acts as background sound added to the slice rather than as a linear blend of log-mels.
The slices are normalised log-mels, which BYOL-A also mixes (after its Pre-Norm).

Memory banks are not checkpointed: a resumed run starts with empty banks, so its mixing partners
differ from an uninterrupted run's (the data order is unchanged). A bank entry longer or shorter
than the slice is cropped at a random offset or wrapped around to the slice's length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from pocketear.augment.base import Augmentation
from pocketear.errors import InvalidValue
from pocketear.registry import register


class MemoryBank:
    """FIFO of the last ``size`` inputs, each with an integer tag (a cluster id or -1)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.items: list[np.ndarray] = []
        self.tags = np.full(self.size, -1, dtype=np.int64)
        self._next = 0

    def __len__(self) -> int:
        return len(self.items)

    def push(self, x: np.ndarray, tag: int = -1) -> None:
        """Store a copy of ``x`` with ``tag``, replacing the oldest entry once full."""
        item = np.array(x, dtype=np.float32, copy=True)
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            self.items[self._next] = item
        self.tags[self._next] = tag
        self._next = (self._next + 1) % self.size

    def clear(self) -> None:
        """Empty the bank."""
        self.items, self._next = [], 0
        self.tags[:] = -1

    def ages(self) -> np.ndarray:
        """Age of every filled slot: 0 for the newest entry, ``len - 1`` for the oldest."""
        return (self._next - 1 - np.arange(len(self))) % self.size


def fit_length(m: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` cut at a random offset, or wrapped around, to ``frames`` frames."""
    if len(m) > frames:
        start = int(rng.integers(len(m) - frames + 1))
        return m[start : start + frames]
    if len(m) < frames:
        return m[np.arange(frames) % len(m)]
    return m


def log_mixup_exp(x: np.ndarray, m: np.ndarray, lam: float) -> np.ndarray:
    """``log((1 - lam) exp(x) + lam exp(m))``, computed stably (BYOL-A §3.3)."""
    if lam <= 0.0:
        return x
    if lam >= 1.0:
        return m.astype(np.float32)
    out = np.logaddexp(np.log1p(-lam) + x, np.log(lam) + m)
    return out.astype(np.float32)


def _check_mix(alpha: float, bank_size: int, p: float) -> None:
    if not 0.0 < alpha <= 1.0 or bank_size < 1 or not 0.0 <= p <= 1.0:
        raise InvalidValue(f"need 0 < alpha <= 1, bank_size >= 1 and 0 <= p <= 1; got alpha="
                         f"{alpha}, bank_size={bank_size}, p={p}")


@register("augmentation", "log_mixup_exp")
class LogMixupExp(Augmentation):
    """BYOL-A's mixup: mix with a random past input, ``λ ~ U(0, alpha)``.

    The input (before mixing) is then pushed into the bank. While the bank is empty (the very
    first call of a run) the slice is returned unchanged. ``last_lambda`` is the last ratio drawn
    (0.0 when nothing was mixed).

    Args:
        alpha: upper bound of the mixing ratio (0.4 in BYOL-A).
        bank_size: memory-bank length (2048 in BYOL-A).
        p: probability of mixing (the input is pushed into the bank either way).
    """

    def __init__(self, alpha: float = 0.4, bank_size: int = 2048, p: float = 1.0) -> None:
        _check_mix(alpha, bank_size, p)
        self.alpha, self.p = float(alpha), float(p)
        self.bank = MemoryBank(bank_size)
        self.last_lambda = 0.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` mixed with a random bank entry (unchanged while the bank is empty)."""
        self.last_lambda = 0.0
        out = x
        if len(self.bank) and rng.random() < self.p:
            m = self.bank.items[int(rng.integers(len(self.bank)))]
            self.last_lambda = float(rng.uniform(0.0, self.alpha))
            out = log_mixup_exp(x, fit_length(m, len(x), rng), self.last_lambda)
        self.bank.push(x)
        return out

    def reset(self) -> None:
        """Empty the memory bank."""
        self.bank.clear()


PARTNERS = ("farthest", "nearest", "other", "same")


def spherical_kmeans(x: np.ndarray, k: int, iters: int, rng: np.random.Generator,
                     spherical: bool = True) -> np.ndarray:
    """k-means centroids ``(k, D)`` (scikit-learn, k-means++ seeding, ``iters`` Lloyd rounds).

    ``spherical``: the points are scaled to unit length before clustering and the centroids
    after it, so a point's nearest centroid is the one of largest cosine (faiss'
    ``spherical=True``, which SLICER's official code uses); mini-batch k-means beyond 20,000
    points. False: plain k-means on the points as they are.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.asarray(x, np.float64)
    if spherical:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    seed = int(rng.integers(2**31 - 1))
    km = (MiniBatchKMeans(k, max_iter=iters, n_init=1, random_state=seed, batch_size=4096)
          if len(x) > 20_000 else KMeans(k, max_iter=iters, n_init=1, random_state=seed))
    c = km.fit(x).cluster_centers_
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12) if spherical else c


@register("augmentation", "kmix")
class KMix(Augmentation):
    """SLICER's k-mix: log-mixup-exp whose partner is drawn from the bank by k-means cluster.

    Seth et al. 2023, "SLICER: Learning universal audio representations using low-resource
    self-supervised pre-training" (ICASSP 2023, §2, k-mix), as its official code implements it
    (GitHub ``Sreyan88/LAPE``, ``src/augmentations/augmentations.py``: ``calculate_centroid``,
    ``Kmix``): before training, spherical k-means (4 clusters, 20 iterations) clusters the
    time-averaged log-mels of the corpus clips (``fit``; the centroids are the run's state). During
    training every input is assigned to the cluster of the nearest centroid (of its own time
    average) and stored in a FIFO bank (2048) with that id. While the bank holds fewer than
    ``top_k`` entries the partner is any bank entry; after that it is chosen by ``partner``:

    - ``"farthest"`` (default, the official code): the other centroids are ranked by their
      distance to the input's centroid, farthest first (``torch.topk``'s default
      ``largest=True``), the input's own centroid last; the partner comes from the first ranked
      cluster that has bank entries, among its ``top_k`` most recent ones (which ``top_k`` the
      official code keeps is not documented; we keep the most recent).
    - ``"nearest"``: the same ranking reversed (``largest=False``): the input's own cluster
      first, then the nearest others. The official ranking may be unintended (the paper's own
      wording of k-mix was not found); this is the other reading.
    - ``"other"`` (this project's earlier default): any entry of a *different* cluster, no
      ranking, no random phase; with no such entry the slice is returned unchanged.
    - ``"same"``: any entry of the input's *own* cluster, likewise.

    Skipped slices (``"other"``/``"same"`` with no eligible entry) are counted in ``skipped``.
    ``last_cluster`` is the input's cluster, ``last_partner_cluster`` the partner's (None when
    nothing was mixed), ``last_lambda`` the ratio.

    Args:
        k: number of clusters (4 in the official config; capped at the number of distinct clips).
        partner: ``"farthest"``, ``"nearest"``, ``"other"`` or ``"same"`` (see above).
        top_k: bank entries of the chosen cluster kept as candidates, and the bank size below
            which the partner is random (128 in the official config).
        iters: k-means iterations (20).
        spherical: unit-length centroids (the official faiss setting); False: plain k-means.
        alpha: upper bound of the mixing ratio ``λ ~ U(0, alpha)`` (0.4).
        bank_size: memory-bank length (BYOL-A's 2048).
        p: probability of mixing (the input is pushed into the bank either way).
    """

    def __init__(self, k: int = 4, partner: str = "farthest", top_k: int = 128, iters: int = 20,
                 spherical: bool = True, alpha: float = 0.4, bank_size: int = 2048,
                 p: float = 1.0) -> None:
        _check_mix(alpha, bank_size, p)
        if k < 2 or partner not in PARTNERS or top_k < 1 or iters < 1:
            raise InvalidValue(f"need k >= 2, top_k >= 1, iters >= 1 and partner one of "
                             f"{', '.join(PARTNERS)}; got k={k}, top_k={top_k}, iters={iters}, "
                             f"partner={partner!r}")
        self.k, self.partner, self.alpha, self.p = int(k), partner, float(alpha), float(p)
        self.top_k, self.iters, self.spherical = int(top_k), int(iters), bool(spherical)
        self.bank = MemoryBank(bank_size)
        self.centroids: np.ndarray | None = None
        self.skipped = 0
        self.last_cluster: int | None = None
        self.last_partner_cluster: int | None = None
        self.last_lambda = 0.0

    def fit(self, clips: Sequence[np.ndarray], rng: np.random.Generator,
            progress: bool = False) -> None:
        """k-means on the time-averaged log-mel of every clip."""
        means = np.stack([np.asarray(c, np.float64).mean(0) for c in
                          tqdm(clips, total=len(clips), desc="k-mix clusters", unit="clip",
                               disable=not progress)])
        k = min(self.k, len(np.unique(means, axis=0)))
        if k < 2:
            raise InvalidValue(
                f"k-mix needs at least 2 distinct clips to cluster, got {len(means)}")
        self.centroids = spherical_kmeans(means, k, self.iters, rng,
                                          self.spherical).astype(np.float32)
        self.reset()

    def state(self) -> dict[str, np.ndarray]:
        """The fitted ``centroids`` (empty before :meth:`fit`)."""
        return {} if self.centroids is None else {"centroids": self.centroids}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore the ``centroids`` saved by :meth:`state` (and empty the bank)."""
        if set(state) != {"centroids"} or np.ndim(state["centroids"]) != 2:
            raise InvalidValue(f"kmix state needs one 2-D 'centroids' array, got {sorted(state)}")
        self.centroids = np.asarray(state["centroids"], dtype=np.float32)
        self.reset()

    def assign(self, x: np.ndarray) -> int:
        """Cluster of a slice: the centroid nearest to its time average."""
        if self.centroids is None:
            raise RuntimeError("kmix has no centroids: the training loop fits them on the corpus "
                               "before training (Compose.fit), or restore them with load_state")
        if x.shape[1] != self.centroids.shape[1]:
            raise ValueError(f"kmix centroids have {self.centroids.shape[1]} mel bins, the slice "
                             f"has {x.shape[1]}")
        return int(np.square(self.centroids - x.mean(0)).sum(1).argmin())

    def ranking(self, cid: int) -> np.ndarray:
        """Cluster ids in the order ``partner`` tries them, by centroid distance to ``cid``.

        Farthest first (``"farthest"``) or nearest first, ``cid`` itself (``"nearest"``).
        """
        assert self.centroids is not None
        dist = np.linalg.norm(self.centroids - self.centroids[cid], axis=1)
        order = np.argsort(dist, kind="stable")
        return order[::-1] if self.partner == "farthest" else order

    def candidates(self, cid: int) -> np.ndarray:
        """Bank indices the partner of a slice of cluster ``cid`` is drawn from (maybe none)."""
        n = len(self.bank)
        tags = self.bank.tags[:n]
        if self.partner in ("other", "same"):
            return np.flatnonzero(tags == cid if self.partner == "same" else tags != cid)
        if n < self.top_k:
            return np.arange(n)
        age = self.bank.ages()
        for c in self.ranking(cid):
            members = np.flatnonzero(tags == c)
            if len(members):
                return members[np.argsort(age[members], kind="stable")[: self.top_k]]
        return np.arange(0)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` mixed with a partner chosen by cluster (see the class doc), then banked."""
        cid = self.last_cluster = self.assign(x)
        self.last_partner_cluster, self.last_lambda = None, 0.0
        out = x
        if len(self.bank) and rng.random() < self.p:
            pool = self.candidates(cid)
            if len(pool):
                j = int(pool[rng.integers(len(pool))])
                self.last_partner_cluster = int(self.bank.tags[j])
                self.last_lambda = float(rng.uniform(0.0, self.alpha))
                m = fit_length(self.bank.items[j], len(x), rng)
                out = log_mixup_exp(x, m, self.last_lambda)
            else:
                self.skipped += 1
        self.bank.push(x, cid)
        return out

    def reset(self) -> None:
        """Empty the bank and the ``skipped`` count; the centroids stay."""
        self.bank.clear()
        self.skipped = 0
