"""The operator (`python bench/memprobe.py run -n bench ...`, the arguments of `modelwerk`), as
it runs in its image (without the dev-only `kubernetes` package), with a memory report on SIGUSR1: where its resident memory goes, by owner, written as JSON to
$MODELWERK_MEMPROBE_OUT. bench/memprofile.py sends the signal once the operator is at steady
state. Nothing here is part of the operator: the report finds what it measures with
gc.get_objects(), so the operator needs no hooks for it.

Owners:
- caches: every modelwerk Store, its projected objects and its indexes (deep size: every
  object reachable from them, each counted once);
- kopf_memories: kopf's per-object records (ResourceMemory), reached from its ResourceMemories;
- python_other: every other live Python allocation (the allocator's used blocks minus the two
  above);
- pymalloc_free: free space inside pymalloc's arenas (fragmentation of small objects: an arena
  is given back only once all of it is free);
- malloc_free: free space glibc keeps in its heaps (mallinfo2: fordblks);
- rest of RSS: code and libraries (file-backed pages), thread stacks, C libraries' own.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any


def deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes of everything reachable from `roots` not already in `seen`, modules, classes and
    functions excluded (they belong to the code, not to the data)."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, ModuleType | type | FrameType) or callable(obj):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def _instances(class_name: str, module_prefix: str) -> list[Any]:
    return [
        o
        for o in gc.get_objects()
        if type(o).__name__ == class_name and type(o).__module__.startswith(module_prefix)
    ]


def pymalloc() -> dict[str, int]:
    """pymalloc's arenas: their size, the bytes in used blocks, and the free bytes inside them
    (available blocks and unused pools)."""
    # _debugmallocstats writes to the C-level stderr: catch file descriptor 2.
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode()

    def number(pattern: str) -> int:
        match = re.search(pattern + r"\s*=\s*([\d,]+)", text)
        return int(match.group(1).replace(",", "")) if match else 0

    return {
        "arenas_bytes": number(r"arenas \* \d+ bytes/arena"),
        "used_bytes": number(r"# bytes in allocated blocks"),
        "free_bytes": number(r"# bytes in available blocks") + number(r"unused pools \* \d+ bytes"),
    }


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mallinfo() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {
        "heap_bytes": info.arena,  # brk heap and the other arenas, all of it
        "mmapped_bytes": info.hblkhd,  # large allocations, each its own mmap (pymalloc's too)
        "used_bytes": info.uordblks,
        "free_bytes": info.fordblks,
    }


def smaps() -> dict[str, int]:
    """RSS of the process by kind of mapping, in bytes."""
    out = {"anon": 0, "file": 0, "heap": 0, "stack": 0}
    kind = "anon"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = head[5] if len(head) > 5 else ""
            kind = (
                "heap"
                if name == "[heap]"
                else "stack"
                if name.startswith("[stack")
                else "file"
                if name.startswith("/")
                else "anon"
            )
        elif head[0] == "Rss:":
            out[kind] += int(head[1]) * 1024
    return out


def report() -> dict[str, Any]:
    gc.collect()
    # The allocators' figures first: the walk below allocates (its `seen` set) and would
    # inflate them.
    status = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]
    py, malloc, maps = pymalloc(), mallinfo(), smaps()
    seen: set[int] = set()
    stores = _instances("Store", "modelwerk.store")
    caches = deep_size(stores, seen)
    memories = _instances("ResourceMemories", "kopf")
    # Each record's memo is a shallow copy of the operator's: its values (the manager, the
    # config) are the operator's, not the record's.
    for m in memories:
        for record in m._items.values():
            seen.update(id(v) for v in dict(record.memo).values())
    return {
        "rss_bytes": rss,
        "cached_objects": sum(len(s) for s in stores),
        "kopf_records": sum(len(m._items) for m in memories),
        "caches_bytes": caches,
        "kopf_memories_bytes": deep_size(memories, seen),
        "gc_objects": len(gc.get_objects()),
        "tasks": len(_instances("Task", "_asyncio")),
        "pymalloc": py,
        "malloc": malloc,
        "smaps": maps,
    }


def _on_signal(signum: int, frame: FrameType | None) -> None:
    out = os.environ.get("MODELWERK_MEMPROBE_OUT", "/tmp/modelwerk-memprobe.json")
    Path(out).write_text(json.dumps(report(), indent=2))


if __name__ == "__main__":
    # As in the operator image: the `kubernetes` client is a dependency of the tests only (dev
    # extra), and kopf imports it when it finds it (~9 MB of RSS the image does not have).
    for name in os.environ.get("MODELWERK_MEMPROBE_HIDE", "kubernetes").split(","):
        if name:
            sys.modules[name] = None  # type: ignore[assignment]
    signal.signal(signal.SIGUSR1, _on_signal)
    from modelwerk.cli import main

    sys.argv[0] = "modelwerk"
    main()
