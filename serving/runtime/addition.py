"""Binary addition with an exported ``binary_adder`` graph, and the bit encoding it shares with
training: one step per bit, least significant first, inputs (a_t, b_t), output sum bit t."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.errors import UserError
from serving.runtime.graph import ExportedGraph


def to_bits(numbers: np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers ``(n,)`` -> their ``bits`` lowest bits ``(n, bits)``, LSB first."""
    return ((np.asarray(numbers, np.int64)[:, None] >> np.arange(bits)) & 1).astype(np.float32)


def from_bits(bits: np.ndarray) -> np.ndarray:
    """Bits ``(n, steps)``, LSB first (0/1 or probabilities, cut at 0.5) -> integers ``(n,)``."""
    return ((np.asarray(bits) > 0.5).astype(np.int64) << np.arange(bits.shape[-1])).sum(axis=-1)


def operand_pairs(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """The model's input for pairs (a, b): ``(n, bits, 2)`` float32."""
    return np.stack([to_bits(a, bits), to_bits(b, bits)], axis=-1)


def add(graph: ExportedGraph, a: int, b: int) -> dict[str, Any]:
    """``a + b`` as the adder computes it, with the bits it read and wrote."""
    bits = graph.runtime["bits"]
    limit = 2 ** (bits - 1) - 1
    for name, value in (("a", a), ("b", b)):
        if not 0 <= value <= limit:
            raise UserError(
                f"operand {name} = {value} is outside [0, {limit}]: this adder has {bits}-bit "
                f"sums, so each operand must fit in {bits - 1} bits"
            )
    inputs = operand_pairs(np.array([a]), np.array([b]), bits)
    probabilities = graph(bits=inputs)["sum_bits"][0, :, 0]
    return {
        "a": a,
        "b": b,
        "sum": int(from_bits(probabilities[None])[0]),
        "bits": bits,
        "sum_bit_probabilities": [float(p) for p in probabilities],
    }


# Decimal addition as text (the Keras example): the query "a+b", reversed and right-padded
# with spaces to 2N+1 characters, in; the sum, right-padded to N+1 characters, out.
CHARACTERS = "0123456789+ "


def encode_queries(a: np.ndarray, b: np.ndarray, digits: int) -> np.ndarray:
    """Character ids ``(n, 2 * digits + 1)`` of the reversed, padded queries."""
    width = 2 * digits + 1
    texts = [f"{x}+{y}".ljust(width)[::-1] for x, y in zip(a, b, strict=True)]
    return np.array([[CHARACTERS.index(c) for c in text] for text in texts], np.int32)


def encode_answers(sums: np.ndarray, digits: int) -> np.ndarray:
    """Character ids ``(n, digits + 1)`` of the padded sums."""
    return np.array([[CHARACTERS.index(c) for c in str(s).ljust(digits + 1)] for s in sums])


def decode_answers(probabilities: np.ndarray) -> list[str]:
    """The most likely character at each step, trailing padding removed."""
    return ["".join(CHARACTERS[i] for i in row).rstrip() for row in probabilities.argmax(-1)]


def add_decimal(graph: ExportedGraph, a: int, b: int) -> dict[str, Any]:
    """``a + b`` as the decimal adder writes it (text, so possibly not a number at all)."""
    digits = graph.runtime["digits"]
    limit = 10**digits - 1
    for name, value in (("a", a), ("b", b)):
        if not 0 <= value <= limit:
            raise UserError(
                f"operand {name} = {value} is outside [0, {limit}]: this adder was trained on "
                f"numbers of up to {digits} digits"
            )
    probabilities = graph(query=encode_queries(np.array([a]), np.array([b]), digits))["answer"]
    answer = decode_answers(probabilities)[0]
    return {"a": a, "b": b, "answer": answer, "digits": digits}
