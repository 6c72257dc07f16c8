"""Self-check quizzes that work in Jupyter, Colab and the static site (rendered by jupyterquiz).

    show_quiz([
        {"question": "What does a 1×1 convolution mix?", "type": "multiple_choice",
         "answers": [{"answer": "channels", "correct": True, "feedback": "Yes: per pixel, across channels."},
                     {"answer": "neighbouring pixels", "correct": False, "feedback": "Its window is one pixel."}]},
        {"question": "Parameters of a 3×3 conv, 1 → 8 channels, with bias?", "type": "numeric",
         "answers": [{"type": "value", "value": 80, "correct": True, "feedback": "8·(1·3·3) + 8 = 80."},
                     {"type": "default", "feedback": "Count weights per filter, times filters, plus biases."}]},
    ])
"""
from __future__ import annotations

from typing import Any

__all__ = ["show_quiz", "validate_quiz"]

_TYPES = {"multiple_choice", "many_choice", "numeric", "string"}


def validate_quiz(questions: list[dict[str, Any]]) -> None:
    """Raise ``ValueError`` naming the question that is malformed (no correct answer, unknown type...)."""
    if not questions:
        raise ValueError("a quiz needs at least one question")
    for i, q in enumerate(questions, 1):
        where = f"question {i} ({str(q.get('question', ''))[:40]!r})"
        if q.get("type") not in _TYPES:
            raise ValueError(f"{where}: type must be one of {sorted(_TYPES)}, got {q.get('type')!r}")
        answers = q.get("answers") or []
        if not q.get("question") or not answers:
            raise ValueError(f"{where}: needs 'question' text and a non-empty 'answers' list")
        if not any(a.get("correct") for a in answers):
            raise ValueError(f"{where}: no answer is marked correct")


def show_quiz(questions: list[dict[str, Any]], **kwargs: Any) -> None:
    """Validate and display a quiz. Answers keep their order (deterministic pages); kwargs go to
    ``jupyterquiz.display_quiz``."""
    validate_quiz(questions)
    from jupyterquiz import display_quiz

    kwargs.setdefault("shuffle_answers", False)
    display_quiz(questions, **kwargs)
