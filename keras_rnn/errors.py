"""The one error type for user mistakes (defined in serving, which must install without the
training side, and shared by every CLI)."""

from serving.errors import UserError

__all__ = ["UserError"]
