"""cnnkit.quiz: validate_quiz rejects what jupyterquiz would mishandle in the page, with a message that
names the question and the fix; show_quiz strips the course's own keys before jupyterquiz sees them."""
import copy

import numpy as np
import pytest

from cnnkit import quiz
from cnnkit.quiz import for_jupyterquiz, validate_quiz


def mc(**over):
    q = {"question": "Which padding keeps the size?", "type": "multiple_choice", "kind": "prediction",
         "answers": [{"answer": "same", "correct": True, "feedback": "Yes."},
                     {"answer": "valid", "correct": False, "feedback": "It shrinks."}]}
    q.update(over)
    return q


def num(**over):
    q = {"question": "Output width of a 5×5 conv on 32, padding 1, stride 2?", "type": "numeric",
         "answers": [{"type": "value", "value": 15, "correct": True, "feedback": "Right."},
                     {"type": "value", "value": 16, "correct": False, "feedback": "Round down."},
                     {"type": "default", "feedback": "Use the formula."}]}
    q.update(over)
    return q


def string(**over):
    q = {"question": "Name the padding that mirrors the image.", "type": "string",
         "answers": [{"answer": "reflect", "correct": True, "feedback": "Yes."},
                     {"type": "default", "feedback": "Mirror: reflect."}]}
    q.update(over)
    return q


def test_a_good_quiz_passes():
    validate_quiz([mc(), num(), num(precision=2, question="Same, at precision 2?"), string(),
                   mc(type="many_choice", question="Which are linear?", kind="recall",
                      answers=[{"answer": "conv", "correct": True, "feedback": "Yes."},
                               {"answer": "avg pool", "correct": True, "feedback": "Yes."},
                               {"answer": "ReLU", "correct": False, "feedback": "No."}]),
                   num(question="A ratio in [0.2, 0.3)?", precision=3,
                       answers=[{"type": "range", "range": [0.2, 0.3], "correct": True, "feedback": "Yes."},
                                {"type": "value", "value": 0.5, "correct": False, "feedback": "Too big."}])])


def _answers(q, i, **over):
    q = copy.deepcopy(q)
    q["answers"][i].update(over)
    return q


def _drop(q, i, key):
    q = copy.deepcopy(q)
    del q["answers"][i][key]
    return q


@pytest.mark.parametrize("questions,match", [
    ([], "non-empty list"),
    ([mc(type="numerical")], "type must be one of"),
    ([mc(question="")], "'question' must be a non-empty string"),
    ([mc(answers=[])], "non-empty 'answers' list"),
    ([mc(feedbak="x")], r"unknown key\(s\) \['feedbak'\]"),
    ([mc(kind="guess")], "'kind' must be one of"),
    # numeric precision: 0 throws in toPrecision, the question never answers (issue 11)
    ([mc(), num(precision=0)], "'precision' must be an int from 1 to 100"),
    ([mc(), num(precision=1.5)], "'precision' must be an int"),
    ([mc(), num(precision=True)], "'precision' must be an int"),
    ([mc(), num(precision=101)], "'precision' must be an int from 1 to 100"),
    ([mc(), num(precision=1)], r"precision 1 rounds 15 to 20.*precision >= 2"),
    ([mc(precision=2)], "'precision' only applies to numeric"),
    # a right answer present
    ([_answers(mc(), 0, correct=False)], "no answer is marked correct"),
    ([mc(), _answers(num(), 0, correct=False)], "no answer is marked correct"),
    ([mc(), _answers(string(), 0, correct=False)], "no answer is marked correct"),
    ([_answers(mc(), 1, correct=True)], "2 answers are marked correct in a multiple_choice"),
    ([mc(type="many_choice")], "many_choice question needs at least two correct"),
    # value types
    ([_answers(mc(), 0, correct="True")], "'correct' must be True or False"),
    ([_answers(mc(), 0, correct=1)], "'correct' must be True or False"),
    ([_drop(mc(), 0, "correct")], "needs 'correct'"),
    ([mc(), _answers(num(), 0, value="15")], "'value' must be a finite Python int or float"),
    ([mc(), _answers(num(), 0, value=np.int64(15))], "convert numpy or torch numbers"),
    ([mc(), _answers(num(), 0, value=float("nan"))], "'value' must be a finite"),
    ([mc(), _answers(num(), 0, value=True)], "'value' must be a finite"),
    ([mc(), _answers(num(), 0, type="exact")], "'type' must be one of"),
    ([mc(), _drop(num(), 0, "value")], "needs a 'value'"),
    ([mc(), num(answers=[{"type": "range", "range": [3, 1], "correct": True, "feedback": "x"}])], "'range' must be \\[low, high\\]"),
    ([mc(), _answers(num(), 2, correct=True)], "a 'default' answer"),
    ([mc(), _answers(string(), 0, match_case="yes")], "'match_case' must be True or False"),
    ([mc(), _answers(string(), 0, fuzzy_threshold=2)], "'fuzzy_threshold'"),
    ([mc(), mc(question="Again?", answers=[{"answer": 3, "correct": True, "feedback": "x"},
                                           {"answer": "b", "correct": False, "feedback": "y"}])],
     "'answer' must be a non-empty string"),
    # duplicate answers and questions
    ([_answers(mc(), 1, answer=" Same ")], "duplicate answer"),
    ([mc(), _answers(num(), 1, value=15.0)], "same as answer 1"),
    ([mc(), _answers(num(precision=2), 1, value=15.2)], "same as answer 1 at precision 2"),
    ([mc(), _answers(string(), 1, type="string", answer="Reflect", correct=False)], "duplicate answer"),
    ([mc(), mc(kind="recall")], "the same question appears twice"),
    ([mc(), num(answers=num()["answers"] + [{"type": "default", "feedback": "again"}])], "2 'default' answers"),
    # missing feedback: the page says "Correct" to a wrong numeric answer, or throws for a range
    ([_drop(mc(), 1, "feedback")], "'feedback' must be a non-empty string"),
    ([mc(), _drop(num(), 1, "feedback")], "'feedback' must be a non-empty string"),
    ([mc(), _answers(num(), 2, feedback="  ")], "'feedback' must be a non-empty string"),
    # math and JSON
    ([mc(question="Costs $5 and $x$?")], "unmatched '\\$'"),
    ([mc(answers=[{"answer": "a", "correct": True, "feedback": "x"},
                  {"answer": "b", "correct": False, "feedback": "y"}], code=3)], "'code' must be"),
    # the course's rule: at least one prediction question
    ([mc(kind="recall")], "at least one prediction question"),
    ([num()], "at least one prediction question"),
])
def test_bad_quizzes_are_rejected(questions, match):
    with pytest.raises(ValueError, match=match):
        validate_quiz(questions)


