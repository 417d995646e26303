"""Numbers and arithmetic as people say them. The numbers a request says (:func:`numbers`), and
its arithmetic written as a calculator expression: "17.5% of 2340" ->
``17.5/100*2340``, "2 to the power of 64" -> ``2^64``, "the square root of 2" -> ``sqrt(2)``,
"twelve times seven" -> ``12*7``.

A request says a date in prose and the call carries it in ISO; it says a country by its name and
the call carries the code. An expression is the same kind of normalisation: the request says it
in words and the call carries it in the calculator's syntax (the forms the cpu corpus writes:
:func:`toolalpaca_utils.values.sample_value`'s "math" values). Grounded decoding offers an
expression parameter these forms (:meth:`toolalpaca_utils.saying.Readings.for_parameter`), and an
expression the request writes out as it is.
"""
from __future__ import annotations

import re

from .namings import NUMBER_WORDS

_NUM = r"(\d+(?:\.\d+)?|" + "|".join(NUMBER_WORDS) + r")"
# (pattern over the lower-cased request, the expression it says); the first of overlapping ones wins
_SAID: list[tuple[re.Pattern, str]] = [(re.compile(p), form) for p, form in [
    (rf"{_NUM} ?(?:%|percent) of {_NUM}", "{0}/100*{1}"),
    (rf"{_NUM} (?:to the power of|raised to(?: the power of)?|to the) {_NUM}", "{0}^{1}"),
    (rf"{_NUM} squared", "{0}^2"),
    (rf"{_NUM} cubed", "{0}^3"),
    (rf"(?:square root|sqrt) of {_NUM}", "sqrt({0})"),
    (rf"{_NUM} (?:times|multiplied by) {_NUM}", "{0}*{1}"),
    (rf"{_NUM} divided by {_NUM}", "{0}/{1}"),
    (rf"{_NUM} plus {_NUM}", "{0} + {1}"),
    (rf"{_NUM} minus {_NUM}", "{0} - {1}"),
]]
_OPERAND = r"(?:sqrt\(|\()*\d+(?:\.\d+)?\)*"
_WRITTEN = re.compile(rf"(?<![\w.)-]){_OPERAND}(?:\s*[-+*/^]\s*{_OPERAND})+(?![\w-])|sqrt\(\d+(?:\.\d+)?\)")
_NOT_ARITHMETIC = re.compile(r"\d+(?:-\d+){2,}")  # a date (2024-05-01), a phone number: hyphens, not minus


def _number(word: str) -> str:
    return str(NUMBER_WORDS.index(word) + 1) if word in NUMBER_WORDS else word


def expressions(text: str) -> list[str]:
    """The calculator expressions ``text`` says: each arithmetic phrase of :data:`_SAID` in
    calculator syntax, and each expression written out as such ("12*7 + 3")."""
    said = " ".join(text.lower().split())
    out: dict[str, None] = {}
    for pattern, form in _SAID:
        for match in pattern.finditer(said):
            out[form.format(*(_number(g) for g in match.groups()))] = None
    written = (m.group(0).strip() for m in _WRITTEN.finditer(text))
    out.update(dict.fromkeys(w for w in written if not _NOT_ARITHMETIC.fullmatch(w)))
    return list(out)


# a number on its own: not part of a date (2024-05-01), a time (10:30), a code (co2, 1HGC…) or a
# phone number (266.555.9293); a sentence's full stop may follow it
_NUMBER = re.compile(r"(?<![\w.:/-])-?\d+(?:\.\d+)?(?!\.?\d)(?![\w:/-])")
_COUNT_WORDS = NUMBER_WORDS[1:]  # not "one": "which one", "one of them" are no counts
_NUMBER_OR_WORD = re.compile(_NUMBER.pattern + r"|\b(?:" + "|".join(_COUNT_WORDS) + r")\b")


def numbers(text: str) -> list[int | float]:
    """The numbers ``text`` says outside the arithmetic it says (:func:`expressions`): digits,
    signed or decimal, and the number words two to twelve, in order, each once."""
    said = " ".join(text.lower().split())
    for pattern, _ in _SAID:
        said = pattern.sub(" ; ", said)
    said = _WRITTEN.sub(lambda m: m.group(0) if _NOT_ARITHMETIC.fullmatch(m.group(0).strip()) else " ; ", said)
    out: dict[int | float, None] = {}
    for match in _NUMBER_OR_WORD.finditer(said):
        word = match.group(0)
        if word in _COUNT_WORDS:
            out[NUMBER_WORDS.index(word) + 1] = None
        else:
            value = float(word)
            out[int(value) if value.is_integer() and "." not in word else value] = None
    return list(out)
