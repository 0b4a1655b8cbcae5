"""Text for people: the did-you-mean hint and plain-text tables, one of each for all of zoo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """`` Did you mean 'x'?`` (or 'x' or 'y') for the choices close to ``word``, or that have it as
    one of their hyphenated parts ('f1' -> 'macro-f1' or 'micro-f1'); '' when none is."""
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=n)
    parts = [c for c in choices if str(word) in str(c).split("-") and c != word][:3]
    close = list(dict.fromkeys([*close, *parts]))
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def clip(text: object, limit: int = 60) -> str:
    """``text`` as a string of at most about ``limit`` characters (a value from a file may be huge)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def with_article(noun: str) -> str:
    """'an optimizer', 'a layer'."""
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; columns in ``right`` align right; the last column is not padded."""
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        if len(headers) - 1 not in right:
            padded[-1] = row[-1]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def plural(word: str, count: int = 2) -> str:
    """``word`` for ``count`` things: 'layer' -> 'layers', 'loss' -> 'losses', 'strategy' -> 'strategies'."""
    if count == 1:
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith("s") else "s")
