"""A process and its descendants as /proc shows them: what the pod-budget test and the chunk benchmark
sample while a chunk runs (Linux only; a process that ends meanwhile reads as empty)."""

from __future__ import annotations

import os
from collections import defaultdict


def read_proc(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>`` as text, or "" when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        stat = read_proc(int(entry), "stat") if entry.isdigit() else ""
        if stat:
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children[pid]
    return tree


def kib_field(text: str, key: str) -> int:
    """A ``<key> <n> kB`` line of /proc status or smaps_rollup text, in bytes (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def is_format_worker(pid: int) -> bool:
    """A multiprocessing spawn worker (the format pool's processes; not its resource tracker)."""
    return "spawn_main" in read_proc(pid, "cmdline")
