"""Evaluation in the tool-calling chat format (prompt_format="chat"): the reply parser, the
episode's rendered prompts (the training template's text), a golden replay scoring 100% on the
real tools, the settings it refuses, and one run against the real llama.cpp server."""
from __future__ import annotations

import json
import re

import pytest

from toolalpaca_utils.agents import Episode, Observation, chat_messages, chat_renderer, check_prompt_format, drive
from toolalpaca_utils.evaluation import EvalItem, evaluate, evaluate_grid, items_from_real
from toolalpaca_utils.formats import parse_chat_reply
from toolalpaca_utils.llm import ChatResult

from doubles import ScriptedModel, fixed_executor


# ----------------------------------------------------------------------------- the reply parser
@pytest.mark.parametrize("reply, action, args, thought", [
    ('I need the weather.\n<tool_call>{"name": "getWeather", "arguments": {"city": "Oslo"}}</tool_call>',
     "getWeather", {"city": "Oslo"}, "I need the weather."),
    ('<tool_call>{"name": "f", "arguments": {}}</tool_call><|im_end|>', "f", {}, ""),
    # arguments as JSON text (OpenAI's way), and a reply cut before the closing tag
    ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}', "f", {"a": 1}, ""),
    # what follows the end of the turn is not the model's step
    ('ok\n<tool_call>{"name": "f", "arguments": {"a": [1, 2]}}</tool_call><|im_end|><|im_start|>tool\n'
     '<tool_call>{"name": "g", "arguments": {}}</tool_call>', "f", {"a": [1, 2]}, "ok"),
])
def test_a_tool_call_reply_is_an_action(reply, action, args, thought):
    step = parse_chat_reply(reply)
    assert (step.kind, step.action, step.action_input, step.thought) == ("action", action, args, thought)
    assert json.loads(step.action_input_text) == args and step.error is None
    assert step.extra["ignored_calls"] == 0


def test_only_the_first_of_several_calls_is_taken_and_the_rest_counted():
    step = parse_chat_reply('<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
                            '<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert step.action == "a" and step.extra["ignored_calls"] == 1


def test_plain_text_is_the_final_answer():
    step = parse_chat_reply("  It will be sunny in Oslo tomorrow.<|im_end|>\n")
    assert step.kind == "final" and step.final_answer == "It will be sunny in Oslo tomorrow."


@pytest.mark.parametrize("reply, why", [
    ('<tool_call>{"name": "f", "arguments": {"a": 1}</tool_call>', "not valid JSON"),   # one brace short
    ("<tool_call>getWeather(city='Oslo')</tool_call>", "not a JSON object"),
    ('<tool_call>["f", {}]</tool_call>', "not a JSON object"),
    ('<tool_call>{"arguments": {"a": 1}}</tool_call>', 'no "name"'),
    ('<tool_call>{"name": "", "arguments": {}}</tool_call>', 'no "name"'),
    ('<tool_call>{"name": "f"}</tool_call>', 'no "arguments"'),
    ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', "must be a JSON object"),
    ('<tool_call>{"name": "f", "arguments": "{oops"}</tool_call>', '"arguments" text is not valid JSON'),
    ('<tool_call >{"name": "f", "arguments": {}}</tool_call>', "malformed tool call tag"),
    ('{"name": "f", "arguments": {}}</tool_call>', "malformed tool call tag"),
    ("   <|im_end|>", "empty"),
    (None, "not text"),
    (42, "not text"),
])
def test_garbage_is_an_invalid_step_with_a_reason_never_an_exception(reply, why):
    step = parse_chat_reply(reply)
    assert step.kind == "invalid" and why in step.error, step


def test_a_readable_name_with_bad_arguments_keeps_the_name():
    step = parse_chat_reply('<tool_call>{"name": "f", "arguments": [1]}</tool_call>')
    assert step.kind == "invalid" and step.action == "f" and step.action_input is None


# ----------------------------------------------------------------------------- the episode's prompt
@pytest.fixture(scope="module")
def render():
    return chat_renderer()


@pytest.fixture(scope="module")
def records(realtools_url):
    return items_from_real(realtools_url)[1]


def test_the_prompt_is_the_training_text_of_the_same_conversation(render, records):
    """After a call and its observation, the episode's prompt is exactly the training rendering of
    that conversation (formats.to_messages + the training template) up to the opened assistant turn."""
    from toolalpaca_utils.formats import to_messages, tool_schemas
    from toolalpaca_utils.training.chat_template import TRAINING_CHAT_TEMPLATE

    record = next(iter(records.values()))
    name = tool_schemas(record)[0]["function"]["name"]
    reply = f'Look it up.\n<tool_call>{{"name": "{name}", "arguments": {{"q": 1}}}}</tool_call>'
    episode = Episode(record, "Please look it up.", fixed_executor(200, '{"answer": 7}'), prompt_format="chat",
                      render=render)
    assert episode.request().prompt.endswith("<|im_start|>user\nPlease look it up.<|im_end|>\n<|im_start|>assistant\n")
    episode.feed(ChatResult(text=reply))
    prompt = episode.request().prompt
    step = episode.traj.steps[0]
    instance = {"tool": record["Name"], "instruction": "Please look it up.", "final": {"text": "", "answer": "7"},
                "steps": [{"thought": "Look it up.", "action": name, "action_input": '{"q": 1}',
                           "observation": step.observation}]}
    row = to_messages(instance, record)
    trained = render.tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False,
                                                   chat_template=TRAINING_CHAT_TEMPLATE)
    assert trained.startswith(prompt) and trained[len(prompt):] == "7<|im_end|>\n"
    assert step.text == reply and step.raw == reply  # the raw reply is what a row keeps


