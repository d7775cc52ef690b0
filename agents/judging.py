"""The LLM judge's prompt and the parsing of its answer (a score in [0, 1] and a reason), and
the code scorers (exact match, contains, regular expression, JSON schema, length bounds).

Pure functions on plain values: agents.scoring runs them and stores what they give. Real
judges answer as models answer plans (JSON in prose, in code fences, "8/10"): `parse` takes
any text and returns a score and a reason or raises JudgeAnswerUnusable, never anything else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import json_repair
import jsonschema

from .text import clean

# The offline model and the simulator recognise a judge's call by this phrase.
JUDGE_MARKER = "evaluation judge"
SYSTEM_PROMPT = f"""You are an {JUDGE_MARKER}. Score how well the OUTPUT does the TASK, by the
RUBRIC, from 0 (useless) to 1 (excellent). An EXPECTED output or NOTES, when given, are what a
good answer holds. Answer with JSON only, no prose, in exactly this shape:
{{"score": 0.0, "reason": "one or two sentences"}}"""
REPAIR_PROMPT = """Your previous answer could not be used: {error}
Answer again with JSON only: {{"score": a number from 0 to 1, "reason": "..."}}"""
DEFAULT_RUBRIC = "Is the output a correct, complete and helpful answer to the task?"

# What of each part goes into the judge's prompt.
RUBRIC_CHARS = 4000
TASK_CHARS = 4000
EXPECTED_CHARS = 4000
NOTES_CHARS = 2000
OUTPUT_CHARS = 12000
REASON_CHARS = 500
ANSWER_CHARS = 20000  # of a judge's answer, read at most
# The sections of the judge's request, tagged so the offline model can read them back.
SECTIONS = ("rubric", "task", "expected", "notes", "output")

# Code scorers' bounds on outside input.
PATTERN_CHARS = 500
TEXT_CHARS = 2000
# A regular expression searches at most this much of an output: Python's engine has no
# timeout, and a search can take time quadratic in the text (0.6 s for \w+@\w+ here).
MATCH_INPUT_CHARS = 10000
BOUNDED_REPEAT = 100  # {m,n} with n above this counts as unbounded
JSON_INPUT_CHARS = 200_000
SCHEMA_CHARS = 20_000
SCHEMA_DEPTH = 12
LENGTH_MAX = 1_000_000

JUDGE, EXACT, CONTAINS, REGEX, JSON_SCHEMA, LENGTH = (
    "judge",
    "exact",
    "contains",
    "regex",
    "json_schema",
    "length",
)
CODE_KINDS = (EXACT, CONTAINS, REGEX, JSON_SCHEMA, LENGTH)

FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
# Where an answer's JSON object is looked for: the openings in its first JSON_SEARCH_CHARS,
# at most JSON_STARTS of them, and only the first one repaired, REPAIR_CHARS of it.
_OPENING = re.compile(r"\{")
JSON_SEARCH_CHARS = 8000
JSON_STARTS = 40
REPAIR_CHARS = 2000  # a judge answers in about 300 tokens
REPAIR_OPENINGS = 50
_SCORE_WORD = re.compile(r"score|rating|grade|value", re.IGNORECASE)
SCORE_KEYS = ("score", "rating", "grade", "value")
REASON_KEYS = ("reason", "explanation", "rationale", "justification", "comment")
NUMBER = r"[-+]?\d+(?:\.\d+)?|[-+]?\.\d+"
SCORE_TEXT_RE = re.compile(
    rf"^\s*({NUMBER})\s*(?:(%)|(?:/|out\s+of|of)\s*({NUMBER}))?\s*\.?\s*$", re.IGNORECASE
)
PROSE_SCORE_RE = re.compile(
    rf"\b(?:score|rating|grade)\b\s*(?:is|of|[:=])?\s*\**\s*"
    rf"((?:{NUMBER})\s*(?:%|(?:/|out\s+of)\s*(?:{NUMBER}))?)",
    re.IGNORECASE,
)


class JudgeAnswerUnusable(ValueError):
    """The judge's answer holds no score: the message is fit to show the judge and people."""


