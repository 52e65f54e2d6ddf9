"""The functions a template may call: Go's builtins and SwarmKit's ``join`` (pure).

Each is typed as Go types it (``Func``): its fixed parameters and its variadic one, each a
``string``, an ``interface {}`` (anything, nothing included) or a ``reflect.Value`` (anything
but nothing). A function fails with ``CallError``, which execution reports as Go's ``error
calling NAME: ...``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from swarmlet.template.values import GoStruct, go_quote, go_type, is_true, sprint_value

STRING = "string"
ANY = "interface {}"
VALUE = "reflect.Value"


class CallError(Exception):
    """A function's error (Go's second result, or a recovered panic)."""


@dataclass(frozen=True)
class Func:
    call: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None


# -- comparison -----------------------------------------------------------------------------


def _basic_kind(value: Any) -> str | None:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _eq(arg1: Any, *others: Any) -> bool:
    if not others:
        raise CallError("missing argument for comparison")
    kind1 = _basic_kind(arg1)
    for arg in others:
        kind2 = _basic_kind(arg)
        if kind1 != kind2:
            if arg1 is not None and arg is not None:
                raise CallError("incompatible types for comparison")
            continue
        if kind1 is None and isinstance(arg, dict | list):
            raise CallError(f"non-comparable type {sprint_value(arg)}: {go_type(arg)}")
        if arg1 == arg:
            return True
    return False


def _lt(arg1: Any, arg2: Any) -> bool:
    kind1, kind2 = _basic_kind(arg1), _basic_kind(arg2)
    if kind1 in (None, "invalid") or kind2 in (None, "invalid"):
        raise CallError("invalid type for comparison")
    if kind1 != kind2:
        raise CallError("incompatible types for comparison")
    if kind1 == "bool":
        raise CallError("invalid type for comparison")
    return bool(arg1 < arg2)


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


# -- the others -----------------------------------------------------------------------------


def _not(arg: Any) -> bool:
    return not is_true(arg)


def _and_or(first: Any, *rest: Any) -> Any:  # pragma: no cover - short-circuited by execution
    raise AssertionError("and/or are evaluated by the executor")


def _len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, dict | list):
        return len(item)
    raise CallError(f"len of type {go_type(item)}")


def _index_arg(index: Any, length: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise CallError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index >= length:
        raise CallError(f"index out of range: {index}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    for index in indexes:
        if isinstance(item, str):
            item = item.encode()[_index_arg(index, len(item.encode()))]
        elif isinstance(item, list):
            item = item[_index_arg(index, len(item))]
        elif isinstance(item, dict):
            if index is None:
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise CallError(f"value has type {go_type(index)}; should be string")
            item = item.get(index, "")
        else:
            raise CallError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, str | list):
        raise CallError(f"can't slice item of type {go_type(item)}")
    if len(indexes) > 2:
        raise CallError(f"too many slice indexes: {len(indexes)}")
    length = len(item.encode()) if isinstance(item, str) else len(item)
    bounds = [0, length]
    for position, index in enumerate(indexes):
        bounds[position] = _index_arg(index, length + 1)
    if bounds[0] > bounds[1]:
        raise CallError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if isinstance(item, str):
        return item.encode()[bounds[0] : bounds[1]].decode(errors="replace")
    return item[bounds[0] : bounds[1]]


def sprint(*args: Any) -> str:
    """Go's ``fmt.Sprint``: a space between two operands when neither is a string."""
    out = []
    for position, arg in enumerate(args):
        if position and not isinstance(arg, str) and not isinstance(args[position - 1], str):
            out.append(" ")
        out.append(sprint_value(arg))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(sprint_value(arg) for arg in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?(.)?", re.DOTALL)


def _bad_verb(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(arg)}={sprint_value(arg)})"


