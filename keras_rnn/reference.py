"""Framework-free numpy oracles: recurrent forward passes, attention, and the binary-addition
network.

Written straight from the equations so the Keras layers and our own cells can be checked
against something that shares no code with them. Weight layouts follow Keras: ``kernel``
(features, G*units), ``recurrent_kernel`` (units, G*units), gates concatenated along the last
axis in Keras's order (LSTM: i, f, c, o; GRU: z, r, h).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def identity(x: np.ndarray) -> np.ndarray:
    return x


def simple_rnn_forward(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    activation: Activation = np.tanh,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """h_t = act(x_t W + h_{t-1} U + b): inputs (batch, time, features) -> (batch, time, units)."""
    batch, steps, _ = inputs.shape
    h = np.zeros((batch, kernel.shape[1])) if h0 is None else h0
    hs = []
    for t in range(steps):
        h = activation(inputs[:, t] @ kernel + h @ recurrent_kernel + bias)
        hs.append(h)
    return np.stack(hs, axis=1)


def lstm_forward(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """LSTM with gates i, f, c, o. Returns hidden and cell sequences, each (batch, time, units)."""
    batch, steps, _ = inputs.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units)) if h0 is None else h0
    c = np.zeros((batch, units)) if c0 is None else c0
    hs, cs = [], []
    for t in range(steps):
        z = inputs[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, axis=1), np.stack(cs, axis=1)


def gru_forward(
    inputs: np.ndarray,
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    reset_after: bool = True,
    h0: np.ndarray | None = None,
) -> np.ndarray:
    """GRU with gates z, r, h. ``bias`` is (2, 3*units) when reset_after (input and recurrent rows)
    and (3*units,) otherwise. h_t = z * h_{t-1} + (1 - z) * candidate, as Keras defines it."""
    batch, steps, _ = inputs.shape
    units = recurrent_kernel.shape[0]
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, np.zeros_like(bias))
    h = np.zeros((batch, units)) if h0 is None else h0
    hs = []
    for t in range(steps):
        x_z, x_r, x_h = np.split(inputs[:, t] @ kernel + input_bias, 3, axis=-1)
        u_z, u_r, u_h = np.split(recurrent_kernel, 3, axis=-1)
        b_z, b_r, b_h = np.split(recurrent_bias, 3, axis=-1)
        z = sigmoid(x_z + h @ u_z + b_z)
        r = sigmoid(x_r + h @ u_r + b_r)
        if reset_after:
            candidate = np.tanh(x_h + r * (h @ u_h + b_h))
        else:
            candidate = np.tanh(x_h + (r * h) @ u_h)
        h = z * h + (1.0 - z) * candidate
        hs.append(h)
    return np.stack(hs, axis=1)


@dataclass(frozen=True)
class AdditionLog:
    """One logged iteration of the binary-addition oracle."""

    iteration: int
    error: float
    a: int
    b: int
    predicted: int


def train_binary_addition(
    iterations: int = 10_000,
    log_every: int = 1000,
    seed: int = 0,
    bits: int = 8,
    hidden: int = 16,
    learning_rate: float = 0.1,
) -> tuple[list[AdditionLog], dict[str, np.ndarray]]:
    """The classic numpy binary-addition RNN trained with hand-written BPTT.

    Reproduces the tutorial bit for bit: the global ``np.random`` stream seeded once; weights
    drawn input->hidden, hidden->output, hidden->hidden as ``2*random(shape)-1``; each iteration
    draws a then b with ``randint(2**(bits-1))``; bits are fed least significant first; sigmoid
    hidden and output units, no biases; weight updates summed over the steps, then applied.
    Returns the logged iterations and the final weights.
    """
    np.random.seed(seed)
    w_in = 2 * np.random.random((2, hidden)) - 1
    w_out = 2 * np.random.random((hidden, 1)) - 1
    w_rec = 2 * np.random.random((hidden, hidden)) - 1
    powers = 2 ** np.arange(bits)  # bit t of a number, least significant first
    logs = []
    for iteration in range(iterations):
        a = np.random.randint(2 ** (bits - 1))
        b = np.random.randint(2 ** (bits - 1))
        a_bits, b_bits, c_bits = ((n >> np.arange(bits)) & 1 for n in (a, b, a + b))

        hidden_states = [np.zeros(hidden)]
        output_deltas = []
        error = 0.0
        predicted_bits = np.zeros(bits)
        for t in range(bits):
            x = np.array([[a_bits[t], b_bits[t]]])
            h = sigmoid(x @ w_in + hidden_states[-1] @ w_rec)
            y = sigmoid(h @ w_out)
            out_error = c_bits[t] - y
            output_deltas.append(out_error * y * (1 - y))
            error += float(np.abs(out_error[0, 0]))
            predicted_bits[t] = np.round(y[0, 0])
            hidden_states.append(h)

        grad_in, grad_out, grad_rec = (np.zeros_like(w) for w in (w_in, w_out, w_rec))
        future_delta = np.zeros(hidden)
        for t in reversed(range(bits)):
            x = np.array([[a_bits[t], b_bits[t]]])
            h, h_prev = hidden_states[t + 1], hidden_states[t]
            delta = (future_delta @ w_rec.T + output_deltas[t] @ w_out.T) * h * (1 - h)
            grad_out += np.atleast_2d(h).T @ output_deltas[t]
            grad_rec += np.atleast_2d(h_prev).T @ delta
            grad_in += x.T @ delta
            future_delta = delta
        # Errors are target - output, so adding the summed "updates" descends the loss.
        w_in += learning_rate * grad_in
        w_out += learning_rate * grad_out
        w_rec += learning_rate * grad_rec

        if iteration % log_every == 0:
            logs.append(AdditionLog(iteration, error, a, b, int(predicted_bits @ powers)))
    return logs, {"input_hidden": w_in, "hidden_output": w_out, "hidden_hidden": w_rec}


def masked_softmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over the last axis where ``mask`` (broadcast to ``scores``) is True, else 0."""
    scores = np.where(mask, scores, -np.inf)
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def attend(
    query: np.ndarray,
    values: np.ndarray,
    keys: np.ndarray,
    source_mask: np.ndarray,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Context and weights for queries (batch, steps, dim) over keys and values (batch, source,
    dim): dot scores q . k when ``scale`` is None, else additive scores scale . tanh(q + k)
    (Luong's concat and Bahdanau's score, with q and k already projected)."""
    if scale is None:
        scores = query @ keys.transpose(0, 2, 1)
    else:
        scores = (np.tanh(query[:, :, None, :] + keys[:, None, :, :]) * scale).sum(-1)
    weights = masked_softmax(scores, source_mask[:, None, :])
    return weights @ values, weights


def bahdanau_decoder(
    embedded: np.ndarray,
    values: np.ndarray,
    keys: np.ndarray,
    source_mask: np.ndarray,
    h0: np.ndarray,
    query_kernel: np.ndarray,
    scale: np.ndarray,
    gru_weights: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Bahdanau et al.'s decoder over a whole target with a GRU: at each step, attend from the
    previous state, then run the GRU on [input; context]. Returns [h_t; context_t] per step."""
    h, outputs = h0, []
    for t in range(embedded.shape[1]):
        context, _ = attend((h @ query_kernel)[:, None], values, keys, source_mask, scale)
        step_input = np.concatenate([embedded[:, t : t + 1], context], axis=-1)
        h = gru_forward(step_input, *gru_weights, h0=h)[:, 0]
        outputs.append(np.concatenate([h, context[:, 0]], axis=-1))
    return np.stack(outputs, axis=1)