class ScorerConfigError(ValueError):
    """A scorer's settings cannot be used; `field` names the setting at fault."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class NotScorable(ValueError):
    """This output cannot be scored by this scorer (an exact match with nothing expected)."""


# --- The judge ---


def judge_messages(
    *,
    rubric: str,
    title: str,
    description: str,
    output: str,
    expected: str = "",
    notes: str = "",
) -> list[dict]:
    """The judge's request: the marker in the system prompt, each part tagged and bounded."""
    parts = {
        "rubric": _part(rubric or DEFAULT_RUBRIC, RUBRIC_CHARS),
        "task": _part(f"{title.strip()}\n\n{description.strip()}", TASK_CHARS),
        "expected": _part(expected, EXPECTED_CHARS),
        "notes": _part(notes, NOTES_CHARS),
        "output": _part(output, OUTPUT_CHARS) or "(empty)",
    }
    body = "\n\n".join(f"<{name}>\n{text}\n</{name}>" for name, text in parts.items() if text)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": clean(body)},
    ]


def repair_messages(messages: list[dict], bad_answer: str, error: str) -> list[dict]:
    return [
        *messages,
        {"role": "assistant", "content": clean(bad_answer[:4000])},
        {"role": "user", "content": REPAIR_PROMPT.format(error=error)},
    ]


def request_sections(text: str) -> dict[str, str]:
    """The tagged parts of a judge's request (what `judge_messages` wrote), by name."""
    found = {}
    for name in SECTIONS:
        match = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.DOTALL)
        if match:
            found[name] = match.group(1)
    return found


def parse(text: str) -> tuple[float, str]:
    """The score in [0, 1] and the reason (cleaned, at most REASON_CHARS) a judge's answer
    gives; JudgeAnswerUnusable when it gives no score."""
    text = clean(text or "")[:ANSWER_CHARS]
    if not text.strip():
        raise JudgeAnswerUnusable("the answer is empty")
    try:
        found = _answer_object(text)
    except RecursionError:
        found = None
    except Exception:  # json_repair on hostile input: fall back to the prose
        found = None
    if found is not None:
        raw = next((found[key] for key in SCORE_KEYS if key in found), None)
        if raw is None:
            raise JudgeAnswerUnusable('the answer\'s JSON has no "score"')
        reason = next((found[k] for k in REASON_KEYS if isinstance(found.get(k), str)), "")
        return score_value(raw), _reason(reason)
    match = PROSE_SCORE_RE.search(text)
    if match is None:
        raise JudgeAnswerUnusable('the answer holds no JSON object with a "score"')
    return score_value(match.group(1)), _reason(text)


def score_value(raw: object) -> float:
    """A judge's score as a number in [0, 1]: 0.8, "0.8", "80%", "8/10", "4 out of 5"; a
    bare number above 1 read as out of 10 (up to 10) or as a percentage (up to 100)."""
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        return _scaled(float(raw))
    if isinstance(raw, str):
        match = SCORE_TEXT_RE.match(raw.strip())
        if match:
            number, percent, out_of = match.groups()
            value = float(number)
            if percent:
                return _clamped(value / 100)
            if out_of is not None:
                scale = float(out_of)
                if scale <= 0 or not math.isfinite(scale):
                    raise JudgeAnswerUnusable(f"the score {raw!r} is out of nothing")
                return _clamped(value / scale)
            return _scaled(value)
    raise JudgeAnswerUnusable(f"the score {str(raw)[:40]!r} is not a number")


def _scaled(value: float) -> float:
    if not math.isfinite(value):
        raise JudgeAnswerUnusable("the score is not a finite number")
    if value <= 1:
        return _clamped(value)
    if value <= 10:
        return value / 10
    return _clamped(value / 100)


def _clamped(value: float) -> float:
    if not math.isfinite(value):
        raise JudgeAnswerUnusable("the score is not a finite number")
    return min(1.0, max(0.0, value))


