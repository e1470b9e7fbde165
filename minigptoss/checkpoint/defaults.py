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
      },
      "about": "trained to ...",     what the model was trained to do, in a few words: the banners of step, run,
                                     generate and chat show it after the model's name, with the prompt to try
      "tasks": ["[0-9]{1,10}="],     the prompts it was trained on, as Python regular expressions matched against
                                     the whole prompt text (the user's message, with "harmony"); step warns that
                                     the answer to a prompt matching none of them will be noise
      "temperature": 0.0             the sampling temperature of generate and chat when no --temp is given
    }

Every key is optional; a folder without the file (a downloaded gpt-oss) gets the commands' own defaults. The
bundled trained models carry one: tiny_weights/sort (its task's prompt) and tiny_weights/chat (a short system
message, "Reasoning: low", instead of harmony's ~190-character default, which would triple the length of every
conversation the tiny model was trained on). What it does not do: render anything (text/harmony.py does).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import read_json
from .files import CheckpointError

FILE_NAME = "defaults.json"
FIELDS = ("prompt", "harmony", "system", "about", "tasks", "temperature")
SYSTEM_FIELDS = {"reasoning_effort": (str, type(None)), "current_date": (str, type(None)),
                 "model_identity": (str, type(None)), "knowledge_cutoff": (str, type(None)),
                 "valid_channels": (list,), "channel_required": (bool,)}
REASONING_EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class ModelDefaults:
    prompt: str | None = None
    harmony: bool = False
    system: dict = field(default_factory=dict)  # SystemMessage keyword arguments (valid_channels as a tuple)
    about: str | None = None
    tasks: tuple = ()  # compiled regular expressions
    temperature: float | None = None

    def about_line(self) -> str | None:
        """What the model was trained to do and a prompt to try: 'trained to sort ...; try 26023397=' (None if
        the folder does not say)."""
        if not self.about:
            return None
        return f"{self.about}; try {self.prompt}" if self.prompt else self.about

    def in_tasks(self, text: str) -> bool:
        """The prompt text is one the model was trained on (True when the folder names no tasks)."""
        return not self.tasks or any(pattern.fullmatch(text) for pattern in self.tasks)


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
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise CheckpointError(f"{path}: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    prompt, harmony, system = data.get("prompt"), data.get("harmony", False), data.get("system", {})
    if prompt is not None and (not isinstance(prompt, str) or not prompt):
        raise CheckpointError(f"{path}: 'prompt' must be a non-empty string, got {prompt!r}")
    if not isinstance(harmony, bool):
        raise CheckpointError(f"{path}: 'harmony' must be true or false, got {harmony!r}")
    about, temperature = data.get("about"), data.get("temperature")
    if about is not None and (not isinstance(about, str) or not about or "\n" in about):
        raise CheckpointError(f"{path}: 'about' must be a one-line string, got {about!r}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 100):
        raise CheckpointError(f"{path}: 'temperature' must be a number from 0 to 100, got {temperature!r}")
    return ModelDefaults(prompt, harmony, _system(path, system), about, _tasks(path, data.get("tasks", [])),
                         None if temperature is None else float(temperature))


def _tasks(path: Path, tasks) -> tuple:
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
        raise CheckpointError(f"{path}: 'tasks' must be a list of regular expressions (strings), got {tasks!r}")
    compiled = []
    for text in tasks:
        try:
            compiled.append(re.compile(text))
        except re.error as error:
            raise CheckpointError(f"{path}: 'tasks' entry {text!r} is not a regular expression ({error})") from None
    return tuple(compiled)


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
