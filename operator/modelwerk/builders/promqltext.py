"""Writing PromQL and rule text safely: string literals, numbers, selectors, and text that
Prometheus expands as Go templates."""

from __future__ import annotations

import re


def promql_string(value: str) -> str:
    """A double-quoted PromQL string literal (Go escapes)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def template_literal(text: str) -> str:
    """Text for a rule's labels or annotations, which Prometheus expands as Go templates: any
    `{{` or `}}` in it is printed, not run."""
    return re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group(0) + '" }}', text)


def human(value: float) -> str:
    """A number for people: 12 significant digits, no float noise (0.1 / 100 is 0.001, not
    0.0010000000000000002)."""
    return f"{value + 0.0:.12g}"  # + 0.0: no "-0"


def number(value: float) -> str:
    """A number for PromQL: as `human`, negative ones parenthesised (`x - (-2)`)."""
    text = human(value)
    return f"({text})" if value < 0 else text


def selector(metric: str, **matchers: str) -> str:
    """`metric{k="v",...}` with equality matchers, in the order given."""
    inner = ",".join(f"{key}={promql_string(val)}" for key, val in matchers.items())
    return f"{metric}{{{inner}}}"
