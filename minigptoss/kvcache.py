"""The KV cache: each layer's keys (after RoPE, at their absolute positions) and values, kept between calls.

With a cache, a forward pass over T new tokens at positions p .. p+T-1 attends to the cached keys plus its own,
so a prompt is prefilled once and each generated token costs one position, not the whole sequence again.
Sliding-window layers keep only their last W entries (a query at position i never looks further back than
i - W + 1), so their memory stays constant however long the text grows; full layers keep everything. A cache made with
`rollback=R` lets sliding layers keep R entries more, so `truncate` can go back up to R positions (a chat
re-renders its last turn differently and goes back to where the texts part).

    keys[n]       (S_n, nkv, d)   RoPE already applied, so old keys never need re-rotating
    values[n]     (S_n, nkv, d)
    positions[n]  (S_n,)          absolute positions of the entries, for the causal/window mask

    truncate(L)   forget every entry at position >= L: the next tokens continue the first L. Exact only while
                  each sliding layer (window W) still holds positions max(0, L - W + 1) .. L - 1, the keys the
                  next query (at L) attends to (`can_truncate`); deeper, the caller starts a new cache.

What it does not do: attention itself, or any limit on the total length (RoPE takes any position).
"""

import numpy as np

from .arguments import whole_number
from .errors import ArgumentError
from .config import Config


class KVCache:
    """Keys and values of every layer for the tokens seen so far; `length` is the next position."""

    def __init__(self, config: Config, rollback: int = 0):
        """rollback: how many entries beyond its window each sliding layer keeps, so that `truncate` can go
        back that many positions (0: exactly W, the least the next query needs plus one)."""
        self.rollback = whole_number("KVCache", "rollback", rollback, low=0)
        layers, kv_shape = config.num_hidden_layers, (0, config.num_key_value_heads, config.head_dim)
        self.windows = [config.window(n) for n in range(layers)]
        self.keys = [np.zeros(kv_shape, dtype=np.float32) for _ in range(layers)]
        self.values = [np.zeros(kv_shape, dtype=np.float32) for _ in range(layers)]
        self.positions = [np.zeros(0, dtype=np.int64) for _ in range(layers)]
        self.length = 0

    def extend(self, n: int, k_rot: np.ndarray, v: np.ndarray, positions: np.ndarray):
        """Append layer n's new keys/values; return everything the new queries may attend to.

        k_rot, v: (T, nkv, d), positions: (T,) -> keys, values (S + T, nkv, d), key positions (S + T,).
        Afterwards a sliding layer keeps only its last W entries (W + rollback).
        """
        keys = np.concatenate([self.keys[n], k_rot])  # (S + T, nkv, d)
        values = np.concatenate([self.values[n], v])  # (S + T, nkv, d)
        key_positions = np.concatenate([self.positions[n], positions])  # (S + T,)
        window = self.windows[n]
        if window:  # a copy of the last W + rollback entries, so the longer arrays can be freed
            keep = slice(-(window + self.rollback), None)
            self.keys[n], self.values[n] = keys[keep].copy(), values[keep].copy()
            self.positions[n] = key_positions[keep].copy()
        else:  # the new arrays themselves: nothing writes into them (state/restore rely on that)
            self.keys[n], self.values[n], self.positions[n] = keys, values, key_positions
        return keys, values, key_positions

    def state(self) -> tuple:
        """What the cache holds now, to `restore` later (extend replaces arrays, never writes into them: cheap)."""
        return list(self.keys), list(self.values), list(self.positions), self.length

    def restore(self, state: tuple) -> None:
        """Go back to a `state()`: as if the passes since had not run."""
        keys, values, positions, self.length = state
        self.keys, self.values, self.positions = list(keys), list(values), list(positions)

    def nbytes(self) -> int:
        """Memory held by the cache."""
        return sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.values))

    def can_truncate(self, length: int) -> bool:
        """True if `truncate(length)` is exact: 0 <= length <= self.length and every sliding layer (window W)
        still holds the min(length, W - 1) positions before `length` that a query at `length` attends to
        (i - j < W); full layers hold everything."""
        if not 0 <= length <= self.length:
            return False
        for window, positions in zip(self.windows, self.positions):
            held = int(np.count_nonzero(positions < length))
            if held < (length if window == 0 else min(length, window - 1)):
                return False
        return True

    def truncate(self, length: int) -> None:
        """Go back to the first `length` positions: every layer drops its entries at positions >= length, and
        the next tokens fed continue from position `length`. ArgumentError, a ValueError (the cache unchanged),
        if a sliding layer already dropped a key the next query needs (see can_truncate): then start a new cache."""
        if not self.can_truncate(length):
            raise ArgumentError(f"cannot roll the KV cache back from {self.length} to {length} positions: "
                             + ("out of range" if not 0 <= length <= self.length else
                                "a sliding layer no longer holds the keys before it (make the cache with a "
                                "larger rollback, or start a new one)"))
        for n, positions in enumerate(self.positions):
            keep = positions < length  # (S_n,) entries are in position order, so this keeps a prefix
            self.keys[n], self.values[n], self.positions[n] = self.keys[n][keep], self.values[n][keep], positions[keep]
        self.length = length
