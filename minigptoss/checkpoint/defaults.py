"""A checkpoint folder's optional `defaults.json`: how the commands talk to this model when the user does not say.

    {
      "prompt": "sort 60237",        the prompt of run, step and generate when no -p/--tokens is given
                                     (with "harmony": the user's message, as chat would send it)
      "harmony": true,               the model was trained on harmony conversations: run, step and generate
                                     wrap the prompt as one (system message, user message, <|start|>assistant)
      "system": {                    harmony.SystemMessage fields for chat and generate --harmony; fields left
        "reasoning_effort": "low",   out keep harmony's defaults, null leaves that line out; --reasoning
        "model_identity": null,      replaces reasoning_effort
        "knowledge_cutoff": null,
        "valid_channels": []
      }
    }

Every key is optional; a folder without the file (a downloaded gpt-oss) gets the commands' own defaults. The
bundled trained models carry one: tiny_weights/sort (its task's prompt) and tiny_weights/chat (a short system
message, "Reasoning: low", instead of harmony's ~190-character default, which would triple the length of every
conversation the tiny model was trained on). What it does not do: render anything (text/harmony.py does).
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..config import read_json
from .files import CheckpointError

FILE_NAME = "defaults.json"
SYSTEM_FIELDS = {"reasoning_effort": (str, type(None)), "current_date": (str, type(None)),
                 "model_identity": (str, type(None)), "knowledge_cutoff": (str, type(None)),
                 "valid_channels": (list,), "channel_required": (bool,)}
REASONING_EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class ModelDefaults:
    prompt: str | None = None
    harmony: bool = False
    system: dict = field(default_factory=dict)  # SystemMessage keyword arguments (valid_channels as a tuple)


def read_defaults(folder) -> ModelDefaults:
    """The folder's defaults.json, checked field by field (CheckpointError naming the file and the field), or
    ModelDefaults() when there is none."""
    path = Path(folder) / FILE_NAME
    if not path.exists():
        return ModelDefaults()
    data = read_json(path, CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object with prompt, harmony and system, got "
                              f"{type(data).__name__}")
    unknown = sorted(set(data) - {"prompt", "harmony", "system"})
    if unknown:
        raise CheckpointError(f"{path}: unknown field {unknown[0]!r} (known: prompt, harmony, system)")
    prompt, harmony, system = data.get("prompt"), data.get("harmony", False), data.get("system", {})
    if prompt is not None and (not isinstance(prompt, str) or not prompt):
        raise CheckpointError(f"{path}: 'prompt' must be a non-empty string, got {prompt!r}")
    if not isinstance(harmony, bool):
        raise CheckpointError(f"{path}: 'harmony' must be true or false, got {harmony!r}")
    return ModelDefaults(prompt, harmony, _system(path, system))


def _system(path: Path, system) -> dict:
    if not isinstance(system, dict):
        raise CheckpointError(f"{path}: 'system' must be an object of system-message fields, got "
                              f"{type(system).__name__}")
    for key, value in system.items():
        if key not in SYSTEM_FIELDS:
            raise CheckpointError(f"{path}: unknown system-message field {key!r} (known: {', '.join(SYSTEM_FIELDS)})")
        if not isinstance(value, SYSTEM_FIELDS[key]):
            raise CheckpointError(f"{path}: system field {key!r} has the wrong type ({type(value).__name__})")
    if system.get("reasoning_effort") not in (*REASONING_EFFORTS, None):
        raise CheckpointError(f"{path}: system field 'reasoning_effort' must be low, medium, high or null, got "
                              f"{system['reasoning_effort']!r}")
    channels = system.get("valid_channels", [])
    if not all(isinstance(channel, str) and channel for channel in channels):
        raise CheckpointError(f"{path}: system field 'valid_channels' must be a list of channel names")
    return {**system, **({"valid_channels": tuple(channels)} if "valid_channels" in system else {})}
