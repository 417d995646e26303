"""The training chat template: ChatML with a tools block, tool calls and ``{% generation %}``
markers, for the student (SmolLM2) when it is trained through ``apply_chat_template``.

Why it exists: SmolLM2's stock template has no tools block, drops ``tool_calls`` and marks no
assistant span, so neither TRL's ``assistant_only_loss`` nor a tool-calling chat can use it.
This one

* renders a conversation without tools or tool calls character for character as the stock
  template does (same default system turn), so the ReAct text the project trains on is unchanged;
* appends the functions (one JSON schema a line, inside ``<tools>``) to the system turn when
  ``tools`` are given, writes each call of an assistant turn as
  ``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` after its text, and a ``tool``
  message as its own ``<|im_start|>tool`` turn;
* wraps each assistant turn's content, calls and ``<|im_end|>`` in ``{% generation %}``: the loss
  covers exactly what the model must write, including the token that ends its turn (as
  :func:`toolalpaca_utils.training.sequences.assistant_char_spans` does for the project's trainer).

Arguments given as a dict are written as JSON, as text they are written as they are.
"""
from __future__ import annotations

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

TOOLS_BLOCK = (
    "{%- if tools -%}"
    "{{- '\\n\\nYou can call these functions (one JSON schema a line):\\n<tools>\\n' -}}"
    "{%- for tool in tools -%}{{- (tool['function'] if tool['function'] is defined else tool) | tojson -}}"
    "{{- '\\n' -}}{%- endfor -%}"
    "{{- '</tools>\\nTo call one, write <tool_call>{\"name\": <function>, \"arguments\": <JSON object>}'"
    " + '</tool_call>; its result comes back in a tool message.' -}}"
    "{%- endif -%}"
)

CALLS = (
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{%- set fn = call['function'] if call['function'] is defined else call -%}"
    "{%- if not loop.first or content -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set args = fn['arguments'] if fn['arguments'] is string else (fn['arguments'] | tojson) -%}"
    "{{- '<tool_call>{\"name\": ' + (fn['name'] | tojson) + ', \"arguments\": ' + args + '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
)

TRAINING_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set content = message['content'] if message['content'] is string else '' -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "' -}}" + TOOLS_BLOCK + "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- content -}}" + CALLS + "{{- '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message['role'] == 'system' -%}"
    "{{- '<|im_start|>system\\n' + content -}}" + TOOLS_BLOCK + "{{- '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def with_training_template(tokenizer):
    """``tokenizer`` with :data:`TRAINING_CHAT_TEMPLATE` as its chat template (changed in place,
    and returned). A tokenizer without ChatML's ``<|im_start|>``/``<|im_end|>`` tokens is refused:
    the template would render text its model never saw."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in vocab]
    if missing:
        raise ValueError(f"the training chat template is ChatML; this tokenizer has no {missing} token(s)")
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
    return tokenizer