def test_an_invalid_reply_goes_back_as_the_reply_and_a_correction(render, records):
    record = next(iter(records.values()))
    episode = Episode(record, "Please look it up.", fixed_executor(200, "{}"), prompt_format="chat", render=render)
    episode.feed(ChatResult(text='<tool_call>{"name": oops}</tool_call>'))
    messages = chat_messages(record, "Please look it up.", episode.traj.steps)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == '<tool_call>{"name": oops}</tool_call>'
    assert "not valid JSON" in messages[3]["content"] and "<tool_call>" in messages[3]["content"]
    assert episode.traj.steps[0].action is None and not episode.traj.steps[0].valid


# ----------------------------------------------------------------------------- golden replay
class ChatGoldenPlayer(ScriptedModel):
    """Replays each item's golden calls as <tool_call> replies, then answers. It reads only the
    rendered prompt: the instruction in its user turn, the calls done from its tool turns."""

    def __init__(self, items):
        super().__init__()
        self.by_instruction = {i.instruction: i.golden for i in items}

    def reply(self, messages, schema):
        prompt = messages[0]["content"]
        instruction = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt, re.S).group(1)
        golden, done = self.by_instruction[instruction], prompt.count("<|im_start|>tool\n")
        if done < len(golden):
            g = golden[done]
            return ChatResult(text=f'Calling it.\n<tool_call>{{"name": "{g["Action"]}", "arguments": '
                                   f'{g["Action_Input"]}}}</tool_call>')
        return ChatResult(text="Here it is.")


def test_a_golden_replay_in_the_chat_format_scores_full_marks(realtools_url, render, tmp_path):
    items, records = items_from_real(realtools_url)
    items = items[:8]
    player = ChatGoldenPlayer(items)
    run = evaluate(player, items, records, name="golden-chat", prompt_format="chat", render=render,
                   out_path=tmp_path / "rows.jsonl", progress=False, max_steps=4)
    assert run.summary()["n"] == 8 and run.summary()["overall"] == 100.0, [r["metrics"] for r in run.rows]
    assert player.sent == [] and player.calls == len(player.prompts) > 8  # every call a raw completion
    row = run.rows[0]
    assert row["steps"][0]["text"].startswith("Calling it.\n<tool_call>") and row["final"]["text"] == "Here it is."


