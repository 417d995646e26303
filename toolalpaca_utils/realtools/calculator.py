"""A calculator that cannot run code: a whitelist parser into sympy, run in killable workers.

Why not ``sympify``/``parse_expr``: both end in Python ``eval`` and have executed attacker
strings before. Here the text is parsed by :func:`ast.parse` (which never executes anything),
every node is checked against a small whitelist (numbers, + - * / ** %, unary minus, calls of
listed math functions, plain names as symbols) and the sympy expression is built node by node
by this module. Attribute access, subscripts, strings, lambdas, comprehensions, keywords and
unknown functions are refused before sympy sees anything.

Why worker processes: some legal inputs are still expensive (``factor(x**97 + ...)``,
``simplify`` of nested trig). A thread cannot be stopped, a process can: each computation runs
in a worker that is killed and replaced when it exceeds :data:`TIME_LIMIT_S`.
"""
from __future__ import annotations

import ast
import math
import queue
import re
import threading
from typing import Any

MAX_EXPRESSION = 200       # characters
MAX_NODES = 150            # AST nodes
MAX_DEPTH = 30             # AST nesting
MAX_LITERAL_DIGITS = 50    # digits in one number literal
MAX_RESULT_DIGITS = 10_000 # digits of any exact integer/rational (intermediate or final)
MAX_SYMBOLIC_POWER = 200   # exponent limit when the base has variables
MAX_FACTORIAL = 1000
MAX_OUTPUT_CHARS = 2000    # longest exact result returned as text
MAX_SOLUTIONS = 50
TIME_LIMIT_S = 5.0

