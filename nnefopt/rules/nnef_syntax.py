"""Rules written as NNEF text.

A rule file is a list of rules; each reads as an NNEF fragment whose body states one
rewrite, `lhs => rhs;`, between ordinary NNEF expressions over the op table's operations:

    # relu is max(x, 0) (the specification's own definition)
    rule fold_relu( x: tensor<scalar> )
    {
        max(x, 0.0) => relu(x);
    }

    rule fold_leaky_relu( x: tensor<scalar>, a: scalar )
    {
        where a >= 0.0 && a <= 1.0;
        max(x, x * a) => leaky_relu(x, alpha = a);
    }

- parameters are the pattern variables: `tensor<...>` ones bind any tensor; attribute
  ones (`scalar`, `integer[]`, ...) bind an attribute, or the one value of a constant;
- `where condition;` adds a guard (any number, anywhere in the body): an NNEF expression
  over the parameters, with `rank(x)`, `shape_of(x)` and `is_constant(x)` on tensors;
- `name = expression;` names a sub-expression, as in a fragment body;
- operators are the operations the specification maps them to (`a * b` is `mul(a, b)`,
  `-x` is `neg(x)`), and an argument left out means its default, as in NNEF;
- on the right-hand side, an attribute or a tensor place may compute a value from the
  parameters (`mul(x, a * b)`).

Errors are NNEFErrors at file:line:col.
"""

from __future__ import annotations

from pathlib import Path

from nnefopt.errors import Location, NNEFError
from nnefopt.frontend import ast
from nnefopt.frontend.evaluate import TENSOR_BINARY, TENSOR_UNARY, evaluate_constant
from nnefopt.frontend.parser import Parser, read_text
from nnefopt.frontend.printer import format_expr
from nnefopt.rules.pattern import (
    Computed,
    ListPattern,
    Lit,
    OpPattern,
    Rule,
    Var,
    VarType,
    expression_guard,
    variables_of,
)


class RuleParser(Parser):
    """The frontend's parser, with rule declarations on top."""

    def rules(self) -> list[tuple]:
        if self.at("version"):
            self.version()
        found = []
        while self.token.kind != "end":
            found.append(self.rule())
        return found

    def rule(self) -> tuple:
        loc = self.loc()
        self.expect("rule", "to begin a rule")
        name = self.identifier("a rule name")
        self.expect("(", f"after rule name '{name}'")
        params = self.listing(")", self.param, "parameters")
        self.expect("{", f"to open the body of rule '{name}'")
        names, guards, rewrite = {}, [], None
        while not self.accept("}"):
            if self.token.kind == "end":
                raise self.error(f"expected '}}' to close rule '{name}', found end of file")
            if self.accept("where"):
                guards.append(self.expression())
                self.expect(";", "after the guard")
            elif self.token.kind == "identifier" and self.peek().text == "=" and not self._arrow(1):
                target = self.identifier("a name")
                self.pos += 1
                names[target] = self.expression()
                self.expect(";", "after the assignment")
            else:
                if rewrite is not None:
                    raise self.error(f"rule '{name}' has a second rewrite; one rule states one")
                lhs_loc = self.loc()
                lhs = self.expression()
                if not self._arrow(0):
                    raise self.error(f"expected '=>' between the two sides of rule '{name}', found "
                                     f"'{self.token.text}'")
                self.pos += 2
                rhs = self.expression()
                if self.accept("where"):
                    guards.append(self.expression())
                self.expect(";", "after the rewrite")
                rewrite = (lhs, rhs, lhs_loc)
        if rewrite is None:
            raise NNEFError(f"rule '{name}' states no rewrite ('lhs => rhs;')", loc)
        return name, params, names, guards, rewrite, loc

    def _arrow(self, offset: int) -> bool:
        """`=>`: NNEF's lexer reads it as `=` then `>`, which must touch."""
        first, second = self.peek(offset), self.peek(offset + 1)
        return (first.text == "=" and second.text == ">" and first.kind == second.kind == "operator"
                and first.line == second.line and second.column == first.column + 1)