def _format_one(verb: str, flags: str, precision: str | None, arg: Any) -> str | None:
    """One verb's text of one argument, or None when the verb does not fit its type."""
    if verb == "v":
        return sprint_value(arg)
    if isinstance(arg, bool):
        return ("true" if arg else "false") if verb == "t" else None
    if isinstance(arg, int):
        formats = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b", "c": "c"}
        if verb == "q":
            return "'" + go_quote(chr(arg))[1:-1].replace("'", "\\'") + "'"
        if verb in formats:
            sign = "+" if "+" in flags else ""
            return format(arg, sign + formats[verb]) if verb != "c" else chr(arg)
        return None
    if isinstance(arg, float):
        if verb in "eEfFgG":
            return format(arg, f".{precision or 6}{verb}") if verb != "g" else go_float_g(arg)
        return None
    if isinstance(arg, str):
        if verb == "s":
            return arg if precision is None else arg[: int(precision)]
        if verb == "q":
            return go_quote(arg)
        if verb in "xX":
            text = arg.encode().hex()
            return text.upper() if verb == "X" else text
        return None
    if isinstance(arg, dict | list | GoStruct) and verb in "sdq":
        return sprint_value(arg)
    return None


def go_float_g(value: float) -> str:
    return sprint_value(value)


def _sprintf(template: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (``%s %d %v %q %t %x %f``, width,
    precision, ``-`` and ``0``), with Go's ``%!d(string=x)``, ``%!s(MISSING)`` and
    ``%!(EXTRA ...)`` for what does not fit."""
    out: list[str] = []
    used = 0
    position = 0
    for match in _VERB.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        flags, width, precision, verb = match.groups()
        if verb is None:
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        text = _format_one(verb, flags, precision, arg)
        if text is None:
            out.append(_bad_verb(verb, arg))
            continue
        if width:
            size = int(width)
            if "-" in flags:
                text = text.ljust(size)
            elif "0" in flags and isinstance(arg, int | float) and not isinstance(arg, bool):
                sign = text[0] if text[:1] in "+-" else ""
                text = sign + text[len(sign) :].rjust(size - len(sign), "0")
            else:
                text = text.rjust(size)
        out.append(text)
    out.append(template[position:])
    if used < len(args):
        extra = ", ".join(
            "<nil>" if arg is None else f"{go_type(arg)}={sprint_value(arg)}" for arg in args[used:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


_HTML = str.maketrans(
    {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)


def _html(*args: Any) -> str:
    return sprint(*args).translate(_HTML)


def _js(*args: Any) -> str:
    out = []
    for char in sprint(*args):
        if char in "\\'\"":
            out.append("\\" + char)
        elif char in "<>&=" or not char.isprintable():
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(sprint(*args), safe="")


def _call(fn: Any, *args: Any) -> Any:
    if fn is None:
        raise CallError("call of nil")
    raise CallError(f"non-function of type {go_type(fn)}")


def _join(*parts: str) -> str:
    """SwarmKit's ``join``: the separator first (``join "," a b``)."""
    if not parts:
        # strings.Join(s[1:], s[0]) on nothing: Go's recovered panic.
        raise CallError("runtime error: slice bounds out of range [1:0]")
    return parts[0].join(parts[1:])


BUILTINS: dict[str, Func] = {
    "and": Func(_and_or, (VALUE,), VALUE),
    "or": Func(_and_or, (VALUE,), VALUE),
    "not": Func(_not, (VALUE,)),
    "len": Func(_len, (VALUE,)),
    "index": Func(_index, (VALUE,), VALUE),
    "slice": Func(_slice, (VALUE,), VALUE),
    "call": Func(_call, (VALUE,), VALUE),
    "print": Func(sprint, (), ANY),
    "println": Func(_sprintln, (), ANY),
    "printf": Func(_sprintf, (STRING,), ANY),
    "html": Func(_html, (), ANY),
    "js": Func(_js, (), ANY),
    "urlquery": Func(_urlquery, (), ANY),
    "eq": Func(_eq, (VALUE,), VALUE),
    "ne": Func(_ne, (VALUE, VALUE)),
    "lt": Func(_lt, (VALUE, VALUE)),
    "le": Func(_le, (VALUE, VALUE)),
    "gt": Func(_gt, (VALUE, VALUE)),
    "ge": Func(_ge, (VALUE, VALUE)),
    # SwarmKit's template.go adds it to every template.
    "join": Func(_join, (), STRING),
}