_ALLOWED_CHARS = re.compile(r"^[0-9A-Za-z_\s+\-*/^().,=%]*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,11}$")


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot compute (always an input problem)."""


# name -> (sympy attribute, min args, max args); resolved inside the worker.
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "sqrt": ("sqrt", 1, 1), "cbrt": ("cbrt", 1, 1), "root": ("root", 2, 2),
    "exp": ("exp", 1, 1), "log": ("log", 1, 2), "ln": ("log", 1, 1),
    "sin": ("sin", 1, 1), "cos": ("cos", 1, 1), "tan": ("tan", 1, 1),
    "asin": ("asin", 1, 1), "acos": ("acos", 1, 1), "atan": ("atan", 1, 1), "atan2": ("atan2", 2, 2),
    "sinh": ("sinh", 1, 1), "cosh": ("cosh", 1, 1), "tanh": ("tanh", 1, 1),
    "abs": ("Abs", 1, 1), "floor": ("floor", 1, 1), "ceiling": ("ceiling", 1, 1), "ceil": ("ceiling", 1, 1),
    "factorial": ("factorial", 1, 1), "binomial": ("binomial", 2, 2),
    "gcd": ("gcd", 2, 2), "lcm": ("lcm", 2, 2), "min": ("Min", 2, 5), "max": ("Max", 2, 5),
}
CONSTANTS = {"pi": "pi", "e": "E", "E": "E", "I": "I"}


# ---------------------------------------------------------------------------------------------
# checking (pure Python, no sympy: runs in the server process and refuses bad input cheaply)
# ---------------------------------------------------------------------------------------------
def _prepare(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CalculatorError(f"The {what} is empty; write something like 2*(3+4) or x**2 - 4 = 0.")
    if len(text) > MAX_EXPRESSION:
        raise CalculatorError(f"The {what} is {len(text)} characters long; the limit is {MAX_EXPRESSION}.")
    if "__" in text:
        raise CalculatorError(f"The {what} contains '__'; only numbers, variables, + - * / ^ % ( ) and math functions are allowed.")
    if not _ALLOWED_CHARS.match(text):
        bad = " ".join(sorted({c for c in text if not _ALLOWED_CHARS.match(c)}))
        raise CalculatorError(
            f"The {what} contains characters that are not allowed ({bad}); only numbers, variables, "
            "+ - * / ^ % ( ) , and math functions such as sqrt(2) are allowed.")
    return text.replace("^", "**").strip()


def split_equation(text: str) -> tuple[str, str]:
    """``"lhs = rhs"`` (or ``==``) into its sides; an expression without '=' means ``= 0``."""
    text = _prepare(text, "equation")
    sides = re.split(r"==?", text)
    if len(sides) > 2:
        raise CalculatorError("The equation has more than one '='; write one equation such as x**2 = 9.")
    return (sides[0], sides[1]) if len(sides) == 2 else (sides[0], "0")


def parse_tree(text: str, what: str = "expression") -> ast.expr:
    """Parse and whitelist-check one side of an expression; returns the checked AST."""
    text = _prepare(text, what)
    if "=" in text:
        raise CalculatorError(f"The {what} contains '='; use the equation solver for equations.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        col = f" near position {exc.offset}" if exc.offset else ""
        raise CalculatorError(
            f"Could not parse the {what}{col}: {exc.msg}. Write multiplication explicitly (2*x, not 2x).") from None
    except (ValueError, RecursionError, MemoryError):
        raise CalculatorError(f"Could not parse the {what}: it is nested too deeply.") from None
    count = 0

    def visit(node: ast.AST, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise CalculatorError(f"The {what} is too long (more than {MAX_NODES} parts).")
        if depth > MAX_DEPTH:
            raise CalculatorError(f"The {what} is nested too deeply (more than {MAX_DEPTH} levels).")
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod)):
                raise CalculatorError(f"Operator {_op_text(node.op)} is not supported; use + - * / ^ %.")
            visit(node.left, depth + 1)
            visit(node.right, depth + 1)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise CalculatorError(f"Operator {_op_text(node.op)} is not supported; use + - * / ^ %.")
            visit(node.operand, depth + 1)
        elif isinstance(node, ast.Constant):
            _check_literal(node.value)
        elif isinstance(node, ast.Name):
            if not _NAME.match(node.id):
                raise CalculatorError(f"Variable name {node.id!r} is not allowed; use names like x, y, rate.")
            if node.id in FUNCTIONS:
                raise CalculatorError(f"{node.id!r} is a function; call it with parentheses, e.g. {node.id}(2).")
        elif isinstance(node, ast.Call):
            _check_call(node)
            for arg in node.args:
                visit(arg, depth + 1)
        else:
            raise CalculatorError(f"{_node_text(node)} is not allowed in a calculation; use numbers, variables, "
                                  "+ - * / ^ % and math functions.")

    visit(tree.body, 0)
    return tree.body


def _check_literal(value) -> None:
    """A literal of a calculation: a real number of bounded size."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalculatorError(f"Only real numbers are allowed as literals, not {type(value).__name__}.")
    if isinstance(value, int) and len(str(abs(value))) > MAX_LITERAL_DIGITS:
        raise CalculatorError(f"Numbers may have at most {MAX_LITERAL_DIGITS} digits.")
    if isinstance(value, float) and (not math.isfinite(value) or (value and not 1e-100 <= abs(value) <= 1e100)):
        raise CalculatorError("Decimal numbers must lie between 1e-100 and 1e100 in size.")


def _check_call(node: ast.Call) -> None:
    """A call of a calculation: a known math function with plain positional arguments, as many as it takes."""
    if not isinstance(node.func, ast.Name):
        raise CalculatorError("Only direct calls of math functions such as sqrt(2) are allowed.")
    name = node.func.id
    if name not in FUNCTIONS:
        raise CalculatorError(f"Unknown function {name!r}; available functions: {', '.join(sorted(FUNCTIONS))}.")
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise CalculatorError(f"Call {name}() with plain positional arguments only.")
    _, lo, hi = FUNCTIONS[name]
    if not lo <= len(node.args) <= hi:
        expected = str(lo) if lo == hi else f"{lo} to {hi}"
        raise CalculatorError(f"{name}() takes {expected} argument(s), got {len(node.args)}.")


def _op_text(op: ast.AST) -> str:
    return {"FloorDiv": "//", "BitXor": "^ (bitwise)", "BitAnd": "&", "BitOr": "|", "LShift": "<<", "RShift": ">>",
            "MatMult": "@", "Invert": "~", "Not": "not"}.get(type(op).__name__, type(op).__name__)


def _node_text(node: ast.AST) -> str:
    return {
        "Attribute": "Attribute access (a.b)", "Subscript": "Indexing (a[b])", "Lambda": "A lambda",
        "Tuple": "A tuple (a, b)", "List": "A list", "Compare": "A comparison", "BoolOp": "and/or",
        "IfExp": "if/else", "GeneratorExp": "A generator", "ListComp": "A comprehension",
        "NamedExpr": "Assignment (:=)", "JoinedStr": "A string", "Dict": "A dict", "Set": "A set",
    }.get(type(node).__name__, f"{type(node).__name__} syntax")


