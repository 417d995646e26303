"""The LLM layer: model registry, embedded server, chat client with cache, the served student."""
from .cache import CallCache, cache_key
from .client import (
    ChatClient, ChatResult, LLMConnectionError, LLMError, LLMOutputError, LLMRequestError, LLMServerCrashed,
    LLMTimeoutError, parse_json_output, response_format_for,
)
from .registry import DEFAULT_MODEL, ModelNotFoundError, ModelSpec, resolve_model
from .server import ServerInfo, ServerStartError, embedded_server, free_port
from .session import EMBEDDED, open_chat
from .student import Student, StudentServeError, open_student

__all__ = [
    "CallCache", "cache_key", "ChatClient", "ChatResult", "LLMConnectionError", "LLMError",
    "LLMOutputError", "LLMRequestError", "LLMServerCrashed", "LLMTimeoutError", "parse_json_output",
    "response_format_for", "DEFAULT_MODEL", "ModelNotFoundError", "ModelSpec", "resolve_model",
    "ServerInfo", "ServerStartError", "embedded_server", "free_port",
    "EMBEDDED", "open_chat", "open_student", "Student", "StudentServeError",
]

