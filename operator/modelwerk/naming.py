"""Names of generated children: stable, valid DNS-1123 labels, at most 63 characters."""

import hashlib

MAX_NAME = 63


def child_name(*parts: str, max_length: int = MAX_NAME) -> str:
    """Joins parts with '-'; when too long, truncates and appends a hash of the full name so two
    long names never collide and the same input always gives the same name."""
    full = "-".join(p for p in parts if p)
    if len(full) <= max_length:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: max_length - 9].rstrip('-.')}-{digest}"