def check_variable(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not _NAME.match(name) or name in FUNCTIONS or name in CONSTANTS:
        raise CalculatorError(f"Variable {name[:40]!r} is not a valid variable name; use a name like x or t.")
    return name


# ---------------------------------------------------------------------------------------------
# building and computing (runs inside a worker process; imports sympy there)
# ---------------------------------------------------------------------------------------------
def _digits(value: Any) -> int:
    """Approximate decimal digits of an exact sympy number (0 for non-exact values)."""
    import sympy

    if isinstance(value, sympy.Rational):
        return int(max(abs(int(value.p)).bit_length(), abs(int(value.q)).bit_length()) * 0.30103) + 1
    return 0


def _guard(value: Any) -> Any:
    if _digits(value) > MAX_RESULT_DIGITS:
        raise CalculatorError(f"A (partial) result has more than {MAX_RESULT_DIGITS} digits; use smaller numbers.")
    return value


def _pow(base: Any, exponent: Any) -> Any:
    import sympy

    if exponent.is_number and exponent.is_real and not exponent.has(sympy.zoo, sympy.nan):
        size = abs(float(exponent))
        if base.is_number:
            b = abs(complex(base.evalf(15))) if base.is_finite else 0.0
            if b > 1 and size * math.log10(b) > MAX_RESULT_DIGITS:
                raise CalculatorError(f"The power would have about {size * math.log10(b):.3g} digits; the limit is {MAX_RESULT_DIGITS}.")
            if 0 < b < 1 and size * -math.log10(b) > MAX_RESULT_DIGITS:
                raise CalculatorError(f"The power would have about {size * -math.log10(b):.3g} digits; the limit is {MAX_RESULT_DIGITS}.")
        elif size > MAX_SYMBOLIC_POWER:
            raise CalculatorError(f"Powers of variables are limited to exponents up to {MAX_SYMBOLIC_POWER}.")
    return _guard(sympy.Pow(base, exponent))


def build(tree: ast.expr, source: str) -> Any:
    """The sympy expression of a checked tree, guarding sizes at every step."""
    import sympy

    def make(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, int):
                return sympy.Integer(node.value)
            literal = ast.get_source_segment(source, node) or repr(node.value)
            return sympy.Rational(literal)  # "0.1" stays exactly 1/10
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return getattr(sympy, CONSTANTS[node.id])
            return sympy.Symbol(node.id)
        if isinstance(node, ast.UnaryOp):
            operand = make(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left, right = make(node.left), make(node.right)
            if isinstance(node.op, ast.Pow):
                return _pow(left, right)
            if isinstance(node.op, (ast.Div, ast.Mod)) and right.is_zero:
                raise CalculatorError("Division by zero.")
            if isinstance(node.op, ast.Add):
                return _guard(left + right)
            if isinstance(node.op, ast.Sub):
                return _guard(left - right)
            if isinstance(node.op, ast.Mult):
                return _guard(left * right)
            if isinstance(node.op, ast.Div):
                return _guard(left / right)
            return _guard(sympy.Mod(left, right))
        if isinstance(node, ast.Call):
            name = node.func.id  # type: ignore[attr-defined]
            args = [make(a) for a in node.args]
            if name == "factorial" and args[0].is_number and not (args[0].is_real and abs(args[0]) <= MAX_FACTORIAL):
                raise CalculatorError(f"factorial() is limited to numbers up to {MAX_FACTORIAL}.")
            if name == "binomial" and args[0].is_number and not (args[0].is_real and abs(args[0]) <= 100 * MAX_FACTORIAL):
                raise CalculatorError(f"binomial() is limited to n up to {100 * MAX_FACTORIAL}.")
            if name in ("gcd", "lcm") and not all(a.is_integer for a in args):
                raise CalculatorError(f"{name}() needs whole numbers.")
            return _guard(getattr(sympy, FUNCTIONS[name][0])(*args))
        raise CalculatorError(f"{_node_text(node)} is not allowed.")  # unreachable after parse_tree

    return make(tree)


def _expression(text: str, what: str = "expression") -> Any:
    source = _prepare(text, what)
    return build(parse_tree(source, what), source)


def _text(value: Any) -> str:
    out = str(value)
    if len(out) > MAX_OUTPUT_CHARS:
        raise CalculatorError(f"The result is longer than {MAX_OUTPUT_CHARS} characters; simplify the question.")
    return out


def _undefined(value: Any) -> bool:
    import sympy

    return bool(value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo))


def _approx(value: Any, digits: int) -> tuple[str, float | None]:
    import sympy

    approx = sympy.N(value, digits)
    real: float | None = None
    if approx.is_real and approx.is_finite:
        real = float(approx)
        if not math.isfinite(real):
            real = None
    return _text(approx), real


def _pick_variable(expr: Any, variable: str | None, what: str) -> Any:
    import sympy

    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    if variable is not None:
        return sympy.Symbol(variable)
    if len(symbols) == 1:
        return symbols[0]
    if not symbols:
        raise CalculatorError(f"The {what} has no variable; give one, e.g. x**2 - 4.")
    names = ", ".join(s.name for s in symbols)
    raise CalculatorError(f"The {what} has several variables ({names}); say which one with the 'variable' parameter.")


def compute(operation: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one calculator operation; raises :class:`CalculatorError` for input problems."""
    import sympy

    if operation == "evaluate":
        expr = _expression(args["expression"])
        if expr.free_symbols:
            names = ", ".join(sorted(s.name for s in expr.free_symbols))
            raise CalculatorError(
                f"The expression contains the variable(s) {names}; evaluation needs numbers only "
                "(use the equation solver or the simplifier for expressions with variables).")
        if _undefined(expr):
            raise CalculatorError("The expression is undefined (division by zero or an infinite value).")
        value, numeric = _approx(expr, args.get("digits", 15))
        exact = str(expr)
        return {"expression": args["expression"].strip(),
                "exact": exact if len(exact) <= MAX_OUTPUT_CHARS else None,
                "value": value, "numeric": numeric}
    if operation == "solve":
        left, right = split_equation(args["equation"])
        lhs, rhs = _expression(left, "equation"), _expression(right, "equation")
        expr = lhs - rhs
        variable = _pick_variable(expr, check_variable(args.get("variable")), "equation")
        if variable not in expr.free_symbols:
            raise CalculatorError(f"The equation does not contain the variable {variable.name!r}.")
        solutions = sympy.solve(expr, variable, dict=False)
        if not isinstance(solutions, list):
            solutions = [solutions]
        items = []
        for sol in solutions[:MAX_SOLUTIONS]:
            approx, numeric = _approx(sol, 15) if not sol.free_symbols else (_text(sol), None)
            if args.get("real_only") and sol.is_real is False:
                continue
            items.append({"exact": _text(sol), "approx": approx, "numeric": numeric})
        return {"equation": f"{_text(lhs)} = {_text(rhs)}", "variable": variable.name, "count": len(items), "solutions": items}
    if operation == "simplify":
        expr = _expression(args["expression"])
        mode = args.get("mode", "simplify")
        result = {"simplify": sympy.simplify, "expand": sympy.expand, "factor": sympy.factor}[mode](expr)
        return {"expression": _text(expr), "mode": mode, "result": _text(result)}
    if operation == "differentiate":
        expr = _expression(args["expression"])
        variable = _pick_variable(expr, check_variable(args.get("variable")), "expression")
        derivative = sympy.diff(expr, variable, int(args.get("order", 1)))
        return {"expression": _text(expr), "variable": variable.name, "order": int(args.get("order", 1)),
                "derivative": _text(sympy.simplify(derivative) if sympy.count_ops(derivative) < 60 else derivative)}
    raise CalculatorError(f"Unknown operation {operation!r}.")


# ---------------------------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------------------------
# Plain subprocesses speaking JSON lines over stdin/stdout (``python -m ...calculator``), not
# multiprocessing: spawn/forkserver re-import the parent's __main__, which breaks in scripts
# without a main guard, and fork is unsafe in a threaded server.
def _worker_main() -> None:
    """Loop of a worker process: one JSON request per stdin line, one JSON reply per stdout line."""
    import json
    import resource
    import sys

    # Belt and braces: a runaway computation dies of a memory limit rather than the machine.
    try:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    except (ValueError, OSError):
        pass
    import sympy  # noqa: F401  (import once, before announcing readiness)

    out = sys.stdout
    sys.stdout = sys.stderr  # a stray print() inside sympy must not corrupt the reply stream
    out.write(json.dumps({"status": "ready"}) + "\n")
    out.flush()
    for line in sys.stdin:  # ends when the parent closes the pipe or dies
        try:
            request = json.loads(line)
            reply = {"status": "ok", "result": compute(request["operation"], request["args"])}
        except CalculatorError as exc:
            reply = {"status": "error", "message": str(exc)}
        except (RecursionError, MemoryError, OverflowError):
            reply = {"status": "error", "message": "The calculation is too large to compute; use smaller numbers or a simpler expression."}
        except (TypeError, ValueError, ZeroDivisionError, NotImplementedError, AttributeError, KeyError) as exc:
            # sympy signals unsupported input with these (e.g. solve() of a transcendental mix).
            reply = {"status": "error", "message": f"The calculator cannot handle this input: {str(exc)[:200] or type(exc).__name__}."}
        except Exception as exc:  # anything else sympy raises on odd input; the worker must keep serving
            reply = {"status": "error", "message": f"The calculator could not compute this input ({type(exc).__name__})."}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class _Worker:
    def __init__(self) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # makes the package importable anywhere
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "toolalpaca_utils.realtools.calculator"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1,  # stderr: the server log
        )
        self.ready = False

    def _readline(self, timeout: float) -> dict | None:
        """The next reply line, or None when none arrives within ``timeout`` seconds."""
        import json
        import select

        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError("calculator worker exited")
        return json.loads(line)

    def wait_ready(self, timeout: float) -> bool:
        if not self.ready:
            message = self._readline(timeout)
            self.ready = bool(message and message.get("status") == "ready")
        return self.ready

    def ask(self, operation: str, args: dict[str, Any], timeout: float) -> dict | None:
        import json

        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"operation": operation, "args": args}) + "\n")
        self.process.stdin.flush()
        return self._readline(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(5)
        except Exception:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


class CalculatorPool:
    """A few sympy worker processes; a computation over the time limit kills its worker."""

    def __init__(self, size: int = 2, time_limit_s: float = TIME_LIMIT_S, start_timeout_s: float = 60.0) -> None:
        self.size = size
        self.time_limit_s = time_limit_s
        self.start_timeout_s = start_timeout_s
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start the workers (they import sympy in the background)."""
        with self._lock:
            while len(self._all) < self.size and not self._closed:
                worker = _Worker()
                self._all.add(worker)
                self._idle.put(worker)

    def wait_ready(self) -> bool:
        """Block until every started worker has imported sympy (used before reporting healthy)."""
        with self._lock:
            workers = list(self._all)
        return all(w.wait_ready(self.start_timeout_s) for w in workers)

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            self._all.discard(worker)
        self.start()

    def run(self, operation: str, args: dict[str, Any]) -> dict[str, Any]:
        """Compute in a worker; raises CalculatorError for refused, failed or too-slow input."""
        if self._closed:
            raise RuntimeError("calculator pool is closed")
        self.start()
        try:
            worker = self._idle.get(timeout=30)
        except queue.Empty:
            raise CalculatorError("The calculator is busy with other requests; try again in a moment.") from None
        healthy = False
        try:
            if not worker.wait_ready(self.start_timeout_s):
                raise RuntimeError("calculator worker did not start")
            reply = worker.ask(operation, args, self.time_limit_s)
            if reply is None:
                raise CalculatorError(
                    f"The calculation took longer than {self.time_limit_s:g} s and was stopped; "
                    "use a simpler expression or smaller numbers.")
            healthy = True
        except CalculatorError:
            raise
        except (EOFError, BrokenPipeError, ValueError):
            # The worker died mid-computation: in practice its memory limit hit by a huge input.
            raise CalculatorError("The calculation needed too much memory and was stopped; use smaller numbers.") from None
        finally:
            if healthy:
                self._idle.put(worker)
            else:
                self._retire(worker)
        if reply.get("status") != "ok":
            raise CalculatorError(str(reply.get("message") or "The calculator could not compute this."))
        return reply["result"]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()


if __name__ == "__main__":
    _worker_main()
