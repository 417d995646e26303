"""A tiny OpenAI-compatible stand-in for the teacher, for the kill-and-restart tests.

``python tests/openai_standin.py --port N [--delay S]`` serves ``/health`` and
``/v1/chat/completions`` on 127.0.0.1 with FastAPI + uvicorn. Each answer is canned and
deterministic, chosen by the request's shape: the user agent's numbered list of requests
(simulation, instruction-first), the explorer's imagined request (STE, ``imagination="query"``),
a free-text ReAct step calling ``getWeather``, the final answer, the Yes/No reflection. Every
answer waits ``--delay`` seconds, so a test can kill the server between two work items.
"""

import argparse
import json
import time
import zlib

# the markers of the request shapes (tests check they still match the package's prompts)
USER_AGENT_SYSTEM = "You write realistic requests that people send to an assistant."
IMAGINE_SYSTEM = "You invent realistic requests that people send to an assistant."
ANSWER_SYSTEM = "You answer a user's request from an API response."
FINAL_NUDGE = "You have the information you need."
REFLECTION_QUESTION = "Did you fulfil the request?"

REQUESTS = "1. What is the weather in Oslo today?\n2. Is it raining in Lima right now?"
IMAGINED = "What is the weather in Lisbon today?"
STEP = 'Thought: I need the weather.\nAction: getWeather\nAction Input: {"city": "Oslo"}'
FINAL = "Thought: I have the answer.\nFinal Answer: It is sunny and 21 degrees."
REFLECTION = '{"fulfilled": "Yes"}'


def reply_for(messages: list[dict]) -> str:
    """The canned answer to a chat."""
    system = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""
    last = messages[-1].get("content", "") if messages else ""
    if system.startswith(USER_AGENT_SYSTEM):  # each tool its own requests: the same text twice is a duplicate
        station = zlib.crc32(last.encode()) % 10_000
        return REQUESTS.replace("?", f" at station {station}?")
    if system.startswith(IMAGINE_SYSTEM):
        return IMAGINED
    if last.startswith(REFLECTION_QUESTION):
        return REFLECTION
    if system.startswith(ANSWER_SYSTEM) or last.startswith(FINAL_NUDGE):
        return FINAL
    return STEP


def create_app(delay: float = 0.0):
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:  # (no postponed annotations here: FastAPI reads this one)
        body = json.loads(await request.body())
        if delay:
            time.sleep(delay)  # blocks the loop on purpose: requests are served one at a time
        text = reply_for(body.get("messages") or [])
        return {
            "id": "standin", "object": "chat.completion", "created": 0, "model": body.get("model", "standin"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text) // 4,
                      "total_tokens": 10 + len(text) // 4},
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    uvicorn.run(create_app(args.delay), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
