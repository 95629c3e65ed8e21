"""Did the lighting change between two visits? Measured on the normal skin of both photos.

The default model reads lightness and colour: on the 27 validation photos made 15 % darker
it outlined a median 18 % less lesion, 15 % brighter 11 % more, and on photos 10 % bluer its
lesion Dice fell from 0.67 to 0.51 (docs/compare_and_cohort.md). A follow-up photo taken
darker, brighter or under other light than the baseline can therefore show a "response"
that is partly the photo's. The patient's own normal skin (skin outside
the lesions in each photo) is the reference both photos share, so the ratio of its median
colour between the visits estimates the change of exposure and white balance: pixel by pixel
when the photos are aligned, else from each photo's median. A tan moves it too; the note
says so. With an aligned reading the follow-up can be re-balanced channel by channel to the
baseline's normal skin before it is segmented (``rebalanced``). Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Pixels with a channel at or above this are clipped and carry no ratio.
_CLIPPED = 250
# Pixels with a channel at or below this are noise.
_BLACK = 5
# Fewer normal-skin pixels than this give no reliable median.
_MIN_PIXELS = 500
# A follow-up whose normal skin moved less than this in every channel is segmented as taken:
# re-saving a JPEG alone moves the medians by about a per cent.
_MIN_REBALANCE = 0.02


def _unclipped(pixels: np.ndarray) -> np.ndarray:
    """(N,) True where an (N, 3) pixel has no channel clipped white or black."""
    return ((pixels < _CLIPPED) & (pixels > _BLACK)).all(axis=1)


@dataclass(frozen=True)
class LightingChange:
    """How the follow-up photo's normal skin differs from the baseline's.

    Attributes:
        exposure: Follow-up / baseline median green level (green is the reference channel
            of a white balance): 0.85 = the follow-up's normal skin is 15 % darker.
        red_blue: The follow-up's median red / blue ratio over the baseline's: below 1 the
            follow-up is bluer (cooler light), above 1 redder (warmer light or a tan).
        channels: Follow-up / baseline median (red, green, blue) levels.
        pixel_matched: Read pixel by pixel on aligned normal skin (else from each photo's
            own median, which the two lesion masks' differences move).
        rebalanced: The follow-up was divided by ``channels`` before it was segmented.
        clipped_share: With ``rebalanced``: share of the follow-up's skin clipped white in a
            channel the re-balancing lowers (:func:`unrestorable_share`); None otherwise.
    """

    exposure: float
    red_blue: float
    channels: tuple[float, float, float]
    pixel_matched: bool = False
    rebalanced: bool = False
    clipped_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "exposure": round(self.exposure, 4),
            "red_blue": round(self.red_blue, 4),
            "channels": [round(ratio, 4) for ratio in self.channels],
            "pixel_matched": self.pixel_matched,
            "followup_rebalanced": self.rebalanced,
            "followup_clipped_share": (
                None if self.clipped_share is None else round(self.clipped_share, 4)
            ),
        }


def normal_skin_colour(rgb: np.ndarray, skin: np.ndarray, lesion: np.ndarray) -> np.ndarray | None:
    """Median (R, G, B) of the skin outside the lesion, leaving out clipped and black
    pixels; None when fewer than 500 such pixels remain."""
    normal = np.asarray(skin, bool) & ~np.asarray(lesion, bool)
    pixels = np.asarray(rgb)[normal]
    usable = _unclipped(pixels)
    if int(usable.sum()) < _MIN_PIXELS:
        return None
    return np.median(pixels[usable].astype(np.float64), axis=0)


def matched_lighting_change(
    baseline_rgb: np.ndarray, aligned_followup_rgb: np.ndarray, normal_in_both: np.ndarray
) -> LightingChange | None:
    """The change read pixel by pixel where both photos show normal skin (the follow-up
    already in the baseline frame): the medians of the per-pixel ratios, so neither the
    two skin masks' differences nor framing move it. None when fewer than 500 pixels,
    unclipped and not black in both photos, remain."""
    reference = np.asarray(normal_in_both, bool)
    base = np.asarray(baseline_rgb)[reference].astype(np.float64)
    follow = np.asarray(aligned_followup_rgb)[reference].astype(np.float64)
    usable = _unclipped(base) & _unclipped(follow)
    if int(usable.sum()) < _MIN_PIXELS:
        return None
    base, follow = base[usable], follow[usable]
    ratios = follow / base
    red, green, blue = (float(np.median(ratios[:, channel])) for channel in range(3))
    return LightingChange(
        exposure=green,
        red_blue=float(np.median(ratios[:, 0] / ratios[:, 2])),
        channels=(red, green, blue),
        pixel_matched=True,
    )


def lighting_change(baseline_colour: np.ndarray, followup_colour: np.ndarray) -> LightingChange:
    """The change from the baseline's normal-skin colour to the follow-up's (each (R, G, B))."""
    base_r, base_g, base_b = (float(v) for v in baseline_colour)
    follow_r, follow_g, follow_b = (float(v) for v in followup_colour)
    return LightingChange(
        exposure=follow_g / base_g,
        red_blue=(follow_r / follow_b) / (base_r / base_b),
        channels=(follow_r / base_r, follow_g / base_g, follow_b / base_b),
    )


def worth_rebalancing(change: LightingChange) -> bool:
    """True when some channel of the normal skin moved by more than re-saving noise."""
    return any(abs(ratio - 1) > _MIN_REBALANCE for ratio in change.channels)


def rebalanced(rgb: np.ndarray, change: LightingChange) -> np.ndarray:
    """The follow-up photo with each channel divided by its normal-skin ratio, so its normal
    skin matches the baseline's; rounded and clipped to 0-255. A channel clipped at 255
    stays 255: its true level is unknown and at least that, and dividing it would grey the
    white patches of a photo taken brighter."""
    rgb = np.asarray(rgb)
    scaled = rgb.astype(np.float32) / np.asarray(change.channels, np.float32)
    scaled[rgb == 255] = 255
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def unrestorable_share(rgb: np.ndarray, skin: np.ndarray, change: LightingChange) -> float:
    """Share of the follow-up's ``skin`` pixels clipped white (>= 250) in a channel that
    re-balancing lowers (ratio above 1.02): their level before clipping is unknown, so the
    re-balanced photo keeps them too light, mostly on white patches of a brighter or warmer
    follow-up."""
    lowered = [
        channel for channel, ratio in enumerate(change.channels) if ratio > 1 + _MIN_REBALANCE
    ]
    skin = np.asarray(skin, bool)
    if not lowered or not skin.any():
        return 0.0
    pixels = np.asarray(rgb)[skin][:, lowered]
    return float(np.mean((pixels >= _CLIPPED).any(axis=1)))


# Every note lighting_note writes starts with one of these (a cohort counts them).
_NOTE_STARTS = ("lighting changed", "the follow-up was re-balanced")


def is_lighting_note(note: str) -> bool:
    """True for a note :func:`lighting_note` wrote."""
    return note.startswith(_NOTE_STARTS)


def lighting_note(
    change: LightingChange, tolerance: float, max_clipped_share: float = 1.0
) -> str | None:
    """A plain-language note when exposure or red/blue balance moved by more than
    ``tolerance`` (relative, either way), or when a re-balanced follow-up has more than
    ``max_clipped_share`` of its skin clipped beyond repair; None otherwise. It says whether
    the follow-up was re-balanced before it was segmented."""
    clipped = (
        change.rebalanced
        and change.clipped_share is not None
        and change.clipped_share > max_clipped_share
    )
    clipped_part = (
        f"; {change.clipped_share:.0%} of the follow-up's skin is clipped white in a colour "
        "channel the re-balancing lowers, which it cannot restore (those pixels stay too "
        "light), so the comparison may still be off"
        if clipped
        else ""
    )
    parts = []
    for ratio, lower, higher in (
        (change.exposure, "darker", "brighter"),
        (change.red_blue, "bluer", "redder"),
    ):
        if ratio < 1 / (1 + tolerance) or ratio > 1 + tolerance:
            word = lower if ratio < 1 else higher
            parts.append(f"{abs(ratio - 1):.0%} {word}")
    if not parts:
        if clipped:
            return "the follow-up was re-balanced to the baseline's normal skin" + clipped_part
        return None
    changed = (
        f"lighting changed: the normal skin is {' and '.join(parts)} in the follow-up photo "
        "than at baseline (light, camera settings or a tan); "
    )
    if change.rebalanced:
        return changed + (
            "the follow-up was re-balanced to the baseline's normal skin before it was "
            "segmented, which removes much of a change of exposure or white balance but not "
            "of shadows, glare or a tan" + clipped_part + ": take both visits under the same "
            "light and camera settings"
        )
    return changed + (
        "the model outlines less lesion on darker photos, more on brighter ones and misses "
        "lesions under a colour cast, so part of the change may come from the photos: take "
        "both visits under the same light and camera settings"
    )