def test_precision_must_cover_every_digit_of_an_integer_answer():
    """At precision 2, 448 rounds to 450 and the page would accept 445..454 as right."""
    q = num(answers=[{"type": "value", "value": 448, "correct": True, "feedback": "Right."}], precision=2)
    with pytest.raises(ValueError, match="precision >= 3, or a 'range' answer"):
        validate_quiz([mc(), q])
    validate_quiz([mc(), dict(q, precision=3)])


def test_escaped_dollars_and_display_math_are_fine():
    validate_quiz([mc(question=r"It costs \$5; is $x^2$ or $$y$$ bigger?")])


def test_prediction_rule_can_be_switched_off_for_tests_of_other_checks():
    validate_quiz([num()], require_prediction=False)


def test_kind_is_stripped_before_jupyterquiz_and_input_is_untouched():
    questions = [mc(), num()]
    out = for_jupyterquiz(questions)
    assert all("kind" not in q for q in out)
    assert questions[0]["kind"] == "prediction"


def test_show_quiz_validates_and_passes_clean_questions(monkeypatch):
    seen = {}

    def fake_display(questions, **kw):
        seen.update(questions=questions, kw=kw)

    import jupyterquiz
    monkeypatch.setattr(jupyterquiz, "display_quiz", fake_display)
    quiz.show_quiz([mc(), num()])
    assert [q.get("kind") for q in seen["questions"]] == [None, None]
    assert seen["kw"]["shuffle_answers"] is False and seen["kw"]["colors"] == quiz.QUIZ_COLORS
    with pytest.raises(ValueError, match="precision"):
        quiz.show_quiz([mc(), num(precision=0)])


def _contrast(a, b):
    from cnnkit.figstyle import relative_luminance as lum
    hi, lo = sorted([lum(a), lum(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_quiz_colours_are_readable_and_the_site_uses_the_same():
    c = quiz.QUIZ_COLORS
    for name in ("--jq-correct-color", "--jq-incorrect-color"):
        for background in ("#ffffff", "#ced6dd"):          # page; the dark theme's panel under outputs
            assert _contrast(c[name], background) >= 4.5, (name, background)
        assert _contrast(c[name], "#fafafa") >= 4.5         # text of an answered button
    assert _contrast(c["--jq-numeric-input-bg"], "#fafafa") >= 4.5     # typed digits
    for background in ("#ffffff", "#ced6dd"):      # the default #101010 input label sits on the page
        assert _contrast("#101010", background) >= 4.5 and "--jq-numeric-input-label" not in c
    from pathlib import Path
    css = (Path(__file__).resolve().parents[1] / "book" / "_assets" / "site.css").read_text()
    for name, value in c.items():
        assert f"{name}: {value} !important;" in css, f"site.css must repeat {name}: {value}"
