"""The Python attribute names of the generated operations' parameters and results."""

# Names a parameter or result cannot take as a Python attribute of an operation: a
# keyword (selu's `lambda`), or what xDSL's Operation already means by it (tract's
# `tract_core_properties` returns `properties`).
_TAKEN_NAMES = {"lambda", "properties", "attributes", "operands", "results", "regions", "name", "parent"}


def field_name(name: str) -> str:
    """The Python attribute of a parameter or result."""
    return name + "_" if name in _TAKEN_NAMES else name
