"""The mixture of experts: each token runs only the k experts its router chose, weighted by the router.

    h_tk = W1[e] t_t + b1[e]          e = expert_ids[t, k]          (T, k, 2I)   first projection
    u_tk = swiglu(h_tk)                                              (T, k, I)    see swiglu.py
    y_tk = W2[e] u_tk + b2[e]                                        (T, k, H)    bias before the weighting
    MoE(t) = sum_k expert_weights[t, k] y_tk                         (T, H)

Experts are run grouped: the (token, slot) pairs that chose expert e are gathered into one matrix, so e's
weights are decoded once per call and multiplied with all its tokens at once. The result equals computing
every expert densely and masking, in far less work. Expert weights live in MXFP4 (`MXFP4Experts`) or, for
already-dequantized checkpoints, as float32 (`DenseExperts`); both offer `apply(e, x) = x W[e]^T + b[e]`.
"""

from collections.abc import Iterator

import numpy as np

from .fast import mxfp4 as fastmxfp4
from .fast import pages as fastpages
from .mxfp4 import decode_mxfp4


class DenseExperts:
    """Expert matrices already decoded: weight (E, out, in) float32, or an `ExpertStack` that widens one
    expert's bf16 matrix when asked (an already-dequantized checkpoint); bias (E, out)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight, self.bias = weight, bias

    @property
    def parts(self) -> tuple:
        """The arrays behind these experts (a model reuses this object while they stay the same)."""
        return self.weight, self.bias

    def matrix(self, e: int) -> np.ndarray:
        """W[e]: (out, in) float32."""
        return np.asarray(self.weight[e], dtype=np.float32)

    def apply(self, e: int, x: np.ndarray) -> np.ndarray:
        """x W[e]^T + b[e]:  (N, in) -> (N, out)."""
        return x @ self.matrix(e).T + self.bias[e]

    def will_need(self, expert_ids: np.ndarray) -> None:
        """A hint that these experts are about to be used (MXFP4Experts: their file pages are read ahead)."""


class MXFP4Experts(DenseExperts):
    """Expert matrices packed as MXFP4: blocks (E, out, in/32, 16) uint8, scales (E, out, in/32) uint8, bias (E, out).

    Only the experts asked for are decoded, one at a time. `matrix` is the readable definition; `apply` on a
    large matrix goes through `fastmxfp4.linear` (table decode, both cores; same numbers, see there).
    """

    def __init__(self, blocks: np.ndarray, scales: np.ndarray, bias: np.ndarray):
        self.blocks, self.scales, self.bias = blocks, scales, bias
        # Small experts of a loaded checkpoint (read-only file pages, which cannot change under us) are decoded
        # once and kept here, for as long as the model keeps this object (Model.experts).
        small = blocks[0].size * 2 < fastmxfp4.FAST_MIN_WEIGHTS if len(blocks) else False
        read_only = all(isinstance(a, np.memmap) and not a.flags.writeable for a in (blocks, scales))
        self._decoded: dict[int, np.ndarray] | None = {} if small and read_only else None
        self._mapped = isinstance(blocks, np.memmap) and len(blocks) and blocks[0].nbytes >= fastpages.MIN_BYTES

    @property
    def parts(self) -> tuple:
        return self.blocks, self.scales, self.bias

    def matrix(self, e: int) -> np.ndarray:
        """W[e] decoded: (out, in/32, 16) + (out, in/32) -> (out, in) float32."""
        return decode_mxfp4(self.blocks[e], self.scales[e])

    def apply(self, e: int, x: np.ndarray) -> np.ndarray:
        """x W[e]^T + b[e]:  (N, in) -> (N, out)."""
        if self._decoded is not None:  # small and read-only: decoded once
            if e not in self._decoded:
                self._decoded[e] = self.matrix(e)
            return x @ self._decoded[e].T + self.bias[e]
        blocks, scales = np.asarray(self.blocks[e]), np.asarray(self.scales[e])  # a file's pages: plain views
        if blocks.size * 2 < fastmxfp4.FAST_MIN_WEIGHTS:
            return super().apply(e, x)
        return fastmxfp4.linear(x, blocks, scales, self.bias[e])

    def will_need(self, expert_ids: np.ndarray) -> None:
        """Ask the OS to read the pages of these experts' blocks ahead (when they are a file's; fast/pages.py)."""
        if self._mapped:
            for e in set(expert_ids.reshape(-1).tolist()):
                fastpages.will_need(self.blocks[e])


def expert_groups(expert_ids: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """For each expert chosen at least once: (e, rows), rows = flat indices t * k + slot that chose e."""
    rows_of: dict[int, list[int]] = {}
    for row, e in enumerate(expert_ids.reshape(-1).tolist()):  # row = t * k + slot
        rows_of.setdefault(e, []).append(row)
    for e in sorted(rows_of):
        yield e, np.array(rows_of[e])


def expert_load(expert_ids: np.ndarray, num_experts: int) -> np.ndarray:
    """How many (token, slot) pairs each expert received: (T, k) -> (E,) ints."""
    return np.bincount(expert_ids.reshape(-1), minlength=num_experts)


def grouped_linear(x: np.ndarray, expert_ids: np.ndarray, experts: DenseExperts) -> np.ndarray:
    """y_tk = W[e] x_tk + b[e] with e = expert_ids[t, k], one product per expert:  (T, k, in) -> (T, k, out)."""
    T, k = expert_ids.shape
    experts.will_need(expert_ids)  # a hint: the OS may start reading their pages now (fast/pages.py)
    rows_in = x.reshape(T * k, x.shape[-1])  # (T k, in)
    out = np.empty((T * k, experts.bias.shape[-1]), dtype=np.float32)  # (T k, out)
    for e, rows in expert_groups(expert_ids):
        out[rows] = experts.apply(e, rows_in[rows])  # (rows, out)
    return out.reshape(T, k, -1)  # (T, k, out)


def combine(expert_out: np.ndarray, expert_weights: np.ndarray) -> np.ndarray:
    """MoE(t) = sum_k expert_weights[t, k] y_tk:  (T, k, H), (T, k) -> (T, H)."""
    return np.einsum("tkh,tk->th", expert_out, expert_weights).astype(np.float32)
