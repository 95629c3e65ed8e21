"""Segment a follow-up photo against its baseline: the same call where the network saw the
same thing.

A pixel whose probability sits near the threshold flips between two photos of unchanged
skin (another crop, angle or light), and those flips read as change. With the follow-up in
the baseline frame, each of its probability maps takes the baseline's value wherever the two
differ by less than ``within``, so only pixels whose probability moved by that much can
change (docs/compare_and_cohort.md, "Holding what did not change").
"""

from __future__ import annotations

import hashlib

import numpy as np

from vitiseg.inference.predictor import Prediction, Predictor


def held_where_unchanged(
    baseline: np.ndarray | None, followup: np.ndarray | None, within: float
) -> np.ndarray | None:
    """``followup`` with ``baseline``'s value where they differ by less than ``within``.

    Args:
        baseline, followup: (H, W) probabilities of the same output, the follow-up in the
            baseline frame; None when the model lacks the output (returned as given).
        within: Largest move, exclusive, still treated as the same probability; 0 keeps
            the follow-up unchanged.
    """
    if baseline is None or followup is None:
        return followup
    if baseline.shape != followup.shape:
        raise ValueError(f"baseline {baseline.shape} and follow-up {followup.shape} differ")
    if within < 0:
        raise ValueError(f"within must be >= 0, not {within}")
    same = np.abs(followup - baseline) < within
    return np.where(same, baseline, followup).astype(np.float32, copy=False)


def held_prediction(baseline: Prediction, followup: Prediction, within: float) -> Prediction:
    """The follow-up's prediction with every output held as :func:`held_where_unchanged`;
    its uncertainty map stays its own."""
    return Prediction(
        skin=held_where_unchanged(baseline.skin, followup.skin, within),
        lesion=held_where_unchanged(baseline.lesion, followup.lesion, within),
        uncertainty=followup.uncertainty,
        depigmented=held_where_unchanged(baseline.depigmented, followup.depigmented, within),
    )


def pixels_key(rgb: np.ndarray) -> bytes:
    """A digest of the photo's pixels and shape: the same photo, however it was read or
    copied, gets the same key (a cache of predictions keyed by it never goes stale)."""
    key = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16)
    key.update(repr(rgb.shape).encode())
    return key.digest()


class HoldingSegmenter:
    """(baseline photo, follow-up in the baseline frame) -> the follow-up's (skin, lesion,
    depigmented or None) masks, each output held to the baseline's probability where it
    moved by less than ``within``.

    ``segment`` segments a photo on its own, as :meth:`Predictor.segment`. The last two
    predictions are kept (keyed by the photo's pixels), so the baseline segmented on its own,
    then against the follow-up, and again against a re-balanced follow-up is predicted once.
    """

    CACHE_SIZE = 2

    def __init__(self, predictor: Predictor, within: float) -> None:
        if not 0 <= within <= 1:
            raise ValueError(f"hold_unchanged_within must be between 0 and 1, not {within}")
        self.predictor = predictor
        self.within = float(within)
        self._predictions: dict[bytes, Prediction] = {}

    @property
    def metadata(self):
        return self.predictor.metadata

    def _prediction(self, rgb: np.ndarray) -> Prediction:
        digest = pixels_key(rgb)
        if digest not in self._predictions:
            if len(self._predictions) >= self.CACHE_SIZE:
                self._predictions.pop(next(iter(self._predictions)))
            self._predictions[digest] = self.predictor.predict(rgb)
        return self._predictions[digest]

    def segment(self, rgb: np.ndarray) -> tuple:
        """A photo on its own -> (skin, lesion, depigmented or None) masks."""
        return self.predictor.segmentation(self._prediction(rgb), rgb)

    def __call__(self, baseline_rgb: np.ndarray, followup_rgb: np.ndarray) -> tuple:
        if baseline_rgb.shape[:2] != followup_rgb.shape[:2]:
            raise ValueError(
                f"the follow-up {followup_rgb.shape[:2]} must be in the baseline frame "
                f"{baseline_rgb.shape[:2]}"
            )
        baseline = self._prediction(baseline_rgb)
        held = held_prediction(baseline, self.predictor.predict(followup_rgb), self.within)
        return self.predictor.segmentation(held, followup_rgb)