def parse_rules(text: str, file: str = "<rules>") -> list[Rule]:
    """The rules of a rule file's text (not yet verified)."""
    parser = RuleParser(text, file)
    rules, seen = [], {}
    for name, params, names, guards, (lhs, rhs, lhs_loc), loc in parser.rules():
        if name in seen:
            raise NNEFError(f"rule '{name}' is already defined at {seen[name]}", loc)
        seen[name] = loc
        variables = {}
        for param in params:
            if param.name in variables:
                raise NNEFError(f"parameter '{param.name}' is declared twice", param.loc)
            if param.default is not None:
                raise NNEFError("a rule parameter has no default: it is a pattern variable", param.loc)
            variables[param.name] = var_type(param.type, param.loc)
        rules.append(build_rule(name, variables, lhs, rhs, guards, names, loc, origin=file))
    return rules


def read_rules(path: str | Path) -> list[Rule]:
    return parse_rules(read_text(path), str(path))


def var_type(type_: ast.Type, loc: Location | None = None) -> VarType:
    if isinstance(type_, ast.TensorType):
        return VarType("tensor", item=type_.item.name if type_.item.name in ("logical", "integer") else "scalar")
    if isinstance(type_, ast.ArrayType) and not isinstance(type_.item, ast.TensorType) and str(type_.item) != "?":
        return VarType(str(type_.item), True)
    if isinstance(type_, (ast.PrimitiveType, ast.TupleType)) and str(type_) != "?":
        return VarType(str(type_))
    raise NNEFError(f"a rule parameter is a tensor or an attribute, not '{type_}'", loc)


# What a guard or a computed value may call; a tensor variable appears only as the
# argument of the first three.
_ON_TENSORS = ("rank", "shape_of", "is_constant")
_GUARD_CALLS = (*_ON_TENSORS, "length_of", "range_of", "integer", "scalar", "logical", "string")


def _check_value_expression(expr: ast.Expr, variables: dict[str, VarType], what: str) -> None:
    """A guard or computed value only reads attributes and tensors' shapes: refuse, where
    it stands, a call of anything else or a tensor used as a value."""
    stack = [(expr, False)]
    while stack:
        node, on_tensor = stack.pop()
        if isinstance(node, ast.Invocation):
            if node.name not in _GUARD_CALLS:
                raise NNEFError(f"{what} cannot call '{node.name}' (only {', '.join(_GUARD_CALLS)})", node.loc)
            stack.extend((a.value, node.name in _ON_TENSORS) for a in node.args)
        elif isinstance(node, ast.Identifier):
            var = variables.get(node.name)
            if var is not None and var.is_tensor and not on_tensor:
                raise NNEFError(f"{what} reads tensor '{node.name}' only through rank(), shape_of() or "
                                "is_constant()", node.loc)
        elif hasattr(node, "__dataclass_fields__"):
            for value in vars(node).values():
                items = value if isinstance(value, list) else [value]
                stack.extend((v, False) for v in items if hasattr(v, "__dataclass_fields__")
                             and not isinstance(v, Location))
            if isinstance(node, ast.Comprehension):
                stack.extend((source, False) for _, source in node.iterators)


# ---- from NNEF expressions to patterns ---------------------------------------------------


def build_rule(name: str, variables: dict[str, VarType], lhs: ast.Expr, rhs: ast.Expr, guards: list[ast.Expr],
               names: dict[str, ast.Expr] | None = None, loc: Location | None = None, origin: str = "") -> Rule:
    """A rule from NNEF expressions: the two sides, the guards, and named sub-expressions."""
    loc = loc or _loc_of(lhs)
    names = names or {}
    _check_names(names, variables)
    convert = _Converter(variables, names)
    left = convert.tensor(lhs, "left")
    if not isinstance(left, OpPattern):
        raise NNEFError("the left-hand side of a rule must be an operation", _loc_of(lhs))
    right = convert.tensor(rhs, "right")
    bound = set(variables_of(left))
    for side, pattern, where in (("right-hand side", right, rhs),
                                 *(("guard", Computed(g, ""), g) for g in guards)):
        for var in variables_of(pattern):
            if var not in bound:
                raise NNEFError(f"'{var}' in the {side} of rule '{name}' is not bound by its left-hand side",
                                _loc_of(where))
    unused = [v for v in variables if v not in bound]
    if unused:
        raise NNEFError(f"parameter '{unused[0]}' of rule '{name}' does not appear in its left-hand side", loc)
    for guard in guards:
        _check_value_expression(convert.expand(guard), variables, "a guard")
    for computed in _computed(right):
        _check_value_expression(computed.expr, variables, "a computed value")
    checks = tuple(expression_guard(convert.expand(g), format_expr(g)) for g in guards)
    return Rule(name, left, right, checks, None, dict(variables), loc, origin)