def _answer_object(text: str) -> dict | None:
    """The first JSON object in `text` (fenced or not) that has a score, looked for one level
    down too ({"evaluation": {"score": …}}); else the first object there, repaired if
    broken; None when there is none. Bounded: hostile text costs milliseconds, not minutes."""
    fenced = FENCE_RE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    for candidate in candidates:
        starts = [m.start() for m in _OPENING.finditer(candidate, 0, JSON_SEARCH_CHARS)]
        for start in starts[:JSON_STARTS]:
            try:
                data = json.JSONDecoder().raw_decode(candidate[start:])[0]
            except (ValueError, RecursionError):
                continue
            found = _with_score(data)
            if found is not None:
                return found
    for candidate in candidates:
        start = candidate.find("{")
        if start < 0:
            continue
        piece = candidate[start : start + REPAIR_CHARS]
        if not _SCORE_WORD.search(piece) or piece.count("{") + piece.count("[") > REPAIR_OPENINGS:
            continue  # no repair can give a score; or no judge's answer: not worth the time
        end = piece.rfind("}")
        found = _with_score(json_repair.loads(piece[: end + 1] if end > 0 else piece))
        if found is not None:
            return found
    return None


def _with_score(data: object) -> dict | None:
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), None)
    if not isinstance(data, dict):
        return None
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    if any(key in lowered for key in SCORE_KEYS):
        return lowered
    for value in lowered.values():
        if isinstance(value, dict):
            inner = {str(k).strip().lower(): v for k, v in value.items()}
            if any(key in inner for key in SCORE_KEYS):
                return inner
    return None


def _reason(text: str) -> str:
    text = " ".join(clean(text).replace("```", " ").split())
    return _cut(text, REASON_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _part(text: str, limit: int) -> str:
    """A part as it goes between tags, bounded: a closing tag inside it would end its
    section."""
    text = re.sub(r"</(" + "|".join(SECTIONS) + r")>", r"</ \1>", text.strip())
    return _cut(text, limit)


# --- Code scorers: each returns (value, reason), 1.0 or 0.0, and calls no model ---


def exact(output: str, expected: str, *, case_sensitive: bool = True) -> tuple[float, str]:
    if not expected.strip():
        raise NotScorable("an exact match needs an expected output, and this case has none")
    a, b = output.strip(), expected.strip()
    if not case_sensitive:
        a, b = a.casefold(), b.casefold()
    if a == b:
        return 1.0, "The output equals the expected output."
    return 0.0, "The output differs from the expected output."


def contains(
    output: str, text: str = "", expected: str = "", *, case_sensitive: bool = False
) -> tuple[float, str]:
    needle = (text or expected).strip()
    if not needle:
        raise NotScorable("nothing to look for: the scorer names no text and the case expects none")
    haystack = output
    if not case_sensitive:
        needle, haystack = needle.casefold(), haystack.casefold()
    shown = _cut(" ".join((text or expected).split()), 80)
    if needle in haystack:
        return 1.0, f"The output contains “{shown}”."
    return 0.0, f"The output does not contain “{shown}”."


def regex(output: str, pattern: str) -> tuple[float, str]:
    compiled = compile_pattern(pattern)
    searched = output[:MATCH_INPUT_CHARS]
    cut = f" (in its first {MATCH_INPUT_CHARS:,} characters)" if len(output) > len(searched) else ""
    if compiled.search(searched):
        return 1.0, f"The output matches the pattern{cut}."
    return 0.0, f"The output does not match the pattern{cut}."


def json_schema(output: str, schema: dict) -> tuple[float, str]:
    validator = _validator(schema)
    text = output.strip()
    fenced = FENCE_RE.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    if len(text) > JSON_INPUT_CHARS:
        return 0.0, f"The output is longer than {JSON_INPUT_CHARS:,} characters."
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return 0.0, _cut(f"The output is not valid JSON: {exc}", REASON_CHARS)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except RecursionError:
        return 0.0, "The output is nested too deeply to check."
    except Exception as exc:  # an unresolvable $ref, say: the schema's fault
        raise ScorerConfigError(f"the schema cannot be applied: {exc}", "schema") from None
    if error is None:
        return 1.0, "The output is valid JSON that matches the schema."
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    return 0.0, _cut(f"The output does not match the schema at {where}: {error.message}", 500)


def length(output: str, *, min: int | None = None, max: int | None = None) -> tuple[float, str]:  # noqa: A002
    size = len(output.strip())
    if min is not None and size < min:
        return 0.0, f"The output has {size:,} characters, fewer than {min:,}."
    if max is not None and size > max:
        return 0.0, f"The output has {size:,} characters, more than {max:,}."
    return 1.0, f"The output has {size:,} characters, within the bounds."


def run_code(kind: str, config: dict, output: str, expected: str = "") -> tuple[float, str]:
    """A code scorer of `kind` with its (validated) config on an output."""
    output = clean(output or "")
    expected = clean(expected or "")
    if kind == EXACT:
        return exact(output, expected, case_sensitive=config.get("case_sensitive", True))
    if kind == CONTAINS:
        return contains(
            output,
            config.get("text", ""),
            expected,
            case_sensitive=config.get("case_sensitive", False),
        )
    if kind == REGEX:
        return regex(output, config.get("pattern", ""))
    if kind == JSON_SCHEMA:
        return json_schema(output, config.get("schema", {}))
    if kind == LENGTH:
        return length(output, min=config.get("min"), max=config.get("max"))
    raise ScorerConfigError(f"no code scorer of kind {kind!r}", "kind")


# --- Settings of each kind, checked (the form and the API use these) ---


def compile_pattern(pattern: str) -> re.Pattern:
    """A scorer's regular expression, compiled; ScorerConfigError when it is too long, does
    not compile, or repeats a group that can match the same text in many ways (nested
    repetition, or alternatives under a repetition): such a pattern can take exponential time
    on a short output, and Python's engine has no timeout."""
    if not pattern:
        raise ScorerConfigError("give a pattern", "pattern")
    if len(pattern) > PATTERN_CHARS:
        raise ScorerConfigError(f"at most {PATTERN_CHARS} characters", "pattern")
    if "\x00" in pattern:
        raise ScorerConfigError("the pattern holds a NUL character", "pattern")
    try:
        compiled = re.compile(pattern)
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError) as exc:
        raise ScorerConfigError(f"not a valid regular expression: {exc}", "pattern") from None
    if _risky(parsed, inside_repeat=False):
        raise ScorerConfigError(
            "a repeated group holds another repetition or alternatives (like (a+)+ or (a|b)*), "
            "which can take exponential time: use a character class ([ab]+) or a bounded "
            "repetition ({1,5}) instead",
            "pattern",
        )
    return compiled


