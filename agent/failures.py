"""What can go wrong with a model call, and what to do about it: the kind, the retry rule, the true message.

A failure that will not heal (a missing or rejected key, an unknown model, a request over the window) is tried
once; a transient one (rate limits, timeouts, an unavailable server) gets the bounded retries of
``agent/llm.py``. Each kind carries a sentence a user can act on; the log gets the cause and the fix
(:func:`operator_fix`: what the operator should change, naming the variable and the model). :func:`setup_problem`
finds the two failures that need no request to be known: a model no provider serves, and a missing key.
"""

from __future__ import annotations

import enum
import re
from types import ModuleType


class FailureKind(enum.StrEnum):
    """Why the model could not answer. Permanent kinds are never retried: trying again cannot help."""

    AUTH = "auth"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    CONTEXT_WINDOW = "context_window"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    EMPTY = "empty"

    @property
    def transient(self) -> bool:
        return self in _TRANSIENT


_TRANSIENT = frozenset({FailureKind.RATE_LIMIT, FailureKind.TIMEOUT, FailureKind.UNAVAILABLE})

OPERATOR_SEES_LOG = "The bot's operator can see the details in its log."
USER_MESSAGES: dict[FailureKind, str] = {
    FailureKind.AUTH: f"I can't use my model right now: its API key is missing or invalid. {OPERATOR_SEES_LOG}",
    FailureKind.PERMISSION: f"I can't use my model right now: its API key may not use this model. {OPERATOR_SEES_LOG}",
    FailureKind.NOT_FOUND: (
        f"I can't use my model right now: the provider does not know the model I am set up with. {OPERATOR_SEES_LOG}"
    ),
    FailureKind.BAD_REQUEST: f"The model refused my request, so trying again won't help. {OPERATOR_SEES_LOG}",
    FailureKind.CONTEXT_WINDOW: (
        "This conversation is more than my model can read at once. A new thread will work; "
        f"{OPERATOR_SEES_LOG[0].lower()}{OPERATOR_SEES_LOG[1:]}"
    ),
    FailureKind.RATE_LIMIT: "The model is busy right now (rate limited). Try again in a minute.",
    FailureKind.TIMEOUT: "The model took too long to answer. Try again in a minute.",
    FailureKind.UNAVAILABLE: "I couldn't reach the model. Try again in a minute.",
    FailureKind.EMPTY: "The model gave me an empty answer. Try again in a minute.",
}


