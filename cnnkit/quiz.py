"""Self-check quizzes that work in Jupyter, Colab and the static site (rendered by jupyterquiz).

    show_quiz([
        {"question": "What does a 1×1 convolution mix?", "type": "multiple_choice",
         "answers": [{"answer": "channels", "correct": True,
                      "feedback": "Yes: per pixel, across channels."},
                     {"answer": "neighbouring pixels", "correct": False,
                      "feedback": "Its window is one pixel."}]},
        {"question": "You add padding 1 to a 3×3 convolution on a 28×28 image. "
                     "How wide is the output?", "type": "numeric", "precision": 2,
         "kind": "prediction",
         "answers": [{"type": "value", "value": 28, "correct": True,
                      "feedback": "28 + 2 − 3 + 1 = 28: padding 1 keeps the size."},
                     {"type": "default", "feedback": "Use n + 2p − k + 1."}]},
    ])

Conventions of the course (enforced by ``tests/test_hygiene.py`` on the notebooks):

- the quiz cell carries the tag ``remove-input`` (its source holds the answers) and sits under a markdown
  heading ``## Check your understanding``;
- every quiz has at least one question marked ``"kind": "prediction"`` ("what happens if ..."): the key
  belongs to this module and is removed before the questions reach jupyterquiz.

``validate_quiz`` rejects, with a ``ValueError`` naming the question and the fix, everything that makes a
jupyterquiz question fail silently in the browser: a numeric ``precision`` outside 1..100 (0 throws in
``toPrecision`` and the question never answers), a precision that rounds two answers together or
accepts neighbours of an integer answer, no correct answer, several correct answers in a
``multiple_choice``, ``correct`` that is not a bool (the page compares the text ``"true"``), values that
are not plain numbers (numpy integers do not serialise; strings have no ``toPrecision``), duplicate
answers, missing feedback (the page then says "Correct" to a wrong numeric answer, or throws for a range),
unbalanced ``$`` math, and misspelt keys (ignored by jupyterquiz, so a typo silently drops a setting).
"""
from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

__all__ = ["show_quiz", "validate_quiz", "KINDS", "QUIZ_COLORS"]

# jupyterquiz's default colours fail WCAG contrast (white on #009113 is 3.98:1, green feedback on white 4.15:1,
# white typed digits on a #c0c0c0 box 1.74:1). These pass 4.5:1 on white, on the light panel the site's dark
# theme puts under HTML outputs (#ced6dd), and under the #fafafa text of an answered button or typed answer.
# book/_assets/site.css repeats them for the site.
QUIZ_COLORS = {"--jq-correct-color": "#0f5f26", "--jq-incorrect-color": "#9b1c1c",
               "--jq-numeric-input-bg": "#1d1030"}

_TYPES = {"multiple_choice", "many_choice", "numeric", "string"}
KINDS = {"prediction", "recall", "calculation"}   # the optional "kind" of a question (this module's key)
_QUESTION_KEYS = {"question", "type", "answers", "precision", "code", "answer_cols", "kind"}
_ANSWER_KEYS = {
    "multiple_choice": {"answer", "correct", "feedback", "code"},
    "many_choice": {"answer", "correct", "feedback", "code"},
    "numeric": {"type", "value", "range", "correct", "feedback"},
    "string": {"type", "answer", "correct", "feedback", "match_case", "fuzzy_threshold"},
}
_NUMERIC_TYPES = {"value", "range", "default"}
_STRING_TYPES = {"string", "default"}
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


def _is_number(x: Any) -> bool:
    """A plain Python int or float that JSON writes as a number (not a bool, numpy int, NaN or inf)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int_digits(value: float) -> int:
    """Digits of an integer-valued number: 448 -> 3, 400 -> 3, 0 -> 1 (the precision that keeps it exact)."""
    return len(str(abs(int(value))))


def _to_precision(value: float, precision: int) -> float:
    """What JavaScript's ``Number(x.toPrecision(p))`` gives (p significant digits)."""
    return float(f"{value:.{precision - 1}e}")


def _check_text(where: str, name: str, text: Any, required: bool = True) -> None:
    if text is None and not required:
        return
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: {name!r} must be a non-empty string, got {text!r}")
    if len(_UNESCAPED_DOLLAR.findall(text.replace("$$", ""))) % 2:
        raise ValueError(f"{where}: {name!r} has an unmatched '$' (math is written $...$); "
                         r"write a literal dollar as '\$'")