def _risky(parsed, *, inside_repeat: bool) -> bool:
    """Whether a parsed pattern repeats, without bound, a group that can match a varying
    length (a repetition in it) or holds alternatives: the text can then be split among the
    repetitions in exponentially many ways."""
    constants = re._constants  # type: ignore[attr-defined]
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}
    repeats.add(getattr(constants, "POSSESSIVE_REPEAT", constants.MAX_REPEAT))
    for op, arg in parsed:
        if op in repeats:
            low, high, sub = arg
            if inside_repeat and low != high:
                return True
            unbounded = high == constants.MAXREPEAT or high > BOUNDED_REPEAT
            if unbounded and _has_branch(sub):
                return True
            if _risky(sub, inside_repeat=inside_repeat or unbounded):
                return True
        elif op == constants.SUBPATTERN:
            if _risky(arg[-1], inside_repeat=inside_repeat):
                return True
        elif op == constants.BRANCH:
            if any(_risky(branch, inside_repeat=inside_repeat) for branch in arg[1]):
                return True
        elif op in (constants.ASSERT, constants.ASSERT_NOT):
            if _risky(arg[1], inside_repeat=inside_repeat):
                return True
    return False


def _has_branch(parsed) -> bool:
    constants = re._constants  # type: ignore[attr-defined]
    for op, arg in parsed:
        if op == constants.BRANCH:
            return True
        if op == constants.SUBPATTERN and _has_branch(arg[-1]):
            return True
    return False


def _validator(schema: object):
    if not isinstance(schema, dict):
        raise ScorerConfigError("the schema must be a JSON object", "schema")
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ScorerConfigError(f"not a valid JSON schema: {exc.message}", "schema") from None
    except RecursionError:
        raise ScorerConfigError("the schema is nested too deeply", "schema") from None
    return cls(schema)


