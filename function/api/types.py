"""Reusable field types of the API: strict where it matters, each error in the project's words.

Each is used as ``Annotated[int, Integer(0, 100)]``: the metadata object
yields the constraints (bounds, lengths, patterns, enums) that the generated
OpenAPI schema shows, and a before-validator that checks the same
constraints first, so a bad value is refused with a message that says what
was wanted and what was found, rather than in pydantic's wording.

Values arrive from a protobuf Struct, where every number is a double: a whole
double (``3.0``) is an integer, ``2.5`` and ``true`` are not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge, GroupedMetadata, Gt, Le, MaxLen, MinLen
from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

MAX_SECONDS = 366 * 24 * 3600
MAX_STRING = 1024
MAX_FREE_FORM_DEPTH = 16
MAX_FREE_FORM_NODES = 4096
MAX_FREE_FORM_STRING = 64 * 1024
MAX_FREE_FORM_KEY = 253
MAX_INT_OR_PERCENT = 10_000

INT32_MAX = 2**31 - 1

# The error type every validator here raises; `where` (optional) names a field
# below the one pydantic reports, relative to it (".engine.port", "[2].name").
ERROR_TYPE = "invalid_spec"


def invalid(problem: str, where: str = "") -> PydanticCustomError:
    """The error for a bad value: `problem` is shown after the field's path."""
    return PydanticCustomError(ERROR_TYPE, "{problem}", {"problem": problem, "where": where})


def type_name(value: Any) -> str:
    """How a wrong value is described in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    for kind, name in _KIND_NAMES:  # in this order: a str is a Sequence too
        if isinstance(value, kind):
            return name
    return type(value).__name__


_KIND_NAMES: tuple[tuple[type, str], ...] = (
    (str, "a string"), (Mapping, "an object"), (Sequence, "a list"))


# --- integers, numbers, booleans ------------------------------------------------------------


@dataclass(frozen=True)
class SchemaExtra:
    """Annotation metadata adding keys to a field's generated schema (enum, list type, ...)."""

    extra: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler(schema)
        generated.update(self.extra)
        return generated


def schema_extra(**extra: Any) -> SchemaExtra:
    """Metadata adding `extra` to the generated schema, e.g. an enum or a pattern."""
    return SchemaExtra(tuple(extra.items()))


def whole_number(value: Any, minimum: int, maximum: int) -> int:
    """An int from an int or a whole double, within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"must be an integer, not {type_name(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise invalid(f"must be an integer, not {value!r}")
    number = int(value)
    if number < minimum or number > maximum:
        raise invalid(f"must be between {minimum} and {maximum}, not {number}")
    return number


@dataclass(frozen=True)
class Integer(GroupedMetadata):
    """An integer in [lo, hi], used as `Annotated[int, Integer(lo, hi)]`.

    Whole doubles are accepted (a Struct's 3.0 is 3); booleans, strings and
    fractions are refused.
    """

    minimum: int
    maximum: int

    def check(self, value: Any) -> int:
        """The value as an int, or an error saying why not."""
        return whole_number(value, self.minimum, self.maximum)

    def __iter__(self) -> Iterator[object]:
        yield Ge(self.minimum)
        yield Le(self.maximum)
        yield BeforeValidator(self.check)


def Seconds(minimum: int = 0) -> Integer:
    """Whole seconds from `minimum` to a year (MAX_SECONDS, 366 days), as an int constraint.

    Used as `Annotated[int, Seconds(1)]`: 1 to 31622400 seconds.
    """
    return Integer(minimum, MAX_SECONDS)


def _figure(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(number)


@dataclass(frozen=True)
class Number(GroupedMetadata):
    """`Annotated[float, Number(lo, hi)]`: a number in [lo, hi] ((lo, hi] when
    exclusive_minimum); booleans and NaN refused."""

    minimum: float
    maximum: float
    exclusive_minimum: bool = False

    def check(self, value: Any) -> float:
        """The value as a float, or an error saying why not."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(f"must be a number, not {type_name(value)}")
        number = float(value)
        low_ok = number > self.minimum if self.exclusive_minimum else number >= self.minimum
        if not (low_ok and number <= self.maximum):  # also refuses NaN
            bound = "greater than" if self.exclusive_minimum else "at least"
            raise invalid(f"must be {bound} {_figure(self.minimum)} and at most "
                          f"{_figure(self.maximum)}, not {value!r}")
        return number

    def __iter__(self) -> Iterator[object]:
        yield Gt(self.minimum) if self.exclusive_minimum else Ge(self.minimum)
        yield Le(self.maximum)
        yield BeforeValidator(self.check)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"must be true or false, not {type_name(value)}")
    return value


