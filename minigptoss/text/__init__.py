"""Text in and out: the tokenizers (o200k_harmony offline, and a byte-level one for tiny models) and the harmony
chat format (rendering a conversation to ids, and an incremental parser of what the model writes).

    text/tokenizer.py   o200k_harmony, tiny_tokenizer, tokenizer_for
    text/harmony.py     SystemMessage, DeveloperMessage, Message, render_conversation, HarmonyParser, parse_completion
"""