def _check_schema(schema: object) -> dict:
    if not isinstance(schema, dict):
        raise ScorerConfigError("the schema must be a JSON object", "schema")
    if len(json.dumps(schema)) > SCHEMA_CHARS:
        raise ScorerConfigError(f"the schema is longer than {SCHEMA_CHARS:,} characters", "schema")
    pending = [(schema, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > SCHEMA_DEPTH:
            raise ScorerConfigError(f"the schema nests more than {SCHEMA_DEPTH} levels", "schema")
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "pattern" and isinstance(item, str):
                    _schema_pattern(item)
                if key == "patternProperties" and isinstance(item, dict):
                    for pattern in item:
                        _schema_pattern(pattern)
                if key == "$ref" and isinstance(item, str) and not item.startswith("#"):
                    raise ScorerConfigError(
                        "the schema may refer only to itself ($ref: #…)", "schema"
                    )
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    _validator(schema)
    return schema


def _schema_pattern(pattern: str) -> None:
    try:
        compile_pattern(pattern)
    except ScorerConfigError as exc:
        raise ScorerConfigError(f"a pattern in the schema: {exc}", "schema") from None


def _bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ScorerConfigError("must be true or false", "case_sensitive")
    return value


def _bound(config: dict, name: str) -> int | None:
    value = config.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LENGTH_MAX:
        raise ScorerConfigError(f"a whole number from 0 to {LENGTH_MAX:,}", name)
    return value


def _judge_config(config: dict) -> dict:
    rubric, model = config.get("rubric", ""), config.get("model", "")
    if not isinstance(rubric, str) or len(rubric) > RUBRIC_CHARS:
        raise ScorerConfigError(f"text of at most {RUBRIC_CHARS:,} characters", "rubric")
    if not isinstance(model, str) or len(model) > 100:
        raise ScorerConfigError("a model name of at most 100 characters", "model")
    return {"rubric": clean(rubric).strip(), "model": clean(model).strip()}


def _exact_config(config: dict) -> dict:
    return {"case_sensitive": _bool(config.get("case_sensitive"), True)}


def _contains_config(config: dict) -> dict:
    text = config.get("text", "")
    if not isinstance(text, str) or len(text) > TEXT_CHARS:
        raise ScorerConfigError(f"text of at most {TEXT_CHARS:,} characters", "text")
    return {
        "text": clean(text).strip(),
        "case_sensitive": _bool(config.get("case_sensitive"), False),
    }


def _regex_config(config: dict) -> dict:
    pattern = config.get("pattern", "")
    if not isinstance(pattern, str):
        raise ScorerConfigError("a regular expression", "pattern")
    compile_pattern(pattern)
    return {"pattern": pattern}


def _json_schema_config(config: dict) -> dict:
    return {"schema": _check_schema(config.get("schema", {"type": "object"}))}


def _length_config(config: dict) -> dict:
    low, high = _bound(config, "min"), _bound(config, "max")
    if low is None and high is None:
        raise ScorerConfigError("give a minimum, a maximum or both", "min")
    if low is not None and high is not None and low > high:
        raise ScorerConfigError("the minimum is larger than the maximum", "max")
    return {"min": low, "max": high}


CONFIG_CHECKS: dict[str, Callable[[dict], dict]] = {
    JUDGE: _judge_config,
    EXACT: _exact_config,
    CONTAINS: _contains_config,
    REGEX: _regex_config,
    JSON_SCHEMA: _json_schema_config,
    LENGTH: _length_config,
}


def check_config(kind: str, config: object) -> dict:
    """A scorer's config of `kind`, checked and normalised (only the keys the kind reads);
    ScorerConfigError naming the setting at fault otherwise."""
    if kind not in CONFIG_CHECKS:
        raise ScorerConfigError(f"no scorer of kind {kind!r}", "kind")
    if not isinstance(config, dict):
        raise ScorerConfigError("the settings must be a JSON object", "config")
    return CONFIG_CHECKS[kind](config)