def _check_names(names: dict[str, ast.Expr], variables: dict[str, VarType]) -> None:
    """As in a fragment body: a name is assigned once, before it is used, and does not
    hide a parameter."""
    defined: set[str] = set()
    for name, expr in names.items():
        if name in variables:
            raise NNEFError(f"'{name}' is a parameter of the rule; it cannot be assigned", _loc_of(expr))
        for node in ast.walk(expr):
            if isinstance(node, ast.Identifier) and node.name in names and node.name not in defined:
                raise NNEFError(f"'{node.name}' is used before it is assigned", node.loc)
        defined.add(name)


def _computed(pattern) -> list[Computed]:
    if isinstance(pattern, Computed):
        return [pattern]
    if isinstance(pattern, ListPattern):
        return [c for item in pattern.items for c in _computed(item)]
    if isinstance(pattern, OpPattern):
        return [c for _, sub in (*pattern.operands, *pattern.attributes) if sub is not None for c in _computed(sub)]
    return []


def _loc_of(expr: ast.Expr) -> Location:
    return getattr(expr, "loc", None) or Location("<rule>")


class _Converter:
    def __init__(self, variables: dict[str, VarType], names: dict[str, ast.Expr]):
        self.variables, self.names = variables, names
        self.depth = 0

    def expand(self, expr: ast.Expr) -> ast.Expr:
        """Named sub-expressions substituted (guards and computed values see parameters only)."""
        if isinstance(expr, ast.Identifier) and expr.name in self.names and expr.name not in self.variables:
            return self.expand(self.names[expr.name])
        if hasattr(expr, "__dataclass_fields__"):
            changes = {}
            for key, value in vars(expr).items():
                if isinstance(value, list):
                    changes[key] = [self.expand(v) if hasattr(v, "__dataclass_fields__") else v for v in value]
                elif hasattr(value, "__dataclass_fields__") and not isinstance(value, Location):
                    changes[key] = self.expand(value)
            if changes:
                return type(expr)(**{**vars(expr), **changes})
        return expr

    def _is_value(self, expr: ast.Expr) -> bool:
        """Whether an expression computes a value from attributes and shapes (no tensor)."""
        try:
            _check_value_expression(self.expand(expr), self.variables, "a value")
        except NNEFError:
            return False
        return True

    def tensor(self, expr: ast.Expr, side: str):
        """The pattern of an expression in a tensor place."""
        self.depth += 1
        if self.depth > 200:
            raise NNEFError("rule nested too deeply (a name defined by itself?)", _loc_of(expr))
        try:
            return self._tensor(expr, side)
        finally:
            self.depth -= 1

    def _tensor(self, expr: ast.Expr, side: str):
        if isinstance(expr, ast.Identifier):
            if expr.name in self.variables:
                if self.variables[expr.name].array:
                    raise NNEFError(f"'{expr.name}' is an array attribute; it cannot stand for a tensor", expr.loc)
                return Var(expr.name)
            if expr.name in self.names:
                return self.tensor(self.names[expr.name], side)
            raise NNEFError(f"undefined identifier '{expr.name}' (not a parameter of the rule)", expr.loc)
        if isinstance(expr, ast.Literal):
            return Lit(expr.value)
        if self._is_value(expr):
            return self.value(expr, side)
        if isinstance(expr, ast.Unary):
            if expr.op == "+":
                return self.tensor(expr.operand, side)
            return self.operation(TENSOR_UNARY[expr.op], [ast.Argument(None, expr.operand)], expr.loc, side)
        if isinstance(expr, ast.Binary):
            if expr.op not in TENSOR_BINARY:
                raise NNEFError(f"operator '{expr.op}' is not defined on tensors", expr.loc)
            args = [ast.Argument(None, expr.left), ast.Argument(None, expr.right)]
            return self.operation(TENSOR_BINARY[expr.op], args, expr.loc, side)
        if isinstance(expr, ast.Select):
            args = [ast.Argument(None, e) for e in (expr.condition, expr.then, expr.otherwise)]
            return self.operation("select", args, expr.loc, side)
        if isinstance(expr, ast.Invocation):
            return self.operation(expr.name, expr.args, expr.loc, side)
        if isinstance(expr, ast.ArrayExpr):
            return ListPattern(tuple(self.tensor(item, side) for item in expr.items))
        raise NNEFError("this expression cannot be part of a rule", _loc_of(expr))

    def value(self, expr: ast.Expr, side: str):
        """The pattern of an attribute (or of a value in a tensor place)."""
        expanded = self.expand(expr)
        if isinstance(expanded, ast.Identifier) and expanded.name in self.variables:
            if self.variables[expanded.name].is_tensor:
                raise NNEFError(f"tensor '{expanded.name}' given where an attribute is due", expr.loc)
            return Var(expanded.name)
        identifiers = [n for n in ast.walk(expanded) if isinstance(n, ast.Identifier)]
        if not identifiers:
            try:
                return Lit(evaluate_constant(expanded))
            except NNEFError:
                pass
        if side == "left":
            raise NNEFError("the left-hand side matches literals and parameters; a value computed from "
                            "parameters belongs on the right-hand side or in a guard", _loc_of(expr))
        for node in identifiers:
            if node.name not in self.variables:
                raise NNEFError(f"undefined identifier '{node.name}' (not a parameter of the rule)", node.loc)
        return Computed(expanded, format_expr(expanded))

    def operation(self, name: str, args: list[ast.Argument], loc: Location, side: str) -> OpPattern:
        from nnefopt.ops import entry_of

        entry = entry_of(name)
        if entry is None or entry.signature is None:
            raise NNEFError(f"unknown operation '{name}' (rules use the operations of the op table)", loc)
        params = entry.signature.params
        given: dict[str, ast.Expr] = {}
        positional = [a for a in args if a.name is None]
        if len(positional) > len(params):
            raise NNEFError(f"'{name}' takes {len(params)} arguments, {len(positional)} given", loc)
        for param, arg in zip(params, positional):
            given[param.name] = arg.value
        for arg in args:
            if arg.name is None:
                continue
            if entry.signature.param(arg.name) is None:
                raise NNEFError(f"'{name}' has no parameter '{arg.name}'", arg.loc)
            if arg.name in given:
                raise NNEFError(f"argument '{arg.name}' of '{name}' is given twice", arg.loc)
            given[arg.name] = arg.value
        operands, attributes = [], []
        for param in entry.tensor_params:
            if param.name in given:
                pattern = self.tensor(given[param.name], side)
                if isinstance(pattern, ListPattern) != isinstance(param.type, ast.ArrayType):
                    # `[x] * times` repeats an array (NNEF's array operators), it is no `mul`
                    raise NNEFError(f"'{name}' takes {'an array of tensors' if isinstance(param.type, ast.ArrayType) else 'a tensor'}"
                                    f" as '{param.name}'", _loc_of(given[param.name]))
                operands.append((param.name, pattern))
            elif param.default is None:
                raise NNEFError(f"'{name}' needs its argument '{param.name}'", loc)
            else:
                operands.append((param.name, None))
        for param in entry.attribute_params:
            if param.name in given:
                attributes.append((param.name, self.value(given[param.name], side)))
            elif param.default is None:
                raise NNEFError(f"'{name}' needs its attribute '{param.name}'", loc)
            else:
                attributes.append((param.name, Lit(entry.attribute_defaults[param.name])))
        return OpPattern(name, tuple(operands), tuple(attributes))
