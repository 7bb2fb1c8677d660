"""Timing whole processes: wall time, exit status and peak memory of a command and its children."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "_peers.py"
POLL = 0.1  # seconds between two looks at the process tree


def env() -> dict[str, str]:
    """The environment of the child processes: the checkout importable, even uninstalled."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


#: Runs a command given as JSON in argv[1], its output to the file argv[2]; prints its wall time,
#: its ru_maxrss (the largest single process of its tree) and the peak of the summed VmRSS of its
#: process tree, polled every argv[3] seconds.
WRAPPER = r"""
import json, os, resource, subprocess, sys, time

def rss_of_tree(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    parents[int(name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid and child not in tree)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total, len(tree)

command, out = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
with open(out, "wb") as sink:
    child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    peak = processes = 0
    while child.poll() is None:
        total, count = rss_of_tree(child.pid)
        peak, processes = max(peak, total), max(processes, count)
        time.sleep(float(sys.argv[3]))
seconds = time.perf_counter() - start
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"returncode": child.returncode, "seconds": seconds, "maxrss_kb": maxrss,
                  "tree_peak_kb": peak, "processes": processes}))
"""


def run_measured(command: list[str], log_file: Path) -> dict[str, Any]:
    """Run ``command`` in a fresh helper process; its wall time, exit status and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(command), str(log_file), str(POLL)],
        env=env(),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _failed(result: dict[str, Any], log_file: Path) -> bool:
    """Whether the command failed; if so ``error`` holds the last error line of its output."""
    if result["returncode"] == 0:
        return False
    output = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    errors = [line for line in output if re.match(r"[\w.]*(Error|Exception)\b", line)] or output
    result["error"] = f"exit {result['returncode']}: " + (errors[-1] if errors else "(no output)")
    return True


def siq_convert(sources: list[Path], out: Path, *extra: str, keep: bool = False) -> dict[str, Any]:
    """``python -m siq_schemas convert`` as a subprocess: wall time, memory and the manifest's counts.

    When the command fails, ``error`` holds the last line of its output (and no counts are set).
    The output is deleted afterwards unless ``keep``.
    """
    command = [sys.executable, "-m", "siq_schemas", "convert", *map(str, sources), "--out", str(out), "-q", *extra]
    log_file = out.parent / f"{out.name}.log"
    result = run_measured(command, log_file)
    if _failed(result, log_file):
        shutil.rmtree(out, ignore_errors=True)
        return result
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    run = manifest["last_run"]
    result.update({name: run[name] for name in ("records_read", "events_written", "duplicates", "rejected")})
    result["run_seconds"] = run["seconds"]  # the run's own clock: no interpreter start-up
    if not keep:
        shutil.rmtree(out)
    return result


def peer(name: str, out: Path, *arguments: Path) -> dict[str, Any]:
    """``python _peers.py NAME OUT ARGS`` as a subprocess: wall time, memory and ``rows`` (its last line)."""
    command = [sys.executable, str(PEERS), name, str(out), *map(str, arguments)]
    log_file = out.parent / f"{out.name}.log"
    result = run_measured(command, log_file)
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists() and out.suffix == ".parquet":
        out.unlink()
    if not _failed(result, log_file):
        result["rows"] = int(log_file.read_text(encoding="utf-8").split()[-1])
    return result
