"""Checkpoints on disk: safetensors parsing and writing, the original and Hugging Face layouts, lazy bf16
widening within a memory budget, the tensor names and shapes a config implies, and random initialisation.

    checkpoint/files.py     open_checkpoint, write_checkpoint, write_hf_checkpoint, safetensors headers, memory
    checkpoint/lazy.py      LazyWeights: the mapping a loaded checkpoint offers the forward pass
    checkpoint/tensors.py   tensor_specs, bf16 conversion, init_std, random_weights
    checkpoint/hf.py        the Hugging Face names and config

It imports the model's root modules (config, mxfp4) and nothing outside the package root.
"""

from .files import (CheckpointError, CheckpointInfo, MemoryEstimate, find_checkpoint, hf_shard_names,
                    header_bytes, memory_estimate, open_checkpoint, read_safetensors_header, shard,
                    working_bytes, write_checkpoint, write_hf_checkpoint, write_hf_index, write_safetensors,
                    write_safetensors_stream)
from .lazy import LazyWeights
from .tensors import random_weights, tensor_specs

__all__ = ["CheckpointError", "CheckpointInfo", "LazyWeights", "MemoryEstimate", "find_checkpoint",
           "hf_shard_names", "header_bytes", "memory_estimate", "open_checkpoint", "random_weights",
           "read_safetensors_header", "shard", "tensor_specs", "working_bytes", "write_checkpoint",
           "write_hf_checkpoint", "write_hf_index", "write_safetensors", "write_safetensors_stream"]
