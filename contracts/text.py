"""Names people type and others read: no control characters, no hidden direction changes.

A room, participant or member name is shown to other people (lists, pages,
LiveKit clients).  It may hold any script and emoji, but not control characters
(NUL, newlines, escapes), not bidirectional formatting characters (which make
"txt.exe" read as "exe.txt"), and not only invisible characters (a name nobody
can see).  Refused names get 422 at the edge, before any service stores them.
"""

from __future__ import annotations

import unicodedata

from pydantic import AfterValidator

# Embeddings, overrides, isolates and marks that change the direction text is shown in.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Letters that render as nothing (Hangul fillers, the braille blank).
BLANK_LETTERS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cc"})


def check_display_text(value: str) -> str:
    """`value` if people can read it safely; ValueError says why not."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    if any(char in BIDI_CONTROLS for char in value):
        raise ValueError("must not contain bidirectional formatting characters")
    if any(unicodedata.category(char) in ("Cs", "Co", "Cn") for char in value):
        raise ValueError("must not contain unassigned, private-use or surrogate characters")
    if all(
        char.isspace()
        or char in BLANK_LETTERS
        or unicodedata.category(char) in INVISIBLE_CATEGORIES
        for char in value
    ):
        raise ValueError("must contain a visible character")
    return value


# Add to a name's `Annotated[str, Field(...), Readable]`.
Readable = AfterValidator(check_display_text)
