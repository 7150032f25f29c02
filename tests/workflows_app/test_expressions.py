"""The condition evaluator: what the specification's conditions need, and nothing dangerous."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows_app.expressions import MAX_LENGTH, ExpressionError, evaluate

CONTEXT = {"category": "urgent", "circuit_status": "closed",
           "generate_signals": {"confidence": 0.78, "signal": "BUY"}, "symbols": ["AAPL", "MSFT"]}


@pytest.mark.parametrize("expression, expected", [
    ("category == 'urgent'", True),
    ("category == 'normal'", False),
    ("circuit_status == 'closed'", True),
    ("generate_signals.confidence >= 0.7 and generate_signals.signal == 'BUY'", True),
    ("generate_signals['signal'] != 'SELL'", True),
    ("'AAPL' in symbols and symbols[1] == 'MSFT'", True),
    ("missing == 'x'", False),
    ("missing.deeper >= 0.7", False),
    ("not (1 + 2 * 3 > 6)", False),
    ("'big' if generate_signals.confidence > 0.5 else 'small'", "big"),
])
def test_specification_conditions(expression, expected):
    assert evaluate(expression, CONTEXT) == expected


@pytest.mark.parametrize("expression", [
    "category.__class__",
    "category.__class__.__mro__",
    "__import__('os')",
    "open('/etc/passwd')",
    "category.upper()",
    "(lambda: 1)()",
    "[x for x in symbols]",
    "symbols._private",
    "2 ** 100000",
    "'a' * 1000000",
    "import os",
    "x = 1",
    "0j", "1 + 2j", "b'x'", "...",  # not JSON data (hypothesis found `0j` evaluating to a complex)
])
def test_refuses_calls_dunders_imports_and_amplification(expression):
    with pytest.raises(ExpressionError):
        evaluate(expression, CONTEXT)


def test_refuses_oversized_input():
    with pytest.raises(ExpressionError):
        evaluate("1 + " * (MAX_LENGTH // 4 + 1) + "1", {})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_escapes(text):
    """Any input either evaluates to plain data or is refused with ExpressionError."""
    try:
        value = evaluate(text, CONTEXT)
    except ExpressionError:
        return
    assert isinstance(value, str | int | float | bool | list | dict | type(None))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["__class__", "__globals__", "__builtins__", "_x", "__dict__", "__subclasses__"]),
       st.sampled_from(["category.{}", "{}", "generate_signals.{}", "symbols.{}.x"]))
def test_any_private_name_is_refused(name, template):
    with pytest.raises(ExpressionError):
        evaluate(template.format(name), CONTEXT)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z]{1,8}\([^)]{0,10}\)", fullmatch=True))
def test_any_call_is_refused(call):
    with pytest.raises(ExpressionError):
        evaluate(call, CONTEXT)
