"""Jokes (pyjokes) and the Calculator's HTTP endpoints (engine in :mod:`.calculator`)."""
from __future__ import annotations

import random
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from .calculator import MAX_EXPRESSION, CalculatorError, CalculatorPool, check_variable, parse_tree, split_equation
from .common import ERROR_RESPONSES, NotFoundError, StrictQueryRoute, ToolInputError, check_text, fold

# =============================================================================================
# Jokes
# =============================================================================================
JokeCategory = Literal["neutral", "chuck", "all"]
JokeLanguage = Literal["cs", "de", "en", "es", "eu", "fr", "gl", "hu", "it", "lt", "pl", "ru", "sv"]
_CATEGORY_DOC = "'neutral' (programmer jokes), 'chuck' (Chuck Norris facts) or 'all'. Default 'neutral'."
_LANGUAGE_DOC = ("Language code: en, de, es, fr, it, pl, ru, cs, hu, sv, lt, gl, eu. Default 'en'. "
                 "Chuck Norris jokes exist in en, de, es, it, pl, ru, cs, hu only.")


class Joke(BaseModel):
    """A joke."""

    index: int = Field(description="Position of the joke in its category list (stable id).")
    joke: str


class RandomJoke(Joke):
    """A randomly chosen joke."""

    category: str
    language: str
    total: int = Field(description="Number of jokes in this category and language.")


class JokeList(BaseModel):
    """Jokes in their fixed order."""

    category: str
    language: str
    total: int = Field(description="Number of jokes matching (the list holds at most `limit`).")
    jokes: list[Joke]


def _jokes(language: str, category: str) -> list[str]:
    import pyjokes

    try:
        return list(pyjokes.get_jokes(language=language, category=category))
    except Exception as exc:  # pyjokes raises its own LanguageNotFoundError / CategoryNotFoundError
        if type(exc).__name__ in ("LanguageNotFoundError", "CategoryNotFoundError"):
            raise NotFoundError(f"There are no '{category}' jokes in language '{language}' (parameters 'category', "
                                "'language'); try category 'neutral' or language 'en'.") from None
        raise


