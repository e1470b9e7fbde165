"""The project's own error type: bad input, as opposed to a bug.

Every error minigptoss raises for bad input (a malformed checkpoint, a config value out of range, a token id
outside the vocabulary, a bad command-line flag or environment variable) is a `MinigptossError`, and its
message is one sentence naming the file, tensor, field or argument and what was expected. The command line
prints exactly those as one line and exits with status 2; any other exception is a bug and keeps its
traceback. It subclasses ValueError so that `except ValueError` in callers keeps working.

    MinigptossError
      ConfigError       config.py           a config.json or Config value
      CheckpointError   checkpoint/files.py a checkpoint file or folder, or its defaults.json
      TokenError        model.py            token ids: not 1-D integers, or outside the vocabulary
      ArgumentError     arguments.py        a public function's argument: wrong type or out of range
        SamplingError   sampling.py         generation settings (temperature, top_p, ...)
      SettingError      environment.py      an environment variable (MINIGPTOSS_THREADS, MINIGPTOSS_CACHE_GIB)
      UsageError        cli/common.py       a command-line argument

Standard library only (imported by every other module).
"""


class MinigptossError(ValueError):
    """Bad input: one sentence naming the file, tensor or field and what was expected."""


class TokenError(MinigptossError):
    """Token ids that are not a non-empty 1-D sequence of integers inside the vocabulary."""


class ArgumentError(MinigptossError):
    """A public function's argument of the wrong type or out of range (see arguments.py)."""


class SamplingError(ArgumentError):
    """Generation settings out of range (max_new_tokens, temperature, top_p, top_k)."""


class SettingError(MinigptossError):
    """An environment variable minigptoss reads, set to a value it cannot use."""


__all__ = ["MinigptossError", "ArgumentError", "TokenError", "SamplingError", "SettingError"]