def _check_keys(where: str, given: dict, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (jupyterquiz ignores them, so a typo silently "
                         f"drops a setting); allowed keys: {sorted(allowed)}")


def _check_correct(where: str, answer: dict, required: bool = True) -> None:
    if "correct" not in answer:
        if required:
            raise ValueError(f"{where}: needs 'correct': True or False")
        return
    if not isinstance(answer["correct"], bool):
        raise ValueError(f"{where}: 'correct' must be True or False (a bool), got {answer['correct']!r}: the "
                         "page compares it with the text 'true'")


def _validate_choice(where: str, q: dict, answers: list[dict]) -> None:
    seen: set[str] = set()
    for j, a in enumerate(answers, 1):
        aw = f"{where}, answer {j}"
        if "answer" not in a and "code" not in a:
            raise ValueError(f"{aw}: needs 'answer' text (or 'code')")
        _check_text(aw, "answer", a.get("answer"), required="code" not in a)
        _check_text(aw, "code", a.get("code"), required=False)
        _check_correct(aw, a)
        _check_text(aw, "feedback", a.get("feedback"))
        key = (str(a.get("answer", "")).strip().casefold(), str(a.get("code", "")).strip())
        if key in seen:
            raise ValueError(f"{aw}: duplicate answer {a.get('answer', a.get('code'))!r}")
        seen.add(key)
    if len(answers) < 2:
        raise ValueError(f"{where}: a choice question needs at least two answers")
    n_correct = sum(a["correct"] for a in answers)
    if n_correct == 0:
        raise ValueError(f"{where}: no answer is marked correct")
    if q["type"] == "multiple_choice" and n_correct > 1:
        raise ValueError(f"{where}: {n_correct} answers are marked correct in a multiple_choice question; "
                         "use type 'many_choice' for several right answers")
    if q["type"] == "many_choice" and n_correct < 2:
        raise ValueError(f"{where}: a many_choice question needs at least two correct answers; "
                         "use 'multiple_choice' for one")
    if "answer_cols" in q and not (isinstance(q["answer_cols"], int) and not isinstance(q["answer_cols"], bool)
                                   and q["answer_cols"] >= 1):
        raise ValueError(f"{where}: 'answer_cols' must be a positive int, got {q['answer_cols']!r}")


def _validate_numeric(where: str, q: dict, answers: list[dict]) -> None:
    precision = q.get("precision")
    if "precision" in q and (not isinstance(precision, int) or isinstance(precision, bool)
                             or not 1 <= precision <= 100):
        raise ValueError(f"{where}: 'precision' must be an int from 1 to 100 (significant digits; 0 makes "
                         f"the page throw and the question cannot be answered), got {precision!r}; leave it "
                         "out to compare the typed number exactly")
    values: dict[float, int] = {}
    n_correct = n_default = 0
    for j, a in enumerate(answers, 1):
        aw = f"{where}, answer {j}"
        kind = a.get("type", "value" if "value" in a else "range" if "range" in a else None)
        if kind not in _NUMERIC_TYPES:
            raise ValueError(f"{aw}: 'type' must be one of {sorted(_NUMERIC_TYPES)}, got {a.get('type')!r}")
        _check_text(aw, "feedback", a.get("feedback"))
        if kind == "default":
            n_default += 1
            if "value" in a or "range" in a or a.get("correct"):
                raise ValueError(f"{aw}: a 'default' answer is the feedback for any other input: no 'value', "
                                 "'range' or 'correct': True")
            continue
        _check_correct(aw, a)
        n_correct += a["correct"]
        if kind == "value":
            if "value" not in a or "range" in a:
                raise ValueError(f"{aw}: a 'value' answer needs a 'value' (and no 'range')")
            v = a["value"]
            if not _is_number(v):
                raise ValueError(f"{aw}: 'value' must be a finite Python int or float, got {v!r} "
                                 f"({type(v).__name__}); convert numpy or torch numbers with int() or float()")
            if precision is not None and float(v).is_integer() and _int_digits(v) > precision:
                raise ValueError(f"{aw}: precision {precision} rounds {v} to "
                                 f"{_to_precision(v, precision):g}, so neighbours of {v} would count as "
                                 f"{'right' if a['correct'] else 'this answer'}; use precision >= "
                                 f"{_int_digits(v)}, or a 'range' answer for an approximate one")
            rounded = _to_precision(v, precision) if precision else float(v)
            if rounded in values:
                raise ValueError(f"{aw}: value {v} is the same as answer {values[rounded]}"
                                 + (f" at precision {precision}" if precision else ""))
            values[rounded] = j
        else:
            if "range" not in a or "value" in a:
                raise ValueError(f"{aw}: a 'range' answer needs a 'range': [low, high] (and no 'value')")
            r = a["range"]
            if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(map(_is_number, r)) and r[0] < r[1]):
                raise ValueError(f"{aw}: 'range' must be [low, high] with plain numbers and low < high "
                                 f"(low is included, high is not), got {r!r}")
    if n_correct == 0:
        raise ValueError(f"{where}: no answer is marked correct")
    if n_default > 1:
        raise ValueError(f"{where}: {n_default} 'default' answers; give one")


