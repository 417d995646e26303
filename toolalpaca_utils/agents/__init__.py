"""The three agents of the simulation — user, assistant (ReAct), tool executor — and the loop
that runs them. Evaluation and STE reuse the assistant loop and the executors unchanged.

Every model call goes through an object with ``chat(messages, *, schema=None, **gen) ->
ChatResult`` (a :class:`~toolalpaca_utils.llm.ChatClient`: the teacher's endpoint or a served
student). Nothing the model writes can crash the loop:
bad output becomes a recorded step with an error, and the loop goes on or stops with a reason.

One submodule per part:

* :mod:`.protocol` — :class:`ChatModel`, the interface every agent calls a model through.
* :mod:`.user` — the user agent: writing requests (instruction-first :func:`write_instructions`,
  call-first :func:`sample_call` / :func:`write_instruction_for_call`, :func:`template_instruction`),
  checking and deduplicating them, answering the assistant's questions (:func:`answer_question`).
* :mod:`.executor` — the tool executor: :func:`check_request`, :class:`SimulatedExecutor`,
  :class:`HttpExecutor`, :func:`executor_for`, and the :class:`Observation` they return.
* :mod:`.episode` — the assistant's ReAct loop as a state machine (:class:`Episode`) and what it
  records (:class:`Step`, :class:`Trajectory`) or asks for (:class:`ModelRequest`).
* :mod:`.chat_prompt` — the episode's prompt in the tool-calling chat format
  (:func:`chat_messages`, :func:`chat_renderer`), for a student trained with ``prompt_format="chat"``.
* :mod:`.scaffold` — the free-mode scaffold for a weak teacher (:func:`demonstration_turns` and
  its checks).
* :mod:`.drivers` — running an episode: :func:`drive`, :func:`run_assistant`.

Every name is re-exported here, so ``from toolalpaca_utils.agents import Episode`` works as
before. To replace a name a function looks up (a test's monkeypatch), patch it on the submodule
that uses it (``agents.episode.answer_question``), not here.
"""
from __future__ import annotations

from .chat_prompt import PROMPT_FORMATS, ChatRenderer, chat_messages, chat_renderer, check_prompt_format
from .drivers import drive, run_assistant
from .episode import (ANSWER_SYSTEM, ANSWER_THOUGHT, FINAL_MAX_TOKENS, FINAL_NUDGE, FINAL_SCHEMA, MAX_ERRORS, Episode,
                      ModelRequest, Step, Trajectory)
from .executor import (MAX_OBSERVATION_CHARS, HttpExecutor, Observation, SimulatedExecutor, _bounded_response,
                       _truncate, check_request, executor_for)
from .protocol import ChatModel
from .scaffold import _copies_demonstration, _example_args, _prose_answer, demonstration_turns
from .user import (PLACEHOLDER, _bounded_args, _function_list, _one_more_request, _words, answer_question, dedupe,
                   instruction_problems, missing_values, normalise, parse_numbered_list, sample_call,
                   template_instruction, typed_call, write_instruction_for_call, write_instructions)

__all__ = [
    "ChatModel",
    # user agent
    "PLACEHOLDER", "answer_question", "dedupe", "instruction_problems", "missing_values", "normalise",
    "parse_numbered_list", "sample_call", "template_instruction", "typed_call", "write_instruction_for_call",
    "write_instructions",
    # tool executor
    "MAX_OBSERVATION_CHARS", "HttpExecutor", "Observation", "SimulatedExecutor", "check_request", "executor_for",
    # episode and scaffold
    "ANSWER_SYSTEM", "ANSWER_THOUGHT", "FINAL_MAX_TOKENS", "FINAL_NUDGE", "FINAL_SCHEMA", "MAX_ERRORS", "Episode", "ModelRequest",
    "Step", "Trajectory", "demonstration_turns",
    # the chat prompt format
    "PROMPT_FORMATS", "ChatRenderer", "chat_messages", "chat_renderer", "check_prompt_format",
    # drivers
    "drive", "run_assistant",
]
