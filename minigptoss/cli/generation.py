"""A generation pass: what `minigptoss step` walks, one forward pass per token written.

    pass 1       reads the prompt (positions 0..T-1) and draws the token for position T
    pass K > 1   reads the token pass K-1 drew, at position T+K-2: one query over the KV cache; draws the next

`Generation` runs `model.generate` in a thread under one per-step capture, so each pass is recorded apart
(`Pass.cache`, the capture's `at_step`) and fills while it runs: the debugger shows a step of pass K as soon as
pass K has recorded it, while later passes are still to come. Each draw is kept with the uniform number it used
(None when greedy) and the KV cache as the pass left it (per layer: keys held, their positions, bytes).

What it does not do: draw anything (views/passes.py), or choose keys (cli/debugger.py).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass, field

from .. import inspector
from ..text.harmony import stop_tokens
from .common import PassCancelled, PassProgress


@dataclass(frozen=True)
class Settings:
    """How tokens are chosen (greedy by default) and when generation stops."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None

    def describe(self) -> str:
        if self.temperature == 0:
            return "greedy (temperature 0)"
        top_k = f", top-k {self.top_k}" if self.top_k else ""
        return f"temperature {self.temperature:g}, top-p {self.top_p:g}{top_k}, seed {self.seed}"


@dataclass(frozen=True)
class CacheLayer:
    """One layer's KV cache after a pass: how many keys it holds, their positions, its bytes (keys + values)."""

    held: int
    first: int
    last: int
    nbytes: int


@dataclass
class Pass:
    """One forward pass of a generation (1-based `number`), reading `inputs` from position `start`. What it drew
    is read live from the generation's draws (None until drawn)."""

    number: int
    start: int
    inputs: list[int]
    cache: object  # its recorded tensors (a Capture), filling while it runs
    settings: Settings = Settings()  # how its token is drawn
    draws: list = field(default_factory=list)  # the generation's (token, u, kv) per pass, appended as drawn

    @property
    def end(self) -> int:
        """The position its drawn token takes (one past its last input)."""
        return self.start + len(self.inputs)

    def _draw(self, part: int):
        return self.draws[self.number - 1][part] if len(self.draws) >= self.number else None

    @property
    def drawn(self) -> int | None:
        """The token drawn from its last logits row, once drawn."""
        return self._draw(0)

    @property
    def uniform(self) -> float | None:
        """The random number that draw used (None: greedy, or not drawn yet)."""
        return self._draw(1)

    @property
    def kv(self) -> tuple[CacheLayer, ...]:
        """The KV cache as this pass left it (empty until drawn)."""
        return self._draw(2) or ()


@dataclass
class Generation:
    """`model.generate(prompt)` in a thread, every pass recorded apart: `passes` grows as passes start.

    For the debugger: `progress` (the running pass's PassProgress), `done`, `error`, `stop()` (cancels at the
    next recorded name and waits)."""

    model: object
    prompt: list[int]
    settings: Settings = Settings()
    stops: tuple[int, ...] = ()
    intervention: object = None  # an interventions.Intervention the whole generation runs under
    kind: type | None = None
    label: str = ""
    draws: list[tuple[int, float | None, tuple[CacheLayer, ...]]] = field(default_factory=list)

    def __post_init__(self):
        from ..views.capture import Capture  # the capture that can show itself

        self.kind = self.kind or Capture
        self.progress, self.error, self.capture = PassProgress(self.model), None, None
        self._passes: list[Pass] = []
        self.done, self._opened = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="generation", daemon=True)

    def start(self) -> "Generation":
        self.thread.start()
        self._opened.wait()
        return self

    def _run(self) -> None:
        kv = self.intervention.new_cache(self.model) if self.intervention is not None else self.model.new_cache()

        def drew(token: int, u: float | None) -> None:
            layers = tuple(CacheLayer(len(positions), int(positions[0]) if len(positions) else -1,
                                      int(positions[-1]) if len(positions) else -1, keys.nbytes + values.nbytes)
                           for positions, keys, values in zip(kv.positions, kv.keys, kv.values))
            self.draws.append((token, u, layers))

        s = self.settings
        try:
            with inspector.capture(kind=self.kind, per_step=True) as capture, self.progress.watching(), \
                    (self.intervention or nullcontext()):
                self.capture = capture
                self._opened.set()
                for _ in self.model.generate(self.prompt, s.max_new_tokens, s.temperature, s.top_p, s.top_k,
                                             s.seed, self.stops, kv, on_draw=drew):
                    pass
        except PassCancelled:
            pass
        except BaseException as error:  # noqa: BLE001  (handed to the interface, which reports it)
            self.error = error
        finally:
            self._opened.set()
            self.done.set()

    def stop(self) -> None:
        self.progress.cancel()
        self.thread.join()

    def wait(self) -> "Generation":
        """Until every pass is recorded; the generation's error, if any, raised here."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self

    # -- what has been recorded so far ----------------------------------------------------------------------

    @property
    def passes(self) -> list[Pass]:
        """The passes started so far, in order (the last may still be running)."""
        if self.capture is None:
            return []
        started, draws = self.capture.step_count(), list(self.draws)
        for i in range(len(self._passes), started):
            inputs = list(self.prompt) if i == 0 else [draws[i - 1][0]]  # pass i starts after draw i-1
            start = 0 if i == 0 else len(self.prompt) + i - 1
            self._passes.append(Pass(i + 1, start, inputs, self.capture.at_step(i), self.settings, self.draws))
        return list(self._passes)

    @property
    def written(self) -> list[int]:
        """The tokens drawn so far."""
        return [token for token, _, _ in list(self.draws)]

    @property
    def total(self) -> int | None:
        """How many passes there will be, once known (the generation is over), else None."""
        return self.capture.step_count() if self.done.is_set() and self.capture else None

    def most(self) -> int:
        """The most passes this generation can make (its -n)."""
        return max(1, self.settings.max_new_tokens)


def default_stops(tokenizer, harmony: bool = False) -> tuple[int, ...]:
    """The tokens that end an answer (every bundled model's vocabulary has them): <|return|> and <|call|>, and
    for a raw prompt also <|end|>; a model spoken to in harmony goes on after <|end|> (its analysis ends with
    it, then comes the final answer), as `generate --harmony` does."""
    return tuple(sorted(stop_tokens(tokenizer, not harmony)))
