"""What a general-purpose compressor needs for the charlm test text: the baseline a language
model must beat. ``xz -9e`` through Python's ``lzma`` (the same library as the ``xz`` tool:
liblzma), without TensorFlow."""

from __future__ import annotations

import lzma

XZ_PRESET = 9 | lzma.PRESET_EXTREME  # xz -9e


def xz_bytes(text: str) -> int:
    """The size of ``text`` (UTF-8) compressed as an .xz file with xz -9e."""
    return len(lzma.compress(text.encode("utf-8"), format=lzma.FORMAT_XZ, preset=XZ_PRESET))


def xz_bits_per_char(text: str, context: str = "") -> float:
    """Bits per character xz -9e spends on ``text``: on its own (the whole .xz file), or after
    ``context`` (what compressing ``context + text`` costs over ``context`` alone: ``text``
    compressed with a dictionary that has seen ``context``)."""
    spent = xz_bytes(context + text) - (xz_bytes(context) if context else 0)
    return 8 * spent / len(text)


def xz_baselines(train: str, test: str) -> dict[str, float]:
    """``metrics.json``'s two xz figures for the test text: alone, and after the training text."""
    return {
        "test_bits_per_char_xz": xz_bits_per_char(test),
        "test_bits_per_char_xz_after_train": xz_bits_per_char(test, context=train),
    }
