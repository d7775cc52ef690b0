from __future__ import annotations

from ..audit import audit

__all__ = ["audit"]
