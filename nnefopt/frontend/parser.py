"""Recursive-descent parser for NNEF documents and graph.quant files (spec chapter 3).

Statements are parsed in loops, so a graph of any length costs no stack. Expressions
recurse, so nesting is capped at MAX_NESTING: a deeper expression is a clear error, and
every later visitor of the tree can recurse without hitting Python's limit.
"""

from __future__ import annotations

from pathlib import Path

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.lexer import Token, tokenize

MAX_NESTING = 100

# Binary operators and their precedence, as the specification orders them.
_PRECEDENCE = {
    "in": 10,
    "&&": 20, "||": 20,
    "<": 30, "<=": 30, ">": 30, ">=": 30, "==": 30, "!=": 30,
    "+": 40, "-": 40,
    "*": 50, "/": 50,
    "^": 60,
}  # fmt: skip
_POWER = _PRECEDENCE["^"]
_SEPARATORS = frozenset((",", ")", "]", ";", ":"))
_TYPE_NAMES = set(ast.PRIMITIVES)
_GENERIC_ARGS = _TYPE_NAMES | {"?"}


# The largest integer NNEF text may spell: a signed 64-bit integer's.
INTEGER_MAX = 2**63 - 1


class Parser:
    def __init__(self, text: str, file: str):
        self.file = file
        self.tokens = tokenize(text, file)
        self.pos = 0
        self.nesting = 0

    # ---- token helpers ------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def loc(self, token: Token | None = None) -> Location:
        token = token or self.token
        return Location(self.file, token.line, token.column)

    def error(self, message: str, token: Token | None = None) -> NNEFError:
        return NNEFError(message, self.loc(token))

    def at(self, text: str) -> bool:
        token = self.token
        return token.text == text and token.kind in ("operator", "identifier")

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str, context: str) -> Token:
        token = self.token
        if not self.at(text):
            raise self.error(f"expected '{text}' {context}, found {_describe(token)}")
        self.pos += 1
        return token

    def identifier(self, what: str) -> str:
        token = self.token
        if token.kind != "identifier":
            raise self.error(f"expected {what}, found {_describe(token)}")
        self.pos += 1
        return token.text

    # ---- documents ----------------------------------------------------------

    def document(self, require_graph: bool = True) -> ast.Document:
        # A library of fragments (require_graph=False) may omit the version line.
        version = self.version() if require_graph or self.at("version") else (1, 0)
        extensions: list[ast.Extension] = []
        while self.at("extension"):
            extensions.extend(self.extension())
        fragments = []
        while self.at("fragment"):
            fragments.append(self.fragment())
        graph = None
        if self.at("graph") or require_graph:
            graph = self.graph()
        if self.token.kind != "end":
            raise self.error(f"expected end of file after the graph, found {_describe(self.token)}")
        return ast.Document(version, extensions, fragments, graph, file=self.file)

    def version(self) -> tuple[int, int]:
        self.expect("version", "at the start of the document")
        token = self.token
        major, dot, minor = token.text.partition(".")
        if token.kind != "real" or not (major.isdigit() and minor.isdigit()) or len(token.text) > 20:
            raise self.error(f"expected a version number such as 1.0, found {_describe(token)}")
        self.pos += 1
        self.expect(";", "after the version")
        return int(major), int(minor)

    def extension(self) -> list[ast.Extension]:
        loc = self.loc()
        self.expect("extension", "")
        names = [self.identifier("an extension name")]
        if self.at(",") or self.at(";"):  # standard form: a list of names
            while self.accept(","):
                names.append(self.identifier("an extension name"))
            self.expect(";", "after the extension list")
            return [ast.Extension(name, "", loc) for name in names]
        words = []  # tract's form: `extension tract_registry tract_core;`
        while not self.at(";"):
            if self.token.kind == "end":
                raise self.error("expected ';' after the extension")
            words.append(self.token.text)
            self.pos += 1
        self.pos += 1
        return [ast.Extension(names[0], " ".join(words), loc)]

    def fragment(self) -> ast.Fragment:
        loc = self.loc()
        self.expect("fragment", "")
        name = self.identifier("a fragment name")
        generic, generic_default = False, None
        if self.accept("<"):
            self.expect("?", "in the generic declaration")
            generic = True
            if self.accept("="):
                generic_default = ast.PrimitiveType(self.type_name())
            self.expect(">", "to close the generic declaration")
        self.expect("(", f"after fragment name '{name}'")
        params = self.listing(")", self.param, "parameters")
        self.expect("->", "between the parameters and the results")
        self.expect("(", "before the results")
        results = self.listing(")", self.result, "results")
        body = None
        if self.at("{"):
            body = self.block()
        else:
            self.accept(";")
        return ast.Fragment(name, generic, generic_default, params, results, body, loc)

    def param(self) -> ast.Param:
        loc = self.loc()
        name = self.identifier("a parameter name")
        self.expect(":", f"after parameter '{name}'")
        type_ = self.type()
        default = self.expression() if self.accept("=") else None
        return ast.Param(name, type_, default, loc)

    def result(self) -> ast.Result:
        loc = self.loc()
        name = self.identifier("a result name")
        self.expect(":", f"after result '{name}'")
        return ast.Result(name, self.type(), loc)

    def type_name(self) -> str:
        token = self.token
        if token.text not in _TYPE_NAMES or token.kind != "identifier":
            raise self.error(f"expected a type name (scalar, integer, logical, string), found {_describe(token)}")
        self.pos += 1
        return token.text

    def type(self) -> ast.Type:
        if self.accept("("):
            self.enter()
            items = self.listing(")", self.type, "tuple types")
            self.nesting -= 1
            type_: ast.Type = ast.TupleType(tuple(items))
        elif self.accept("tensor"):
            item = ""
            if self.accept("<"):
                if not self.at(">"):
                    item = "?" if self.accept("?") else self.type_name()
                self.expect(">", "to close the tensor type")
            type_ = ast.TensorType(ast.PrimitiveType(item))
        elif self.accept("?"):
            type_ = ast.PrimitiveType("?")
        else:
            type_ = ast.PrimitiveType(self.type_name())
        depth = 0
        while self.at("[") and self.peek().text == "]":
            depth += 1
            if depth > MAX_NESTING:
                raise self.error(f"type nested more than {MAX_NESTING} levels deep")
            self.pos += 2
            type_ = ast.ArrayType(type_)
        return type_

    def graph(self) -> ast.Graph:
        loc = self.loc()
        self.expect("graph", "after the fragment definitions")
        name = self.identifier("a graph name")
        self.expect("(", f"after graph name '{name}'")
        inputs = self.listing(")", lambda: self.identifier("an input name"), "graph inputs")
        self.expect("->", "between the graph inputs and outputs")
        self.expect("(", "before the graph outputs")
        outputs = self.listing(")", lambda: self.identifier("an output name"), "graph outputs")
        return ast.Graph(name, inputs, outputs, self.block(), loc)

    def block(self) -> list[ast.Assignment]:
        self.expect("{", "to open the body")
        body = []
        while not self.accept("}"):
            if self.token.kind == "end":
                raise self.error("expected '}' to close the body, found end of file")
            body.append(self.assignment())
        return body

    def assignment(self) -> ast.Assignment:
        loc = self.loc()
        lhs = self.lvalue()
        if self.at(","):  # `a, b = split(...)`: a tuple without parentheses
            items = [lhs]
            while self.accept(","):
                items.append(self.lvalue())
            lhs = ast.TupleExpr(items, loc)
        self.expect("=", "after the left-hand side of the assignment")
        rhs = self.expression()
        self.expect(";", "after the assignment")
        return ast.Assignment(lhs, rhs, loc)

    def lvalue(self) -> ast.Expr:
        loc = self.loc()
        for open_, close, node in (("[", "]", ast.ArrayExpr), ("(", ")", ast.TupleExpr)):
            if self.accept(open_):
                self.enter()
                items = self.listing(close, self.lvalue, "left-hand side items")
                self.nesting -= 1
                return node(items, loc)
        return ast.Identifier(self.identifier("an identifier on the left-hand side"), loc)

    def enter(self) -> None:
        """One level deeper into brackets: bounded, so that recursion never runs out."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"nested more than {MAX_NESTING} levels deep")

    def listing(self, close: str, item, what: str) -> list:
        """Comma-separated items up to `close` (consumed); the list may be empty."""
        items = []
        if self.accept(close):
            return items
        items.append(item())
        while self.accept(","):
            items.append(item())
        self.expect(close, f"after the {what}")
        return items

    # ---- expressions ----------------------------------------------------------

    def expression(self, allow_select: bool = True) -> ast.Expr:
        # Fast path for the commonest argument: one literal or name, then a separator.
        follower = self.peek()
        if follower.kind == "operator" and follower.text in _SEPARATORS and self.token.kind != "operator":
            return self.primary()
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"expression nested more than {MAX_NESTING} levels deep")
        expr = self.binary(self.unary(), 0)
        if self.at("?"):  # `condition ? then : otherwise`, another spelling of if-else
            loc = self.loc()
            self.pos += 1
            then = self.expression()
            self.expect(":", "in the conditional expression")
            expr = ast.Select(expr, then, self.expression(allow_select), loc)
        elif allow_select and self.at("if"):
            loc = self.loc()
            self.pos += 1
            condition = self.expression()
            self.expect("else", "in the conditional expression")
            expr = ast.Select(condition, expr, self.expression(), loc)
        self.nesting -= 1
        return expr

    def binary(self, lhs: ast.Expr, min_precedence: int) -> ast.Expr:
        """Precedence climbing: loops over operators of one level, recurses only upwards."""
        while True:
            op = self.binary_operator()
            if op is None or _PRECEDENCE[op] < min_precedence:
                return lhs
            loc = self.loc()
            self.pos += 1
            rhs = self.unary()
            following = self.binary_operator()
            if following is not None and _PRECEDENCE[following] > _PRECEDENCE[op]:
                rhs = self.binary(rhs, _PRECEDENCE[op] + 1)
            lhs = ast.Binary(op, lhs, rhs, loc)

    def binary_operator(self) -> str | None:
        token = self.token
        if token.text in _PRECEDENCE and token.kind in ("operator", "identifier"):
            return token.text if token.kind == "operator" or token.text == "in" else None
        return None

    def unary(self) -> ast.Expr:
        token = self.token
        if token.kind == "operator" and token.text in ("-", "+", "!"):
            self.pos += 1
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                raise self.error(f"expression nested more than {MAX_NESTING} levels deep")
            operand = self.binary(self.unary(), _POWER)  # `-x ^ 2` is `-(x ^ 2)`
            self.nesting -= 1
            if isinstance(operand, ast.Literal) and operand.kind in ("scalar", "integer") and token.text != "!":
                value = -operand.value if token.text == "-" else operand.value
                return ast.Literal(value, operand.kind, self.loc(token))
            return ast.Unary(token.text, operand, self.loc(token))
        return self.postfix(self.primary())

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        while self.at("["):
            loc = self.loc()
            self.pos += 1
            begin = end = None
            is_range = False
            if not self.at(":"):
                begin = self.expression()
            if self.accept(":"):
                is_range = True
                if not self.at("]"):
                    end = self.expression()
            self.expect("]", "to close the subscript")
            expr = ast.Subscript(expr, begin, end, is_range, loc)
        return expr

    def integer(self, token: Token) -> int:
        """An integer literal; NNEF engines hold integers in 64 bits, and Python refuses to
        convert more than 4300 digits: a longer literal is refused before either."""
        digits = token.text.lstrip("0")
        if len(digits) > 19 or int(digits or "0") > INTEGER_MAX:
            shown = token.text if len(token.text) <= 30 else f"{token.text[:20]}... ({len(token.text)} digits)"
            raise self.error(f"integer literal {shown} does not fit in 64 bits", token)
        return int(digits or "0")

    def primary(self) -> ast.Expr:
        token = self.token
        loc = self.loc()
        kind = token.kind
        if kind == "real" or kind == "integer":
            self.pos += 1
            if kind == "integer":
                return ast.Literal(self.integer(token), "integer", loc)
            return ast.Literal(float(token.text), "scalar", loc)
        if kind == "string":
            self.pos += 1
            return ast.Literal(token.text, "string", loc)
        if kind == "identifier":
            return self.identifier_expression(loc)
        if self.accept("["):
            if self.at("for"):
                return self.comprehension(loc)
            return ast.ArrayExpr(self.listing("]", self.expression, "array items"), loc)
        if self.accept("("):
            items = self.listing(")", self.expression, "tuple items")
            if len(items) == 1:
                return items[0]
            return ast.TupleExpr(items, loc)
        raise self.error(f"expected an expression, found {_describe(token)}")

    def identifier_expression(self, loc: Location) -> ast.Expr:
        name = self.token.text
        self.pos += 1
        if name in ("true", "false"):
            return ast.Literal(name == "true", "logical", loc)
        if name == "inf":  # tract writes infinities as a bare word
            return ast.Literal(float("inf"), "scalar", loc)
        type_arg = None
        if self.at("<") and self.peek().text in _GENERIC_ARGS and self.peek(2).text == ">" and self.peek(3).text == "(":
            type_arg = self.peek().text
            self.pos += 3
        if self.accept("("):
            args = self.listing(")", self.argument, "arguments")
            return ast.Invocation(name, type_arg, args, loc)
        return ast.Identifier(name, loc)

    def argument(self) -> ast.Argument:
        loc = self.loc()
        if self.token.kind == "identifier" and self.peek().text == "=" and self.peek().kind == "operator":
            name = self.token.text
            self.pos += 2
            return ast.Argument(name, self.expression(), loc)
        return ast.Argument(None, self.expression(), loc)

    def comprehension(self, loc: Location) -> ast.Comprehension:
        self.expect("for", "")
        iterators = []
        while True:
            name = self.identifier("a loop variable")
            self.expect("in", f"after loop variable '{name}'")
            iterators.append((name, self.expression(allow_select=False)))
            if not self.accept(","):
                break
        condition = self.expression() if self.accept("if") else None
        self.expect("yield", "in the comprehension")
        body = self.expression()
        self.expect("]", "to close the comprehension")
        return ast.Comprehension(iterators, condition, body, loc)

    # ---- graph.quant ----------------------------------------------------------

    def quant_entries(self) -> list[ast.QuantEntry]:
        entries = []
        while self.token.kind != "end":
            token = self.token
            if token.kind != "string":
                raise self.error(f"expected a quoted tensor name, found {_describe(token)}")
            self.pos += 1
            self.expect(":", f"after tensor name '{token.text}'")
            call = self.expression()
            if not isinstance(call, ast.Invocation):
                raise NNEFError("expected a quantization algorithm call such as linear_quantize(...)", _loc_of(call))
            self.expect(";", "after the quantization entry")
            attributes = {}
            for arg in call.args:
                if arg.name is None:
                    raise NNEFError("quantization parameters must be given by name", arg.loc)
                attributes[arg.name] = arg.value
            entries.append(ast.QuantEntry(token.text, call.name, attributes, self.loc(token)))
        return entries


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of file"
    if token.kind == "string":
        return f"string '{token.text}'"
    return f"'{token.text}'"


def _loc_of(expr: ast.Expr) -> Location:
    return expr.loc


def read_text(path: str | Path, display: str | None = None) -> str:
    display = display or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NNEFError("file not found", Location(display)) from None
    except UnicodeDecodeError as exc:
        raise NNEFError(f"not UTF-8 text (byte {exc.start})", Location(display)) from None
    except OSError as exc:
        raise NNEFError(exc.strerror or str(exc), Location(display)) from None


def parse_document(text: str, file: str = "<string>", require_graph: bool = True) -> ast.Document:
    return Parser(text, file).document(require_graph)


def parse_quant(text: str, file: str = "graph.quant") -> list[ast.QuantEntry]:
    return Parser(text, file).quant_entries()