jokes_router = APIRouter(prefix="/jokes", tags=["Jokes"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)


@jokes_router.get(
    "/random", operation_id="getRandomJoke", response_model=RandomJoke,
    summary="A random joke",
    description="One joke from a category and language; give a seed to get the same joke every time.",
)
def get_random_joke(
    category: Annotated[JokeCategory, Query(description=_CATEGORY_DOC)] = "neutral",
    language: Annotated[JokeLanguage, Query(description=_LANGUAGE_DOC)] = "en",
    seed: Annotated[int | None, Query(ge=0, le=2**31 - 1, description="Optional seed (0 to 2147483647) for a reproducible choice.")] = None,
) -> RandomJoke:
    jokes = _jokes(language, category)
    index = random.Random(seed).randrange(len(jokes)) if seed is not None else random.randrange(len(jokes))
    return RandomJoke(index=index, joke=jokes[index], category=category, language=language, total=len(jokes))


@jokes_router.get(
    "/list", operation_id="listJokes", response_model=JokeList,
    summary="Page through jokes",
    description="Jokes of a category and language in their fixed order, `limit` at a time starting at `offset`.",
)
def list_jokes(
    category: Annotated[JokeCategory, Query(description=_CATEGORY_DOC)] = "neutral",
    language: Annotated[JokeLanguage, Query(description=_LANGUAGE_DOC)] = "en",
    offset: Annotated[int, Query(ge=0, le=10_000, description="Index of the first joke to return.")] = 0,
    limit: Annotated[int, Query(ge=1, le=50, description="Number of jokes to return (1-50).")] = 10,
) -> JokeList:
    jokes = _jokes(language, category)
    page = [Joke(index=i, joke=jokes[i]) for i in range(offset, min(offset + limit, len(jokes)))]
    return JokeList(category=category, language=language, total=len(jokes), jokes=page)


@jokes_router.get(
    "/search", operation_id="searchJokes", response_model=JokeList,
    summary="Find jokes containing a word",
    description="Jokes whose text contains the given word or phrase (case-insensitive).",
)
def search_jokes(
    query: Annotated[str, Query(max_length=60, description="Word or phrase to look for, e.g. 'python' or 'bug'.")],
    category: Annotated[JokeCategory, Query(description="Category to search; default 'all'.")] = "all",
    language: Annotated[JokeLanguage, Query(description=_LANGUAGE_DOC)] = "en",
    limit: Annotated[int, Query(ge=1, le=50, description="Maximum number of jokes to return (1-50).")] = 10,
) -> JokeList:
    key = fold(check_text(query, "query", max_length=60))
    if len(key) < 2:
        raise ToolInputError("Query parameter 'query' needs at least 2 characters.", 422)
    jokes = _jokes(language, category)
    hits = [Joke(index=i, joke=j) for i, j in enumerate(jokes) if key in fold(j)]
    return JokeList(category=category, language=language, total=len(hits), jokes=hits[:limit])


# =============================================================================================
# Calculator
# =============================================================================================
class Evaluation(BaseModel):
    """The value of an arithmetic expression."""

    expression: str = Field(description="The expression as given.")
    exact: str | None = Field(description="Exact result in sympy notation (e.g. 'sqrt(2)/2', '3/10'); null if too long.")
    value: str = Field(description="Decimal value with the requested significant digits (complex results contain I).")
    numeric: float | None = Field(description="The value as a number, when it is real and finite.")


class Solution(BaseModel):
    """One solution of an equation."""

    exact: str = Field(description="Exact solution, e.g. '-sqrt(2)' or 'CRootOf(...)'.")
    approx: str = Field(description="Decimal approximation (complex values contain I).")
    numeric: float | None = Field(description="The solution as a number, when it is real.")


class EquationSolutions(BaseModel):
    """Solutions of an equation."""

    equation: str
    variable: str
    count: int
    solutions: list[Solution]


class Simplification(BaseModel):
    """A rewritten algebraic expression."""

    expression: str
    mode: str
    result: str


class Derivative(BaseModel):
    """The derivative of an expression."""

    expression: str
    variable: str
    order: int
    derivative: str


calc_router = APIRouter(prefix="/calc", tags=["Calculator"], route_class=StrictQueryRoute, responses=ERROR_RESPONSES)
_EXPR_DOC = (f"Math expression (up to {MAX_EXPRESSION} characters) with numbers, variables, + - * / ^ % ( ) and "
             "functions sqrt, cbrt, root, exp, log (log(x, base)), ln, sin, cos, tan, asin, acos, atan, atan2, sinh, "
             "cosh, tanh, abs, floor, ceiling, factorial, binomial, gcd, lcm, min, max; constants pi, e, I. "
             "Write multiplication explicitly: 2*x.")


def _calc(request: Request, operation: str, **args: object) -> dict:
    pool: CalculatorPool = request.app.state.calculator
    try:
        # Refuse malformed or unsafe input here, cheaply; only checked input reaches a worker.
        if operation == "solve":
            for side in split_equation(str(args["equation"])):
                parse_tree(side, "equation")
        else:
            parse_tree(str(args["expression"]))
        check_variable(args.get("variable"))  # type: ignore[arg-type]
        return pool.run(operation, args)
    except CalculatorError as exc:
        raise ToolInputError(str(exc), 400) from None


@calc_router.get(
    "/evaluate", operation_id="evaluateExpression", response_model=Evaluation,
    summary="Evaluate an arithmetic expression",
    description="Computes a numeric expression exactly and as a decimal, e.g. '2^10 / 3' or 'sqrt(2)*sin(pi/4)'.",
)
def evaluate_expression(
    request: Request,
    expression: Annotated[str, Query(max_length=MAX_EXPRESSION, description=_EXPR_DOC)],
    digits: Annotated[int, Query(ge=1, le=100, description="Significant digits of the decimal value (1-100). Default 15.")] = 15,
) -> Evaluation:
    return Evaluation(**_calc(request, "evaluate", expression=expression, digits=digits))


@calc_router.get(
    "/solve", operation_id="solveEquation", response_model=EquationSolutions,
    summary="Solve an equation",
    description="Solves an equation such as 'x^2 - 5*x + 6 = 0' or '3*t + 2 = 11' for one variable "
                "(an expression without '=' is set equal to 0).",
)
def solve_equation(
    request: Request,
    equation: Annotated[str, Query(max_length=MAX_EXPRESSION, description="Equation with one '=', e.g. '2*x + 3 = 11'. " + _EXPR_DOC)],
    variable: Annotated[str | None, Query(max_length=12, description="Variable to solve for; needed only when the equation has several.")] = None,
    real_only: Annotated[bool, Query(description="Return only real solutions. Default false (complex solutions included).")] = False,
) -> EquationSolutions:
    return EquationSolutions(**_calc(request, "solve", equation=equation, variable=variable, real_only=real_only))


@calc_router.get(
    "/simplify", operation_id="simplifyExpression", response_model=Simplification,
    summary="Simplify, expand or factor an algebraic expression",
    description="Rewrites an expression with variables: 'simplify' (shortest form), 'expand' (multiply out) or 'factor'.",
)
def simplify_expression(
    request: Request,
    expression: Annotated[str, Query(max_length=MAX_EXPRESSION, description=_EXPR_DOC)],
    mode: Annotated[Literal["simplify", "expand", "factor"], Query(description="'simplify' (default), 'expand' or 'factor'.")] = "simplify",
) -> Simplification:
    return Simplification(**_calc(request, "simplify", expression=expression, mode=mode))


@calc_router.get(
    "/derivative", operation_id="differentiateExpression", response_model=Derivative,
    summary="Derivative of an expression",
    description="Differentiates an expression with respect to a variable, e.g. d/dx of 'x^3 + sin(x)'.",
)
def differentiate_expression(
    request: Request,
    expression: Annotated[str, Query(max_length=MAX_EXPRESSION, description=_EXPR_DOC)],
    variable: Annotated[str | None, Query(max_length=12, description="Variable to differentiate by; needed only when there are several.")] = None,
    order: Annotated[int, Query(ge=1, le=5, description="How many times to differentiate (1-5). Default 1.")] = 1,
) -> Derivative:
    return Derivative(**_calc(request, "differentiate", expression=expression, variable=variable, order=order))