Boolean = Annotated[bool, BeforeValidator(_boolean)]


# --- strings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class String(GroupedMetadata):
    """`Annotated[str, String(...)]`: a string of bounded length, optionally matching pattern.

    `explain` words the refusal of a value that does not match, `too_long` that of
    one that is too long (by default, how long it is and what is allowed).
    """

    max_length: int = MAX_STRING
    min_length: int = 0
    pattern: str | None = None
    explain: Callable[[str], str] | None = None
    too_long: Callable[[str], str] | None = None

    def check(self, value: Any) -> str:
        """The value, or an error saying why it is refused."""
        if not isinstance(value, str):
            raise invalid(f"must be a string, not {type_name(value)}")
        if len(value) > self.max_length:
            raise invalid(self.too_long(value[:64]) if self.too_long else
                          f"is {len(value)} characters long; at most {self.max_length} "
                          "are allowed")
        if len(value) < self.min_length:
            raise invalid("must not be empty" if self.min_length == 1
                          else f"must be at least {self.min_length} characters long")
        if self.pattern is not None and not _compiled(self.pattern).match(value):
            raise invalid(self.explain(value) if self.explain
                          else f"must match {self.pattern}, not {value!r}")
        return value

    def __iter__(self) -> Iterator[object]:
        yield MaxLen(self.max_length)
        if self.min_length:
            yield MinLen(self.min_length)
        if self.pattern is not None:
            yield schema_extra(pattern=self.pattern)
        yield BeforeValidator(self.check)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Choice(GroupedMetadata):
    """`Annotated[str, Choice("A", "B")]`: one of a fixed set of strings (an enum)."""

    choices: tuple[str, ...]

    def __init__(self, *choices: str) -> None:
        object.__setattr__(self, "choices", choices)

    def check(self, value: Any) -> str:
        """The value, or an error listing the choices."""
        if not isinstance(value, str) or value not in self.choices:
            raise invalid(f"must be one of {', '.join(self.choices)}, not {value!r}")
        return value

    def __iter__(self) -> Iterator[object]:
        yield schema_extra(enum=list(self.choices))
        yield BeforeValidator(self.check)


# --- lists -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListOf(GroupedMetadata):
    """`Annotated[tuple[T, ...], ListOf(n)]`: a list of at most n entries.

    At least min_items (`too_few` says why); with `unique`, no entry twice.
    """

    max_items: int
    min_items: int = 0
    too_few: str = ""
    unique: bool = False

    def check(self, value: Any) -> Any:
        """The value, or an error saying why the list is refused."""
        if type(value) is not list and (
                isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence)):
            raise invalid(f"must be a list, not {type_name(value)}")
        if len(value) > self.max_items:
            raise invalid(f"has {len(value)} entries; at most {self.max_items} are allowed")
        if len(value) < self.min_items:
            raise invalid(self.too_few or f"needs at least {self.min_items} entries")
        if self.unique:
            for i, entry in enumerate(value):
                if entry in value[:i]:
                    raise invalid(f"lists {entry!r} twice", f"[{i}]")
        return value

    def __iter__(self) -> Iterator[object]:
        yield MaxLen(self.max_items)
        if self.min_items:
            yield MinLen(self.min_items)
        yield BeforeValidator(self.check)


# --- int or percent ----------------------------------------------------------------------

PERCENT = re.compile(r"^(0|[1-9][0-9]{0,3})%$")


@dataclass(frozen=True, slots=True)
class IntOrPercent:
    """A count, or a percentage of spec.replicas (`percent`), as Kubernetes' IntOrString."""

    value: int
    percent: bool

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)

    def to_wire(self) -> int | str:
        """The value as a user writes it: 3 or "25%"."""
        return str(self) if self.percent else self.value


DEFAULT_SURGE = IntOrPercent(25, percent=True)
DEFAULT_UNAVAILABLE = IntOrPercent(0, percent=False)