def test_the_react_default_is_unchanged_and_sends_chats(realtools_url):
    items, records = items_from_real(realtools_url)
    model = ScriptedModel(["Thought: done\nFinal Answer: nothing"])
    run = evaluate(model, items[:1], records, name="react", progress=False)
    assert model.prompts == [] and len(model.sent) == 1 and run.rows[0]["final"]["answer"] == "nothing"


# ----------------------------------------------------------------------------- what it refuses
def test_settings_the_chat_format_cannot_run_are_clear_errors(records, tmp_path):
    record = next(iter(records.values()))
    item = [EvalItem("x", record["Name"], "hi", [], "real")]
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        check_prompt_format("json")
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        evaluate(ScriptedModel(), item, records, name="x", prompt_format="Chat", progress=False)
    with pytest.raises(ValueError, match='constrained decoding needs prompt_format "react"'):
        evaluate(ScriptedModel(), item, records, name="x", prompt_format="chat", mode="constrained", progress=False)
    with pytest.raises(ValueError, match='constrained decoding needs prompt_format "react"'):  # before serving
        evaluate_grid("m", {"base": None}, {"s": (item, records)}, out_dir=tmp_path, prompt_format="chat",
                      decodings=["free", "constrained"], progress=False)

    class ChatOnly:
        def chat(self, messages, **gen):
            return ChatResult(text="x")

    with pytest.raises(TypeError, match="complete"):
        evaluate(ChatOnly(), item, records, name="x", prompt_format="chat", progress=False)
    with pytest.raises(ValueError, match="needs render"):
        Episode(record, "hi", fixed_executor(200, "{}"), prompt_format="chat")


# ----------------------------------------------------------------------------- ChatClient.complete
def test_complete_posts_the_prompt_to_v1_completions_and_caches_it(tmp_path):
    import http.server
    import threading

    from doubles import JsonHandler
    from toolalpaca_utils.llm import ChatClient

    seen = []

    class Completions(JsonHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            self.send_json(200, {"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "text": "Sunny.", "finish_reason": "stop", "logprobs": None}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Completions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ChatClient(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache_dir=tmp_path / "c",
                            max_retries=0)
        first = client.complete("<|im_start|>user\nhi<|im_end|>\n", max_tokens=7, stop=["<|im_end|>"], seed=3)
        again = client.complete("<|im_start|>user\nhi<|im_end|>\n", max_tokens=7, stop=["<|im_end|>"], seed=3)
    finally:
        server.shutdown()
        server.server_close()
    assert (first.text, first.prompt_tokens, first.completion_tokens, first.cached) == ("Sunny.", 5, 2, False)
    assert again.text == "Sunny." and again.cached and len(seen) == 1
    path, body = seen[0]
    assert path == "/v1/completions" and body["prompt"].startswith("<|im_start|>user") and body["stop"] == ["<|im_end|>"]
    assert body["max_tokens"] == 7 and body["seed"] == 3 and "messages" not in body
    assert client.stats.server_calls == 1 and client.stats.cache_hits == 1


# ----------------------------------------------------------------------------- the real server
@pytest.mark.slow
def test_a_rendered_prompt_completes_on_the_real_server_and_the_loop_records_a_row(llm_server, realtools_url,
                                                                                    render, tmp_path):
    """Any output of the 135M model: the episode ends with a reason, every step keeps the raw
    reply as its text, and the row is scored (no claim about what the model chose)."""
    from toolalpaca_utils.llm import ChatClient

    client = ChatClient(llm_server.base_url, llm_server.model, cache_dir=tmp_path / "cache")
    items, records = items_from_real(realtools_url)
    run = evaluate(client, items[:1], records, name="base-chat", prompt_format="chat", render=render,
                   max_steps=2, progress=False, out_path=tmp_path / "rows.jsonl")
    row = run.rows[0]
    assert client.stats.server_calls >= 1 and client.stats.completion_tokens > 0
    assert row["stop_reason"] in ("final answer", "max steps", "too many errors", "repeated the same invalid reply")
    assert all(s["text"] == s["raw"].strip() for s in row["steps"]) and set(row["metrics"]) >= {"overall", "failure"}
    assert (row["final"] is not None) == (row["stop_reason"] == "final answer")
