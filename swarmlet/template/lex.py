"""Go ``text/template``'s lexer (lex.go), run to the end or to its first error (pure).

Items carry Go's types, positions and lines; ``Item.__str__`` is Go's, as parse errors quote
items (``unexpected "}" in operand``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum, auto
from typing import NamedTuple

LEFT, RIGHT = "{{", "}}"
SPACES = " \t\r\n"


class T(Enum):
    ERROR = auto()
    BOOL = auto()
    CHAR = auto()
    CHAR_CONSTANT = auto()
    ASSIGN = auto()
    DECLARE = auto()
    EOF = auto()
    FIELD = auto()
    IDENTIFIER = auto()
    LEFT_DELIM = auto()
    LEFT_PAREN = auto()
    NUMBER = auto()
    PIPE = auto()
    RAW_STRING = auto()
    RIGHT_DELIM = auto()
    RIGHT_PAREN = auto()
    SPACE = auto()
    STRING = auto()
    TEXT = auto()
    VARIABLE = auto()
    # Keywords (Go's items after itemKeyword, shown as <word>).
    BLOCK = auto()
    BREAK = auto()
    CONTINUE = auto()
    DOT = auto()
    DEFINE = auto()
    ELSE = auto()
    END = auto()
    IF = auto()
    NIL = auto()
    RANGE = auto()
    TEMPLATE = auto()
    WITH = auto()


KEYWORDS = {
    ".": T.DOT,
    "block": T.BLOCK,
    "break": T.BREAK,
    "continue": T.CONTINUE,
    "define": T.DEFINE,
    "else": T.ELSE,
    "end": T.END,
    "if": T.IF,
    "range": T.RANGE,
    "nil": T.NIL,
    "template": T.TEMPLATE,
    "with": T.WITH,
}
_KEYWORD_ITEMS = frozenset(KEYWORDS.values())


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out) + '"'


def go_rune(char: str) -> str:
    """Go's ``%#U`` of a rune: ``U+0021 '!'``."""
    code = ord(char)
    return f"U+{code:04X} '{char}'" if char.isprintable() else f"U+{code:04X}"


class Item(NamedTuple):
    typ: T
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == T.EOF:
            return "EOF"
        if self.typ == T.ERROR:
            return self.val
        if self.typ in _KEYWORD_ITEMS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return f"{go_quote(self.val[:10])}..."
        return go_quote(self.val)


# -- the lexer ------------------------------------------------------------------------------


State = Callable[[], "State | None"]


# Runs the lexer takes whole (Go reads them a rune at a time): letters, digits and "_" (Go's
# isAlphaNumeric), spaces, and the rest of a quoted string without an escaped line end.
_WORD = re.compile(r"\w*")
_SPACES = re.compile(r"[ \t\r\n]*")
_QUOTED = {'"': re.compile(r'(?:[^"\\\n]|\\[^\n])*"'), "'": re.compile(r"(?:[^'\\\n]|\\[^\n])*'")}


def _is_alnum(char: str) -> bool:
    return char == "_" or char.isalpha() or char.isdigit()


