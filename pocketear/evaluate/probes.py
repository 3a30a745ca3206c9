"""Probes on frozen segment embeddings: linear, small MLP and kNN.

Probes train on segments (each labelled by its clip) and predict a clip by averaging its
segments' class probabilities, so clips of any length are scored the same way by every method.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pocketear.registry import register


@dataclass
class Segments:
    """Segment embeddings of a set of clips.

    Attributes:
        x: ``(n_segments, D)`` embeddings.
        clip: ``(n_segments,)`` index of each segment's clip in ``[0, n_clips)``.
        y: ``(n_clips,)`` class id of each clip.
    """

    x: np.ndarray
    clip: np.ndarray
    y: np.ndarray

    @property
    def segment_labels(self) -> np.ndarray:
        """The label of each segment (its clip's)."""
        return self.y[self.clip]

    def __len__(self) -> int:
        return len(self.y)


def average_by_clip(proba: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of the segment probabilities of each clip, ``(n_clips, C)``."""
    out = np.zeros((n_clips, proba.shape[1]), dtype=np.float64)
    np.add.at(out, clip, proba)
    counts = np.bincount(clip, minlength=n_clips).astype(np.float64)
    return out / np.maximum(counts, 1.0)[:, None]


class Probe:
    """A classifier on segment embeddings; subclasses build the sklearn estimator.

    ``stochastic`` says whether the seed changes the fit (kNN and logistic regression do not),
    so the runner can skip refitting identical models.
    """

    name = ""
    stochastic = False

    def __init__(self) -> None:
        self.model: Pipeline | None = None
        self.n_classes = 0

    def _build(self, train: Segments, seed: int) -> Pipeline:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, train: Segments, valid: Segments | None, n_classes: int,
            seed: int = 0) -> Probe:
        """Fit on ``train``; ``valid`` (clip-level) may select hyper-parameters."""
        self.n_classes = n_classes
        self.model = self._build(train, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(train.x, train.segment_labels)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Segment probabilities ``(n, n_classes)`` over all classes (unseen ones get 0)."""
        if self.model is None:
            raise RuntimeError("fit the probe first")
        p = self.model.predict_proba(x)
        out = np.zeros((len(x), self.n_classes), dtype=np.float64)
        out[:, self.model.classes_.astype(int)] = p
        return out

    def predict_clips(self, segs: Segments) -> np.ndarray:
        """Clip probabilities ``(n_clips, n_classes)``: the mean over each clip's segments."""
        return average_by_clip(self.predict_proba(segs.x), segs.clip, len(segs))

    def accuracy(self, segs: Segments) -> float:
        """Clip-level accuracy."""
        return float((self.predict_clips(segs).argmax(1) == segs.y).mean())


@register("probe", "linear")
class LinearProbe(Probe):
    """Logistic regression on standardised embeddings; C picked on the valid split.

    Args:
        grid: inverse regularisation strengths tried (fewest updates first, as early stopping).
        max_iter: L-BFGS iterations per fit.
    """

    name = "linear"

    def __init__(self, grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0),
                 max_iter: int = 500) -> None:
        super().__init__()
        self.grid, self.max_iter = tuple(grid), max_iter
        self.chosen_c: float | None = None

    def _build(self, train: Segments, seed: int, c: float = 1.0) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=c, max_iter=self.max_iter, tol=1e-3, random_state=seed))

    def fit(self, train: Segments, valid: Segments | None, n_classes: int,
            seed: int = 0) -> Probe:
        """Fit at each C of the grid; keep the best ``valid`` accuracy."""
        self.n_classes = n_classes
        grid = self.grid if valid is not None and len(valid) and len(self.grid) > 1 else (1.0,)
        best: tuple[float, float, Pipeline] | None = None
        for c in grid:
            model = self._build(train, seed, c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(train.x, train.segment_labels)
            self.model = model
            score = self.accuracy(valid) if valid is not None and len(grid) > 1 else 0.0
            if best is None or score > best[0]:
                best = (score, c, model)
        assert best is not None
        _, self.chosen_c, self.model = best
        return self


@register("probe", "mlp")
class MLPProbe(Probe):
    """One hidden layer of 256 ReLUs on standardised embeddings, early stopping (sklearn)."""

    name = "mlp"
    stochastic = True

    def __init__(self, hidden: int = 256, max_iter: int = 200, alpha: float = 1e-3) -> None:
        super().__init__()
        self.hidden, self.max_iter, self.alpha = hidden, max_iter, alpha

    def _build(self, train: Segments, seed: int) -> Pipeline:
        y = train.segment_labels
        # sklearn's early stopping holds out a stratified 10 %: needs ≥ 2 per class and enough
        # samples for each class to appear there; tiny (k-shot) sets train without it.
        counts = np.bincount(y)
        early = len(y) >= 10 * len(np.unique(y)) and counts[counts > 0].min() >= 2
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(self.hidden,), alpha=self.alpha, early_stopping=bool(early),
            max_iter=self.max_iter, n_iter_no_change=10, random_state=seed))


@register("probe", "knn")
class KNNProbe(Probe):
    """Cosine k-nearest neighbours on standardised embeddings.

    k = min(5, training segments, clips of the rarest training class), so k-shot probes never
    need more neighbours than a class can supply.
    """

    name = "knn"

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        self.k = k

    def _build(self, train: Segments, seed: int) -> Pipeline:
        # never more neighbours than the rarest class has clips: 1-shot is 1-NN
        per_class = np.bincount(train.y)
        k = max(1, min(self.k, len(train.x), int(per_class[per_class > 0].min())))
        return make_pipeline(StandardScaler(), KNeighborsClassifier(
            n_neighbors=k, metric="cosine", algorithm="brute"))
