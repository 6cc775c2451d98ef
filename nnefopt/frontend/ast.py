"""The syntax tree of an NNEF document; every node records where it came from.

Nodes are plain dataclasses compared by value, ignoring locations, so that
`parse(print(parse(x))) == parse(x)` is a meaningful test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from nnefopt.errors import Location

NOWHERE = Location("<generated>")


def _loc() -> Location:
    return field(default=NOWHERE, compare=False, repr=False)


# ---- types -----------------------------------------------------------------

PRIMITIVES = ("scalar", "integer", "logical", "string")


@dataclass(frozen=True)
class PrimitiveType:
    name: str  # one of PRIMITIVES, or "?" for the generic placeholder

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TensorType:
    item: PrimitiveType

    def __str__(self) -> str:
        return f"tensor<{self.item}>"


@dataclass(frozen=True)
class ArrayType:
    item: "Type"

    def __str__(self) -> str:
        return f"{self.item}[]"


@dataclass(frozen=True)
class TupleType:
    items: tuple["Type", ...]

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.items)) + ")"


Type = Union[PrimitiveType, TensorType, ArrayType, TupleType]


# ---- expressions -----------------------------------------------------------


@dataclass
class Literal:
    value: object  # float, int, bool or str
    kind: str  # "scalar", "integer", "logical" or "string"
    loc: Location = _loc()


@dataclass
class Identifier:
    name: str
    loc: Location = _loc()


@dataclass
class ArrayExpr:
    items: list["Expr"]
    loc: Location = _loc()


@dataclass
class TupleExpr:
    items: list["Expr"]
    loc: Location = _loc()


@dataclass
class Unary:
    op: str  # "-", "+" or "!"
    operand: "Expr"
    loc: Location = _loc()


@dataclass
class Binary:
    op: str
    left: "Expr"
    right: "Expr"
    loc: Location = _loc()


@dataclass
class Select:
    """`then if condition else otherwise`"""

    condition: "Expr"
    then: "Expr"
    otherwise: "Expr"
    loc: Location = _loc()


@dataclass
class Subscript:
    """`base[index]`, or `base[begin:end]` when is_range (either bound may be None)."""

    base: "Expr"
    begin: "Expr | None"
    end: "Expr | None"
    is_range: bool
    loc: Location = _loc()


@dataclass
class Argument:
    name: str | None  # None when given by position
    value: "Expr"
    loc: Location = _loc()


@dataclass
class Invocation:
    """An operation call, or a builtin such as `shape_of(x)` or `integer(x)`."""

    name: str
    type_arg: str | None  # the generic argument of `op<scalar>(...)`
    args: list[Argument]
    loc: Location = _loc()


@dataclass
class Comprehension:
    """`[for i in a, j in b if condition yield body]`"""

    iterators: list[tuple[str, "Expr"]]
    condition: "Expr | None"
    body: "Expr"
    loc: Location = _loc()


Expr = Union[
    Literal, Identifier, ArrayExpr, TupleExpr, Unary, Binary, Select, Subscript, Invocation, Comprehension
]


# ---- declarations ----------------------------------------------------------


@dataclass
class Param:
    name: str
    type: Type
    default: Expr | None = None
    loc: Location = _loc()


@dataclass
class Result:
    name: str
    type: Type
    loc: Location = _loc()


@dataclass
class Assignment:
    lhs: Expr  # an Identifier, or arrays/tuples of identifiers
    rhs: Expr
    loc: Location = _loc()


@dataclass
class Fragment:
    name: str
    generic: bool  # declared with `<?>`
    generic_default: PrimitiveType | None  # `<? = scalar>`
    params: list[Param]
    results: list[Result]
    body: list[Assignment] | None  # None for a declaration without body
    loc: Location = _loc()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass
class Graph:
    name: str
    inputs: list[str]
    outputs: list[str]
    body: list[Assignment]
    loc: Location = _loc()


@dataclass
class Extension:
    """`extension A, B;` gives one per name; tract's `extension tract_registry X;` keeps its words."""

    name: str
    args: str = ""
    loc: Location = _loc()


@dataclass
class Document:
    version: tuple[int, int]
    extensions: list[Extension]
    fragments: list[Fragment]
    graph: Graph | None  # None for a library of fragments
    file: str = field(default="<string>", compare=False)

    def has_extension(self, name: str) -> bool:
        return any(e.name == name for e in self.extensions)


@dataclass
class QuantEntry:
    """One line of graph.quant: `"tensor": algorithm(attributes);`"""

    tensor: str
    algorithm: str
    attributes: dict[str, object]
    loc: Location = _loc()


def walk(root: object):
    """Every syntax node under `root` (itself included), depth first, without recursion."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif hasattr(node, "__dataclass_fields__") and not isinstance(node, Location):
            yield node
            stack.extend(value for value in vars(node).values() if isinstance(value, (list, tuple))
                         or hasattr(value, "__dataclass_fields__"))
