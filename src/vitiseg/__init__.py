"""vitiseg: measure vitiligo from photographs.

Folders by concern, imports flow one way:
``io`` (files) <- ``data`` (dataset format, verification, torch datasets) <- ``training``;
``models`` (networks, model folders) <- ``inference`` (RGB array -> probabilities);
``vasi`` (masks -> scores, NumPy only); ``compare``/``cohort`` build on ``vasi``;
``cli`` wires them together and is the only place that imports Hydra.
"""

from __future__ import annotations

__version__ = "0.1.0"
