"""Files with the same bytes: the same photo held twice in a set."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def identical_file_groups(paths: Sequence[Path]) -> list[list[int]]:
    """Indices into ``paths`` of each group of two or more byte-identical files, groups in
    order of their first member. A file is hashed only when another has the same size, so a
    large set of distinct photos is not read."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for index, path in enumerate(paths):
        by_size[path.stat().st_size].append(index)
    groups: list[list[int]] = []
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        by_digest: dict[str, list[int]] = defaultdict(list)
        for index in same_size:
            by_digest[_digest(paths[index])].append(index)
        groups += [group for group in by_digest.values() if len(group) > 1]
    return sorted(groups)