@dataclass(frozen=True)
class IntOrPercentBounds:
    """`Annotated[IntOrPercent, IntOrPercentBounds(max)]`: a count (0..10000) or a
    percentage string ("0%" to "max%"), one field type for every surge and unavailability."""

    max_percent: int

    def check(self, value: Any) -> IntOrPercent:
        """Parse 3, 3.0 or "25%"; refuse anything else."""
        if isinstance(value, IntOrPercent):
            return value
        if isinstance(value, str):
            if not PERCENT.match(value):
                raise invalid(f"must be an integer or a percentage like '25%', not {value!r}")
            percent = int(value[:-1])
            if percent > self.max_percent:
                raise invalid(f"must be at most {self.max_percent}%, not {value}")
            return IntOrPercent(percent, percent=True)
        return IntOrPercent(whole_number(value, 0, MAX_INT_OR_PERCENT), percent=False)

    def __post_init__(self) -> None:
        digits = len(str(self.max_percent)) - 1
        if digits < 1 or self.max_percent != 10**digits:
            raise ValueError("max_percent must be a power of ten, at least 10")

    def pattern(self) -> str:
        """A regular expression for the percentages allowed, 0% to max_percent%."""
        digits = len(str(self.max_percent)) - 1
        return f"^(0|[1-9][0-9]{{0,{digits - 1}}}|{self.max_percent})%$"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.check,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v.to_wire() if isinstance(v, IntOrPercent) else v),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_INT_OR_PERCENT},
                      {"type": "string", "pattern": self.pattern()}],
        }


# --- free-form objects -------------------------------------------------------------------


def free_form(value: Any) -> dict[str, Any]:
    """A user-owned object kept whole: every key, bounded in depth, size and string length.

    Whole doubles become ints (Struct numbers are doubles); nothing else changes.
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        raise invalid(f"must be an object, not {type_name(value)}")
    return _FreeFormCopy().plain(value, None, 0)


class _FreeFormCopy:
    """One free_form copy, counting the values copied so far against MAX_FREE_FORM_NODES."""

    def __init__(self) -> None:
        self.nodes = 0

    def plain(self, node: Any, where: _Where, depth: int) -> Any:
        """node copied as plain values; `where` is its path below the field, for errors."""
        self.nodes += 1
        if self.nodes > MAX_FREE_FORM_NODES:
            raise invalid(f"has more than {MAX_FREE_FORM_NODES} values")
        if depth > MAX_FREE_FORM_DEPTH:
            raise invalid(f"is nested deeper than {MAX_FREE_FORM_DEPTH} levels", _render(where))
        kind = type(node)
        if kind is str or isinstance(node, str):
            return _free_form_string(node, where)
        if node is None or kind is bool or kind is int:
            return node
        if kind is float:
            return int(node) if node.is_integer() else node
        if kind is dict or isinstance(node, Mapping):
            return self.mapping(node, where, depth)
        if kind is list or isinstance(node, Sequence):
            return [self.plain(v, (where, f"[{i}]"), depth + 1) for i, v in enumerate(node)]
        if isinstance(node, int | float):  # bool, int and float subclasses
            return node
        raise invalid(f"holds a value of type {kind.__name__}", _render(where))

    def mapping(self, node: Mapping[Any, Any], where: _Where, depth: int) -> dict[str, Any]:
        """A mapping copied key by key; every key a string of at most MAX_FREE_FORM_KEY."""
        out = {}
        for key, child in node.items():
            if not isinstance(key, str) or len(key) > MAX_FREE_FORM_KEY:
                raise invalid(f"has a key that is not a string of at most "
                              f"{MAX_FREE_FORM_KEY} characters: {str(key)[:40]!r}",
                              _render(where))
            out[key] = self.plain(child, (where, f".{key}"), depth + 1)
        return out


def _free_form_string(node: str, where: _Where) -> str:
    """node as a str, when at most MAX_FREE_FORM_STRING characters long."""
    if len(node) > MAX_FREE_FORM_STRING:
        raise invalid(f"is {len(node)} characters long; at most "
                      f"{MAX_FREE_FORM_STRING} are allowed", _render(where))
    return str(node)


# Where a value sits below a free-form field, built only when an error names it.
_Where = tuple[Any, str] | None


def _render(where: _Where) -> str:
    parts: list[str] = []
    while where is not None:
        where, part = where
        parts.append(part)
    return "".join(reversed(parts))


FreeForm = Annotated[
    dict[str, Any],
    BeforeValidator(free_form),
    schema_extra(**{"x-kubernetes-preserve-unknown-fields": True}),
]
