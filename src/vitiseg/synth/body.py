"""Body-part silhouettes for procedural photos, as signed distance fields.

Each region gets a simple, recognisable shape in a square frame: a face (front) or the
nape (back) with scalp hair and eyes, a hand with fingers, a foot with toes, an arm or
leg crossing the frame, a torso or a close-up of the trunk. Borders are pushed by smooth
noise so no two are alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vitiseg.synth.fields import (
    fill_holes,
    rotated_coords,
    sd_capsule,
    sd_ellipse,
    smooth_union,
    value_noise,
)
from vitiseg.synth.records import REGIONS


@dataclass(frozen=True)
class BodyShape:
    """Geometry of the photographed body part.

    Attributes:
        sdf: (H, W) float32 signed distance in pixels to the body outline (negative inside).
        scalp: (H, W) float32 signed distance to scalp hair drawn over the skin (+inf: none).
        eyes: (H, W) float32 signed distance to the eyes (+inf: none).
        lips: (H, W) float32 signed distance to the lips, which are skin (+inf: none).
        relief: (H, W) float32 shading factor of small features (nose, eye sockets), 1: none.
        eye_centers: (x, y) pixel centre of each eye.
        eye_radius: Half height of an eye opening in pixels.
        hair_angle: Main direction of body hair, in radians.
    """

    sdf: np.ndarray
    scalp: np.ndarray
    eyes: np.ndarray
    lips: np.ndarray
    relief: np.ndarray
    eye_centers: tuple[tuple[float, float], ...] = ()
    eye_radius: float = 0.0
    hair_angle: float = 0.0

    @property
    def skin(self) -> np.ndarray:
        """(H, W) bool: inside the outline and not covered by scalp hair or eyes."""
        return (self.sdf <= 0) & (self.scalp > 0) & (self.eyes > 0)


@dataclass
class _Parts:
    """Mutable scratch of a shape under construction."""

    sdf: np.ndarray
    hair_angle: float
    scalp: np.ndarray | None = None
    eyes: np.ndarray | None = None
    lips: np.ndarray | None = None
    relief: np.ndarray | None = None
    eye_centers: list[tuple[float, float]] = field(default_factory=list)
    eye_radius: float = 0.0


def _head(rng: np.random.Generator, region: str, s: float, jitter: np.ndarray) -> _Parts:
    shape = (round(s), round(s))
    zoom = 1.0 if region == "face" else 0.72
    cx, cy = 0.5 * s + jitter[0], (0.47 if region == "face" else 0.34) * s + jitter[1]
    tilt = rng.uniform(-0.15, 0.15)
    a, b = 0.27 * s * zoom, 0.36 * s * zoom
    u, v = rotated_coords(shape, (cx, cy), tilt)
    # Egg-shaped head: the half-width narrows from the cheekbones to the chin.
    half_width = a * (1.0 - 0.2 * np.clip(v / b, 0, 1) ** 1.5)
    sdf = sd_ellipse(u * a / half_width, v, a, b)
    neck = sd_capsule(shape, (cx, cy + 0.5 * b), (cx, 1.5 * s), 0.55 * a, 0.62 * a)
    sdf = smooth_union(sdf, neck, 0.04 * s)
    for side in (-1.0, 1.0):
        ear = sd_ellipse(u - side * 0.97 * a, v - 0.04 * b, 0.045 * s * zoom, 0.1 * s * zoom)
        sdf = np.minimum(sdf, ear)
    if region == "head_neck":
        shoulders = sd_ellipse(*rotated_coords(shape, (cx, 1.12 * s), 0.0), 0.75 * s, 0.3 * s)
        sdf = smooth_union(sdf, shoulders, 0.08 * s)
    parts = _Parts(sdf=sdf, hair_angle=math.pi / 2)
    # Scalp hair: a mass over the crown that falls to the ears, with a wavy hairline.
    hairline = -0.45 * b + 0.35 * b * (u / a) ** 2
    hairline = hairline + 0.05 * b * value_noise(rng, shape, 0.2 * s, octaves=2)
    length = rng.uniform(0.0, 0.5) * b
    mass = sd_ellipse(u, v + 0.1 * b - 0.5 * length, 1.22 * a, 1.12 * b + 0.5 * length)
    if region == "head_neck" and rng.random() < 0.5:
        parts.scalp = mass  # nape of the neck seen from behind: hair covers the head
        return parts
    parts.scalp = np.maximum(mass, np.minimum(v - hairline, 0.99 * a - np.abs(u)))
    parts.eye_radius = 0.055 * b
    eyes = np.full(shape, np.inf, dtype=np.float32)
    cos, sin = math.cos(tilt), math.sin(tilt)
    for side in (-1.0, 1.0):
        eyes = np.minimum(eyes, sd_ellipse(u - side * 0.37 * a, v + 0.03 * b, 0.16 * a, 0.055 * b))
        ex, ey = side * 0.37 * a, -0.03 * b
        parts.eye_centers.append((cx + ex * cos - ey * sin, cy + ex * sin + ey * cos))
    parts.eyes = eyes
    parts.lips = sd_ellipse(u, v - 0.58 * b, 0.26 * a, 0.065 * b)
    # Facial relief as soft shadows: eye sockets, one side of the nose, nostrils.
    nose_side = float(rng.choice([-1.0, 1.0]))
    shadow = 0.06 * sum(
        np.exp(-(((u - k * 0.37 * a) / (0.26 * a)) ** 2) - ((v + 0.05 * b) / (0.13 * b)) ** 2)
        for k in (-1.0, 1.0)
    )
    shadow += 0.16 * np.exp(
        -(((u - nose_side * 0.11 * a) / (0.05 * a)) ** 2) - ((v - 0.2 * b) / (0.17 * b)) ** 2
    )
    shadow += 0.12 * np.exp(-((u / (0.16 * a)) ** 2) - ((v - 0.42 * b) / (0.035 * b)) ** 2)
    for k in (-1.0, 1.0):
        nostril = sd_ellipse(u - k * 0.085 * a, v - 0.38 * b, 0.05 * a, 0.022 * b)
        shadow += 0.45 * np.clip(0.5 - nostril / 2.0, 0, 1)
    parts.relief = (1.0 - np.clip(shadow, 0, 0.8)).astype(np.float32)
    return parts


def _hand(rng: np.random.Generator, s: float, jitter: np.ndarray) -> _Parts:
    shape = (round(s), round(s))
    angle = -math.pi / 2 + rng.uniform(-0.9, 0.9)
    center = np.array([0.5 * s, 0.58 * s]) + jitter
    direction = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-direction[1], direction[0]])
    u, v = rotated_coords(shape, tuple(center), angle)
    palm_half_width = 0.19 * s
    sdf = sd_ellipse(u, v, 0.2 * s, palm_half_width)
    lengths = (0.27, 0.32, 0.3, 0.23)
    for finger, offset in enumerate(np.linspace(-0.72, 0.72, 4)):
        spread = offset * 0.12 + rng.uniform(-0.05, 0.05)
        finger_dir = np.array([math.cos(angle + spread), math.sin(angle + spread)])
        base = center + direction * 0.12 * s + across * offset * palm_half_width
        tip = base + finger_dir * lengths[finger] * s * rng.uniform(0.92, 1.05)
        width = 0.043 * s * (0.9 if finger == 3 else 1.0)
        finger_sdf = sd_capsule(shape, tuple(base), tuple(tip), width, 0.8 * width)
        sdf = smooth_union(sdf, finger_sdf, 0.02 * s)
    side = float(rng.choice([-1.0, 1.0]))
    thumb_base = center + across * side * 0.75 * palm_half_width
    thumb_tip = thumb_base + (direction * math.cos(0.9) + across * side * math.sin(0.9)) * 0.24 * s
    thumb = sd_capsule(shape, tuple(thumb_base), tuple(thumb_tip), 0.055 * s, 0.04 * s)
    sdf = smooth_union(sdf, thumb, 0.03 * s)
    forearm = sd_capsule(
        shape, tuple(center), tuple(center - direction * 1.2 * s), 0.15 * s, 0.19 * s
    )
    return _Parts(sdf=smooth_union(sdf, forearm, 0.05 * s), hair_angle=angle)


def _foot(rng: np.random.Generator, s: float, jitter: np.ndarray) -> _Parts:
    """Top view of a foot, toes up, the heel and ankle running out of the frame."""
    shape = (round(s), round(s))
    angle = -math.pi / 2 + rng.uniform(-0.5, 0.5)
    center = np.array([0.5 * s, 0.6 * s]) + jitter
    direction = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-direction[1], direction[0]])
    u, v = rotated_coords(shape, tuple(center), angle)
    # Wider at the ball of the foot than at the instep.
    half_width = 0.13 * s + 0.05 * s * np.clip(0.5 + u / (0.5 * s), 0, 1)
    sdf = sd_ellipse(u, v * 0.16 * s / half_width, 0.24 * s, 0.16 * s)
    instep = sd_capsule(
        shape, tuple(center), tuple(center - direction * 1.2 * s), 0.13 * s, 0.12 * s
    )
    sdf = smooth_union(sdf, instep, 0.05 * s)
    big_toe_side = float(rng.choice([-1.0, 1.0]))
    for toe in range(5):
        offset = big_toe_side * (0.72 - 0.34 * toe - (0.06 if toe else 0.0))
        radius = (0.045 if toe == 0 else 0.03 - 0.002 * toe) * s
        base = center + direction * 0.16 * s + across * offset * 0.16 * s
        length = (0.12 if toe == 0 else 0.1 - 0.012 * toe) * s
        tip = base + (direction + across * offset * 0.15) * length
        sdf = smooth_union(
            sdf, sd_capsule(shape, tuple(base), tuple(tip), radius, radius), 0.01 * s
        )
    return _Parts(sdf=sdf, hair_angle=angle)


def _limb(rng: np.random.Generator, region: str, s: float, jitter: np.ndarray) -> _Parts:
    """An arm or leg (or two legs side by side) crossing the frame, slightly bent."""
    shape = (round(s), round(s))
    radius = (0.2 if region == "upper_extremities" else 0.27) * s
    angle = rng.uniform(0, math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    across = np.array([-direction[1], direction[0]])
    center = np.array([0.5 * s, 0.5 * s]) + jitter
    two_legs = region == "lower_extremities" and rng.random() < 0.4
    if two_legs:
        radius *= 0.75
    # Two legs stand clearly apart: fused outlines would leave pinholes and odd creases.
    offsets = (-1.25 * radius, 1.25 * radius) if two_legs else (0.0,)
    bend = rng.uniform(-0.35, 0.35)
    bend_dir = direction * math.cos(bend) + across * math.sin(bend)
    sdf = np.full(shape, np.inf, dtype=np.float32)
    for offset in offsets:
        middle = center + across * offset
        upper = sd_capsule(
            shape, tuple(middle - direction * 1.2 * s), tuple(middle), radius, radius
        )
        lower = sd_capsule(
            shape, tuple(middle), tuple(middle + bend_dir * 1.2 * s), radius, 0.78 * radius
        )
        sdf = np.minimum(sdf, smooth_union(upper, lower, 0.05 * s))
    return _Parts(sdf=sdf, hair_angle=angle)


def _trunk(rng: np.random.Generator, s: float, jitter: np.ndarray) -> _Parts:
    shape = (round(s), round(s))
    if rng.random() < 0.5:  # back or chest with shoulders and neck
        cx, cy = 0.5 * s + jitter[0], 0.72 * s + jitter[1]
        u, v = rotated_coords(shape, (cx, cy), rng.uniform(-0.1, 0.1))
        torso = sd_ellipse(u, v, 0.4 * s, 0.62 * s)
        shoulders = sd_ellipse(u, v + 0.42 * s, 0.5 * s, 0.16 * s)
        neck = sd_capsule(shape, (cx, cy - 0.5 * s), (cx, -0.2 * s), 0.1 * s, 0.1 * s)
        sdf = smooth_union(smooth_union(torso, shoulders, 0.1 * s), neck, 0.08 * s)
    else:  # close-up of abdomen or flank: skin fills most of the frame
        angle = rng.uniform(0, 2 * math.pi)
        center = (0.5 * s + math.cos(angle) * 0.35 * s, 0.5 * s + math.sin(angle) * 0.35 * s)
        u, v = rotated_coords(shape, center, angle)
        sdf = sd_ellipse(u, v, 0.85 * s, 0.75 * s)
    return _Parts(sdf=sdf, hair_angle=math.pi / 2 + rng.uniform(-0.4, 0.4))


def body_shape(rng: np.random.Generator, region: str, size: int) -> BodyShape:
    """A body part of ``region`` in a ``size`` x ``size`` frame.

    Args:
        rng: Random source.
        region: One of :data:`vitiseg.synth.records.REGIONS`.
        size: Frame side in pixels.

    Returns:
        The shape; its outline has no pinholes (only eyes are holes in the skin).
    """
    shape = (size, size)
    s = float(size)
    jitter = rng.uniform(-0.06, 0.06, 2) * s
    if region in ("face", "head_neck"):
        parts = _head(rng, region, s, jitter)
    elif region == "hands":
        parts = _hand(rng, s, jitter)
    elif region == "feet":
        parts = _foot(rng, s, jitter)
    elif region in ("upper_extremities", "lower_extremities"):
        parts = _limb(rng, region, s, jitter)
    elif region == "trunk":
        parts = _trunk(rng, s, jitter)
    else:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
    # Thin fingers and toes get a gentler border perturbation than limbs and trunks.
    amplitude = 0.005 if region in ("hands", "feet") else 0.008
    sdf = parts.sdf + amplitude * s * value_noise(rng, shape, 0.15 * s, octaves=2)
    sdf = sdf + 0.002 * s * value_noise(rng, shape, 0.03 * s, octaves=1)
    inside = sdf <= 0
    pinholes = fill_holes(inside) & ~inside
    sdf = np.where(pinholes, np.float32(-1.0), sdf).astype(np.float32)
    nothing = np.full(shape, np.inf, dtype=np.float32)
    return BodyShape(
        sdf=sdf,
        scalp=nothing if parts.scalp is None else parts.scalp.astype(np.float32),
        eyes=nothing if parts.eyes is None else parts.eyes,
        lips=nothing if parts.lips is None else parts.lips.astype(np.float32),
        relief=np.ones(shape, np.float32) if parts.relief is None else parts.relief,
        eye_centers=tuple(parts.eye_centers),
        eye_radius=parts.eye_radius,
        hair_angle=parts.hair_angle,
    )