class LLMError(Exception):
    """The model could not answer. ``user_message`` is safe to show; the exception text is for the log."""

    def __init__(
        self, reason: str, *, kind: FailureKind = FailureKind.UNAVAILABLE, user_message: str | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.user_message = user_message or USER_MESSAGES[kind]


_MISSING_KEY = re.compile(r"missing credentials|missing [\w ]*api[ _]key|api_key client option must be set", re.I)
_NO_PROVIDER = re.compile(r"LLM Provider NOT provided", re.I)


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def classify(exc: BaseException) -> FailureKind:
    """The kind of a litellm / openai SDK exception, by its class names, status and (for a few) its text.

    litellm reports a missing OpenAI key as a 500 "Missing credentials" and an unknown provider as a 400 "LLM
    Provider NOT provided": both are read from the message so neither is retried as a server fault.
    """
    if isinstance(exc, LLMError):
        return exc.kind
    names = _class_names(exc)
    text = str(exc)
    status = status_of(exc)
    if isinstance(exc, TimeoutError) or names & {"Timeout", "APITimeoutError"}:
        return FailureKind.TIMEOUT
    if "ContextWindowExceededError" in names:
        return FailureKind.CONTEXT_WINDOW
    if _MISSING_KEY.search(text) or "AuthenticationError" in names or status == 401:
        return FailureKind.AUTH
    if "PermissionDeniedError" in names or status == 403:
        return FailureKind.PERMISSION
    if _NO_PROVIDER.search(text) or "NotFoundError" in names or status == 404:
        return FailureKind.NOT_FOUND
    if "RateLimitError" in names or status == 429:
        return FailureKind.RATE_LIMIT
    if names & {"BadRequestError", "UnprocessableEntityError"} or status in (400, 413, 422):
        return FailureKind.BAD_REQUEST
    return FailureKind.UNAVAILABLE


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_s(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def is_retryable(exc: BaseException) -> bool:
    """Transient kinds only, and of those the statuses and errors that have healed before."""
    if not classify(exc).transient:
        return False
    if isinstance(exc, TimeoutError):
        return True
    name = type(exc).__name__
    if name in {"Timeout", "APIConnectionError", "APITimeoutError", "ServiceUnavailableError", "BadGatewayError"}:
        return True
    status = status_of(exc)
    return status in RETRYABLE_STATUS


def missing_key_names(
    litellm: ModuleType, *, model: str, api_key: str | None = None, api_base: str | None = None
) -> list[str]:
    """The environment variables litellm wants for ``model`` and cannot find (none when a key is given)."""
    try:
        result = litellm.validate_environment(model=model, api_key=api_key, api_base=api_base)
    except Exception:
        return []
    # Endpoints litellm asks for (OLLAMA_API_BASE, ...) have working defaults or LLM_API_BASE: keys only here.
    names = [str(name) for name in result.get("missing_keys") or []]
    return [name for name in names if "BASE" not in name and "ENDPOINT" not in name]


def setup_problem(
    litellm: ModuleType, *, model: str, api_key: str | None, api_base: str | None
) -> tuple[FailureKind, str] | None:
    """What stops ``model`` from working before any request is sent: no provider, or no key.

    Returns the failure kind and the operator's fix; None when litellm has what it needs.
    """
    try:
        litellm.get_llm_provider(model)
    except Exception:
        return FailureKind.NOT_FOUND, (
            f"LLM_MODEL={model} names no provider litellm knows: write it as provider/model, "
            "such as openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest or ollama/llama3.1"
        )
    names = missing_key_names(litellm, model=model, api_key=api_key, api_base=api_base)
    if names:
        return FailureKind.AUTH, f"no key for {model}: set LLM_API_KEY, or {' / '.join(names)}"
    return None


def operator_fix(
    kind: FailureKind,
    litellm: ModuleType,
    *,
    model: str,
    api_base: str | None,
    api_key: str | None,
    timeout_s: float,
    context_window_fallback: int,
) -> str:
    """What the operator should change, naming the variable and the model."""
    where = f" at LLM_API_BASE={api_base}" if api_base else ""
    fixes = {
        FailureKind.AUTH: lambda: _credential_fix(litellm, model=model, api_key=api_key, api_base=api_base),
        FailureKind.PERMISSION: lambda: (
            f"the key is valid but may not use {model}{where}: use a key (or project) with access to it, "
            "or set LLM_MODEL to a model this key may use"
        ),
        FailureKind.NOT_FOUND: lambda: (
            f"the provider{where} does not know LLM_MODEL={model}: set LLM_MODEL to a litellm model string it "
            "serves, such as openai/gpt-4o-mini or anthropic/claude-3-5-haiku-latest"
        ),
        FailureKind.BAD_REQUEST: lambda: (
            f"the provider{where} rejected the request as invalid: check that LLM_MODEL={model} and "
            "LLM_API_BASE belong together"
        ),
        FailureKind.CONTEXT_WINDOW: lambda: (
            f"the request was larger than {model}'s window: set LLM_CONTEXT_WINDOW to its real window in "
            f"tokens (now {context_window_fallback}, used when litellm does not know the model)"
        ),
        FailureKind.RATE_LIMIT: lambda: f"the provider rate-limits {model}: raise the account's limits or wait",
        FailureKind.TIMEOUT: lambda: (
            f"no answer within LLM_TIMEOUT_S={timeout_s:g}s: check the provider{where}, or raise it"
        ),
        FailureKind.UNAVAILABLE: lambda: (
            f"the model server{where or ' (the provider default)'} could not be reached or failed: check "
            "LLM_API_BASE and the provider's status"
        ),
        FailureKind.EMPTY: lambda: f"{model} answered with no text: try again, or choose another LLM_MODEL",
    }
    return fixes[kind]()


def _credential_fix(litellm: ModuleType, *, model: str, api_key: str | None, api_base: str | None) -> str:
    if api_key:
        return f"LLM_API_KEY is set but the provider rejected it: set it to a valid key for {model}"
    names = missing_key_names(litellm, model=model, api_base=api_base)
    if names:
        return f"no key for {model}: set LLM_API_KEY, or {' / '.join(names)}"
    return f"the provider key in the environment was rejected for {model}: replace it, or set LLM_API_KEY"
