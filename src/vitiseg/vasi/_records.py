"""JSON-ready conversion shared by every record this package returns."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Turn dataclasses, mappings, tuples and NumPy scalars into plain JSON types.

    NaN and infinities become None because strict JSON has no spelling for them.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonRecord:
    """Mixin for frozen dataclasses: ``to_dict()`` gives a JSON-serialisable dict."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)
