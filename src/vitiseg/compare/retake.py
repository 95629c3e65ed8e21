"""How far a model's comparisons move when nothing changed: its re-take noise.

``scripts/retest_probe.py`` compares copies of the same photo (cropped, flipped, rotated:
re-takes with no change) as ``vitiseg-compare`` does, and ``scripts/record_retake_noise.py``
keeps the size of every such "change" in the model folder (``metadata.json``,
``evaluation.retake_noise``). A comparison then says what share of those no-change pairs
moved at least as much as it did: a 20 % improvement that one no-change pair in five also
shows is not evidence of a response.

The pairs are copies of one photo, so a real re-take (another day, pose and light) moves
more: the share is a lower bound on how often noise alone gives such a change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

METADATA_KEY = "retake_noise"

# vitiseg-compare settings that change what a comparison reads; the noise measured with one
# value says little about another.
COMPARED_SETTINGS = (
    "tta",
    "scales",
    "depigmented_source",
    "match_lighting",
    "segment_aligned",
    "hold_levels_within",
    "hold_unchanged_within",
    "follow_baseline_patches",
)

# Ratios of float sums: an improvement equal to a recorded one counts as reaching it.
_TOLERANCE = 1e-9
_NOTE_START = "within the model's re-take noise"


def is_retake_note(note: str) -> bool:
    """Whether a comparison note is :meth:`RetakeNoise.note`'s."""
    return note.startswith(_NOTE_START)


def share_at_least(improvements: Sequence[float], improvement: float) -> float:
    """The share of no-change pairs whose |improvement| reached ``|improvement|`` (either
    way: a no-change pair that lost as much is as much noise).

    Args:
        improvements: The improvement of each no-change pair, non-empty.
        improvement: The comparison's improvement.
    """
    if not improvements:
        raise ValueError("no no-change pairs to compare with")
    reached = sum(abs(value) >= abs(improvement) - _TOLERANCE for value in improvements)
    return reached / len(improvements)


@dataclass(frozen=True)
class RetakeNoise:
    """A model's comparisons of no-change pairs.

    Attributes:
        improvements: The improvement of each no-change pair (positive: read as better).
        settings: The :data:`COMPARED_SETTINGS` they were compared with.
        description: Which pairs they are, for notes (e.g. "aligned copies of 25
            vitiligo-web photos, ...").
    """

    improvements: tuple[float, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not self.improvements:
            raise ValueError("re-take noise needs at least one no-change pair")
        if not all(math.isfinite(v) for v in self.improvements):
            raise ValueError("re-take noise: every improvement must be finite")

    def share_at_least(self, improvement: float) -> float:
        """See :func:`share_at_least`."""
        return share_at_least(self.improvements, improvement)

    def responder_share(self, level: float = 0.5) -> float:
        """The share of no-change pairs read as responders at ``level`` (0.5: VASI50)."""
        reached = sum(value >= level - _TOLERANCE for value in self.improvements)
        return reached / len(self.improvements)

    def note(self, improvement: float, share: float) -> str:
        """Plain-language note for a comparison within this noise."""
        reached = round(share * len(self.improvements))
        return (
            f"{_NOTE_START}: {reached} of {len(self.improvements)} comparisons of "
            f"photos with no change moved by {abs(improvement):.0%} or more ({self.description})"
        )

    def settings_differing(self, settings: Mapping[str, Any]) -> list[str]:
        """The compared settings whose value in ``settings`` is not the one measured."""
        return [
            name
            for name in COMPARED_SETTINGS
            if _comparable(settings.get(name)) != _comparable(self.settings.get(name))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "improvements": list(self.improvements),
            "settings": dict(self.settings),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetakeNoise:
        return cls(
            improvements=tuple(float(v) for v in data["improvements"]),
            settings=dict(data.get("settings", {})),
            description=str(data.get("description", "")),
        )


def retake_noise_of(evaluation: Mapping[str, Any]) -> RetakeNoise | None:
    """The re-take noise kept in a model's ``evaluation`` metadata, or None."""
    data = evaluation.get(METADATA_KEY)
    return None if data is None else RetakeNoise.from_dict(data)


def _comparable(value: Any) -> Any:
    """Lists and tuples alike, numbers as floats (a YAML 1 and a JSON 1.0 agree)."""
    if isinstance(value, list | tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
