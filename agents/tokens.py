"""The text of chat messages and its token estimate.

Used by the budget check before a call (calls.allowance), by the LLM client when a provider
reports no usage, and by the offline model and the simulator to report theirs.
"""

from typing import Any


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or OpenAI-style content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def messages_text(messages: list[dict]) -> str:
    return "\n".join(content_text(message.get("content")) for message in messages)


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual rule of thumb for English text."""
    return (len(text) + 3) // 4