class _Lexer:
    """Go's lexer, run to the end (or the first error) at once: states are methods that
    return the next state."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.start_line = 1
        self.paren_depth = 0
        self.items: list[Item] = []

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        char = self.peek()
        if char:
            self.pos += 1
        return char

    def backup(self) -> None:
        self.pos -= 1

    def emit(self, typ: T) -> None:
        self.items.append(Item(typ, self.start, self.text[self.start : self.pos], self.start_line))
        self.ignore()

    def ignore(self) -> None:
        self.start_line += self.text.count("\n", self.start, self.pos)
        self.start = self.pos

    def error(self, message: str) -> None:
        self.items.append(Item(T.ERROR, self.start, message, self.start_line))

    def run(self) -> list[Item]:
        state: State | None = self.lex_text
        while state is not None:
            state = state()
        return self.items

    def lex_text(self) -> State | None:
        found = self.text.find(LEFT, self.pos)
        if found < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self.emit(T.TEXT)
            self.emit(T.EOF)
            return None
        after = self.text[found + len(LEFT) :]
        trim = len(after) >= 2 and after[0] == "-" and after[1] in SPACES
        self.pos = found
        if trim:
            self.pos = self.start + len(self.text[self.start : found].rstrip(SPACES))
        if self.pos > self.start:
            self.emit(T.TEXT)
        self.pos = found
        self.ignore()
        return lambda: self.left_delim(trim)

    def left_delim(self, trim: bool) -> State | None:
        self.pos += len(LEFT)
        marker = 2 if trim else 0
        if self.text.startswith("/*", self.pos + marker):
            self.pos += marker
            self.ignore()
            return self.comment()
        self.emit(T.LEFT_DELIM)
        self.pos += marker
        self.ignore()
        self.paren_depth = 0
        return self.inside_action

    def comment(self) -> State | None:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            self.error("unclosed comment")
            return None
        self.pos = end + 2
        delim, trim = self.at_right_delim()
        if not delim:
            self.error("comment ends before closing delimiter")
            return None
        self.pos += (2 if trim else 0) + len(RIGHT)
        if trim:
            self.pos += len(self.text[self.pos :]) - len(self.text[self.pos :].lstrip(SPACES))
        self.ignore()
        return self.lex_text

    def at_right_delim(self) -> tuple[bool, bool]:
        """At the closing delimiter, and whether it has a trim marker (" -}}")."""
        rest = self.text[self.pos : self.pos + 4]
        if len(rest) >= 2 and rest[0] in SPACES and rest[1] == "-" and rest[2:] == RIGHT:
            return True, True
        return rest.startswith(RIGHT), False

    def right_delim(self, trim: bool) -> State:
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT)
        self.emit(T.RIGHT_DELIM)
        if trim:
            rest = self.text[self.pos :]
            self.pos += len(rest) - len(rest.lstrip(SPACES))
            self.ignore()
        return self.lex_text

    def at_terminator(self) -> bool:
        char = self.peek()
        if not char or char in SPACES or char in ".,|:)(":
            return True
        return self.text.startswith(RIGHT, self.pos)

    def inside_action(self) -> State | None:
        """One token inside an action (Go's lexInsideAction), or the closing delimiter."""
        delim, trim = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.right_delim(trim)
            self.error("unclosed left paren")
            return None
        char = self.next()
        if not char:
            self.error("unclosed action")
            return None
        return self.inside_action if self.token(char) else None

    def token(self, char: str) -> bool:
        """The token ``char`` starts (False after an error)."""
        ok = True
        if char in SPACES:
            self.backup()
            self.space()
        elif char == "=":
            self.emit(T.ASSIGN)
        elif char == ":":
            if self.next() != "=":
                self.error("expected :=")
                return False
            self.emit(T.DECLARE)
        elif char == "|":
            self.emit(T.PIPE)
        elif char == '"':
            ok = self.quoted('"', T.STRING, "unterminated quoted string")
        elif char == "`":
            end = self.text.find("`", self.pos)
            if end < 0:
                self.error("unterminated raw quoted string")
                return False
            self.pos = end + 1
            self.emit(T.RAW_STRING)
        elif char == "$":
            ok = self.field_or_variable(T.VARIABLE)
        elif char == "'":
            ok = self.quoted("'", T.CHAR_CONSTANT, "unterminated character constant")
        elif char == "." and self.peek() and not self.peek().isdigit():
            ok = self.field_or_variable(T.FIELD)
        elif char in "+-." or char.isdigit():
            self.backup()
            ok = self.number()
        elif _is_alnum(char):
            self.backup()
            ok = self.identifier()
        elif char == "(":
            self.emit(T.LEFT_PAREN)
            self.paren_depth += 1
        elif char == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.error("unexpected right paren")
                return False
            self.emit(T.RIGHT_PAREN)
        elif ord(char) < 0x80 and char.isprintable():
            self.emit(T.CHAR)
        else:
            self.error(f"unrecognized character in action: {go_rune(char)}")
            return False
        return ok

    def space(self) -> None:
        end = _SPACES.match(self.text, self.pos).end()  # type: ignore[union-attr]
        count, self.pos = end - self.pos, end
        # A space then "-}}" is the trim marker of the closing delimiter.
        if self.text.startswith("-" + RIGHT, self.pos):
            self.backup()
            if count == 1:
                return
        self.emit(T.SPACE)

    def quoted(self, quote: str, typ: T, unterminated: str) -> bool:
        whole = _QUOTED[quote].match(self.text, self.pos)
        if whole is not None:
            self.pos = whole.end()
            self.emit(typ)
            return True
        while True:
            char = self.next()
            if char == "\\":
                char = self.next()
                if char and char != "\n":
                    continue
            if not char or char == "\n":
                self.error(unterminated)
                return False
            if char == quote:
                self.emit(typ)
                return True

    def field_or_variable(self, typ: T) -> bool:
        if self.at_terminator():  # "." or "$" alone
            self.emit(T.VARIABLE if typ == T.VARIABLE else T.DOT)
            return True
        self.pos = _WORD.match(self.text, self.pos).end()  # type: ignore[union-attr]
        if not self.at_terminator():
            self.error(f"bad character {go_rune(self.peek())}")
            return False
        self.emit(typ)
        return True

    def identifier(self) -> bool:
        self.pos = _WORD.match(self.text, self.pos).end()  # type: ignore[union-attr]
        word = self.text[self.start : self.pos]
        if not self.at_terminator():
            self.error(f"bad character {go_rune(self.peek())}")
            return False
        if word in KEYWORDS:
            self.emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self.emit(T.BOOL)
        else:
            self.emit(T.IDENTIFIER)
        return True

    def number(self) -> bool:
        if self.peek() in "+-":
            self.next()
        digits = "0123456789_"
        if self.text.startswith(("0x", "0X"), self.pos):
            self.pos += 2
            digits = "0123456789abcdefABCDEF_"
        while self.peek() and self.peek() in digits:
            self.next()
        if self.peek() == ".":
            self.next()
            while self.peek() and self.peek() in digits:
                self.next()
        if len(digits) == 11 and self.peek() in ("e", "E") and self.peek():
            self.next()
            if self.peek() and self.peek() in "+-":
                self.next()
            while self.peek() and self.peek() in "0123456789_":
                self.next()
        if self.peek() and _is_alnum(self.peek()):
            self.next()
            self.error(f"bad number syntax: {go_quote(self.text[self.start : self.pos])}")
            return False
        self.emit(T.NUMBER)
        return True


def lex(text: str) -> list[Item]:
    return _Lexer(text).run()
