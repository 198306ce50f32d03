"""Local stand-ins for external services, used by unit and live tests."""

from __future__ import annotations
