"""Text from servers made safe to show: control characters written as escapes.

A server's reply text reaches the recorded causes (clients/errors.describe), the console, the CSV
tables and the terminal summary; raw, an ESC
sequence in it would move the cursor, recolour or retitle the terminal, a CR would hide what
came before. `printable` writes every C0/C1 control character, DEL and the bidirectional
overrides as `\\xNN` / `\\uNNNN` (a backslash itself is left as it is: readers see the escapes,
nothing is decoded back).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_CONTROLS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"(?!\n)[{_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with its control characters escaped (`\\x1b`); newlines kept when asked."""
    return (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub(_escape, text)
