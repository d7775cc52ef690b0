"""The LLM judge's prompt and the parsing of its answer (a score in [0, 1] and a reason)."""
