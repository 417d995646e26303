"""The corpus in the field's formats, both directions.

=====================  ===========================================  ==============================
format                 written by / read back by                    for
=====================  ===========================================  ==============================
messages + tools       :func:`to_messages` / :func:`from_messages`  TRL's ``SFTTrainer`` (and any
                       :func:`to_messages_dataset` (DatasetDict) /   transformers chat template
                       :func:`from_messages_dataset`                 with tool use)
OpenAI JSONL           :func:`to_openai` / :func:`from_openai`,     OpenAI chat fine-tuning with
                       :func:`write_openai_jsonl` /                 ``tools`` and ``tool_calls``
                       :func:`read_openai_jsonl`
ToolAlpaca Instances   :func:`toolalpaca_records` /                 the original ToolAlpaca release
                       :func:`write_toolalpaca` /                   (instances inside tool records)
                       :func:`from_toolalpaca`
=====================  ===========================================  ==============================

:func:`read_training_data` reads any of them (or a corpus folder) back as project instances and
tool records, as training needs them; :func:`export_all` writes all three next to a corpus (``<corpus>/formats/``);
:func:`example_in_each_format` shows one instance in each. A malformed record raises
:class:`FormatError`, whose message names the instance (id, or index) and the field.

**What a round trip keeps.** corpus → format → corpus gives the same ``instruction``, the same
steps (``thought``, ``action``, ``action_input``, ``observation``) and the same final ``answer``
in every format. What a format cannot carry:

* every format: ``valid``, ``error`` and ``raw`` of a step; ``strategy``, ``mode``, ``tokens``,
  ``kept``/``drop_reason`` and the other run fields (read back: ``strategy="import"``,
  ``mode=<format>``, ``kept=True``); a step's ``text`` is rebuilt from thought, action and input
  (the same text when it was written in the ReAct layout, as every parsed step is);
* messages + tools and OpenAI: a step's HTTP ``status``; the thought before the final answer
  (read back as "I now know the answer"); ``golden`` (rebuilt from the calls, getDetails aside).
  The DatasetDict keeps ``id`` and ``tool`` in columns; an OpenAI line has neither (the tool is
  named by the system message, the id becomes ``<tool>-openai-<n>``);
* ToolAlpaca: the id (read back as ``<tool>-ta-<n>``); it keeps the status (inside the
  observation), the final thought and ``golden`` (``Golden_Answers``).

A step that is not a well-formed call (no action, or an input that is not a JSON object) travels
in the chat formats as a plain assistant reply followed by a user message with the observation;
read back, its thought, action and input are re-read from its text.

:func:`parse_chat_reply` reads one model reply in the tool-calling chat format (a ``<tool_call>``
or a final answer) as evaluation needs it.
"""
from .chat import (conversation, from_messages, from_openai, read_openai_jsonl, to_messages, to_openai,
                   write_openai_jsonl)
from .chat_reply import parse_chat_reply
from .common import FINAL_THOUGHT, FormatError, system_message, tool_schemas
from .dataset import from_messages_dataset, messages_features, save_messages_dataset, to_messages_dataset
from .export import FORMATS_DIR, example_in_each_format, export_all
from .read import TrainingData, read_training_data
from .toolalpaca import from_toolalpaca, toolalpaca_instance, toolalpaca_records, write_toolalpaca

__all__ = [
    "FINAL_THOUGHT", "FORMATS_DIR", "FormatError", "TrainingData", "conversation", "example_in_each_format", "export_all",
    "from_messages", "from_messages_dataset", "from_openai", "from_toolalpaca", "messages_features",
    "parse_chat_reply", "read_openai_jsonl", "read_training_data", "save_messages_dataset", "system_message", "to_messages", "to_messages_dataset",
    "to_openai", "tool_schemas", "toolalpaca_instance", "toolalpaca_records", "write_openai_jsonl",
    "write_toolalpaca",
]