def _validate_string(where: str, q: dict, answers: list[dict]) -> None:
    seen: set[str] = set()
    n_correct = n_default = 0
    for j, a in enumerate(answers, 1):
        aw = f"{where}, answer {j}"
        kind = a.get("type", "string")
        if kind not in _STRING_TYPES:
            raise ValueError(f"{aw}: 'type' must be 'string' or 'default', got {kind!r}")
        _check_text(aw, "feedback", a.get("feedback"))
        if kind == "default":
            n_default += 1
            if "answer" in a or a.get("correct"):
                raise ValueError(f"{aw}: a 'default' answer has no 'answer' and is not correct")
            continue
        _check_text(aw, "answer", a.get("answer"))
        _check_correct(aw, a)
        n_correct += a["correct"]
        if "match_case" in a and not isinstance(a["match_case"], bool):
            raise ValueError(f"{aw}: 'match_case' must be True or False, got {a['match_case']!r}")
        if "fuzzy_threshold" in a and not (_is_number(a["fuzzy_threshold"]) and 0 < a["fuzzy_threshold"] <= 1):
            raise ValueError(f"{aw}: 'fuzzy_threshold' must be a number in (0, 1], got {a['fuzzy_threshold']!r}")
        key = a["answer"].strip() if a.get("match_case") else a["answer"].strip().casefold()
        if key in seen:
            raise ValueError(f"{aw}: duplicate answer {a['answer']!r}")
        seen.add(key)
    if n_correct == 0:
        raise ValueError(f"{where}: no answer is marked correct")
    if n_default > 1:
        raise ValueError(f"{where}: {n_default} 'default' answers; give one")


def validate_quiz(questions: list[dict[str, Any]], require_prediction: bool = True) -> None:
    """Raise ``ValueError`` naming the question (and answer) that jupyterquiz would mishandle, and how to fix
    it; with ``require_prediction`` (the course's rule) at least one question must have
    ``"kind": "prediction"``."""
    if not isinstance(questions, (list, tuple)) or not questions:
        raise ValueError("a quiz needs a non-empty list of question dicts")
    for i, q in enumerate(questions, 1):
        if not isinstance(q, dict):
            raise ValueError(f"question {i}: must be a dict, got {type(q).__name__}")
        where = f"question {i} ({str(q.get('question', ''))[:40]!r})"
        if q.get("type") not in _TYPES:
            raise ValueError(f"{where}: type must be one of {sorted(_TYPES)}, got {q.get('type')!r}")
        _check_keys(where, q, _QUESTION_KEYS)
        _check_text(where, "question", q.get("question"))
        _check_text(where, "code", q.get("code"), required=False)
        if "kind" in q and q["kind"] not in KINDS:
            raise ValueError(f"{where}: 'kind' must be one of {sorted(KINDS)}, got {q['kind']!r}")
        if "precision" in q and q["type"] != "numeric":
            raise ValueError(f"{where}: 'precision' only applies to numeric questions")
        answers = q.get("answers")
        if not isinstance(answers, (list, tuple)) or not answers or not all(isinstance(a, dict) for a in answers):
            raise ValueError(f"{where}: needs a non-empty 'answers' list of dicts")
        for j, a in enumerate(answers, 1):
            _check_keys(f"{where}, answer {j}", a, _ANSWER_KEYS[q["type"]])
        if q["type"] in ("multiple_choice", "many_choice"):
            _validate_choice(where, q, answers)
        elif q["type"] == "numeric":
            _validate_numeric(where, q, answers)
        else:
            _validate_string(where, q, answers)
    texts = [str(q["question"]).strip().casefold() for q in questions]
    dupes = sorted({t for t in texts if texts.count(t) > 1})
    if dupes:
        raise ValueError(f"the same question appears twice: {dupes[0][:60]!r}")
    if require_prediction and not any(q.get("kind") == "prediction" for q in questions):
        raise ValueError('every quiz needs at least one prediction question ("what happens if ..."): mark it '
                         'with "kind": "prediction"')
    try:
        json.dumps(questions, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the quiz does not convert to JSON ({exc}); use plain str, int, float, bool, "
                         "list and dict") from None


def for_jupyterquiz(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of the questions without this module's own keys (``kind``)."""
    out = copy.deepcopy(list(questions))
    for q in out:
        q.pop("kind", None)
    return out


def show_quiz(questions: list[dict[str, Any]], **kwargs: Any) -> None:
    """Validate and display a quiz. Answers keep their order (deterministic pages); kwargs go to
    ``jupyterquiz.display_quiz``."""
    validate_quiz(questions)
    from jupyterquiz import display_quiz

    kwargs.setdefault("shuffle_answers", False)
    kwargs.setdefault("colors", dict(QUIZ_COLORS))
    display_quiz(for_jupyterquiz(questions), **kwargs)
