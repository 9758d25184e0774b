"""Keeping a process per node alive: respawn the dead with bounded retries and back-off, and never outlive
the parent (the pip-only runner's `--processes`; `ros2 launch` has `respawn=True` for the same job).

No ROS here: a child is a command line. Each child asks the kernel to send it SIGINT when its parent dies
(prctl PR_SET_PDEATHSIG, Linux), so a runner killed with SIGKILL leaves no node driving unsupervised; SIGINT
makes a node stop as on Ctrl-C, the actor's last command a zero velocity. A respawned managed node starts
unconfigured; the lifecycle manager finds it at its next look and brings it back to the graph's state.

With `standby`, each `python -m MODULE …` child also has a twin started ahead of need (ojepa_ros.standby: its
imports done, waiting for a word on stdin); a death hands over to the twin, which skips the imports, and a new
twin starts `standby_delay` s later so it does not compete with the restart for the CPU.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


# Resolved here, in the parent: between fork and exec (preexec_fn, possibly with other threads running) the
# child only calls it, no dlopen and no import that could wait on a lock another thread held at the fork.
_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGINT) -> None:
    """preexec_fn: this (forked, not yet exec'd) child receives `sig` when its parent dies. Linux only; a
    no-op elsewhere (there, the runner's own shutdown is the only stop)."""
    if _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: deque = field(default_factory=deque)  # monotonic times of recent restarts
    due: float | None = None  # when a pending respawn may start
    given_up: bool = False
    standby: subprocess.Popen | None = None  # its twin, imports done, waiting for "go" on stdin
    standby_due: float | None = None
    started: float = 0.0  # monotonic time its current process started


class Supervisor:
    """Starts each command, and on poll() respawns any that died: at once the first time, and at once whenever it
    had run `stable_s` or longer (a node that crashed after working is not in a crash loop); one that died sooner
    after a restart waits backoff_s x 2^k (at most max_backoff_s). More than max_restarts within window_s and it
    gives up on that child (reported through `log`), since a node that keeps dying needs a person, not a loop."""

    def __init__(self, commands: dict[str, list[str]], log: Callable[[str], None] = print, max_restarts: int = 5,
                 window_s: float = 60.0, backoff_s: float = 0.25, max_backoff_s: float = 4.0, stable_s: float = 10.0,
                 standby: bool = False, standby_delay: float = 5.0, **popen_kwargs) -> None:
        self.children = {name: Child(name, list(argv)) for name, argv in commands.items()}
        self.log, self.max_restarts, self.window_s = log, max_restarts, window_s
        self.backoff_s, self.max_backoff_s, self.stable_s = backoff_s, max_backoff_s, stable_s
        self.popen_kwargs = popen_kwargs
        self.standby, self.standby_delay = standby, standby_delay
        self.respawned = 0
        self.handovers = 0  # respawns that went to a standby twin

    def _spawn(self, child: Child) -> None:
        twin = child.standby
        if twin is not None and twin.poll() is None:
            try:
                twin.stdin.write(b"go\n")
                twin.stdin.flush()
            except OSError:
                twin = None
            else:
                child.process, child.standby, child.due, child.started = twin, None, None, time.monotonic()
                child.standby_due = time.monotonic() + self.standby_delay
                self.handovers += 1
                return
        if twin is not None or child.standby is not None:  # a twin that died too: a fresh one later
            child.standby, child.standby_due = None, time.monotonic() + self.standby_delay
        child.process = subprocess.Popen(child.argv, preexec_fn=die_with_parent, **self.popen_kwargs)
        child.due, child.started = None, time.monotonic()

    def _spawn_standby(self, child: Child) -> None:
        argv = child.argv
        if len(argv) < 3 or argv[1] != "-m":
            return  # only `python -m MODULE …` commands have a twin
        child.standby = subprocess.Popen([argv[0], "-m", "ojepa_ros.standby", *argv[2:]], stdin=subprocess.PIPE,
                                         preexec_fn=die_with_parent, **self.popen_kwargs)
        child.standby_due = None

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)
            if self.standby:
                child.standby_due = time.monotonic() + self.standby_delay

    def poll(self, now: float | None = None) -> None:
        """Respawn the children that died (call it often: every 50 ms is the runner's pace)."""
        now = time.monotonic() if now is None else now
        for child in self.children.values():
            if child.standby is not None and child.standby.poll() is not None:  # the twin itself died
                child.standby, child.standby_due = None, now + self.standby_delay
            if self.standby and child.standby is None and child.standby_due is not None and now >= child.standby_due:
                self._spawn_standby(child)
            if child.given_up or child.process is None:
                continue
            if child.process.poll() is None:
                continue
            if child.due is None:  # just found dead
                while child.restarts and now - child.restarts[0] > self.window_s:
                    child.restarts.popleft()
                if len(child.restarts) >= self.max_restarts:
                    child.given_up = True
                    self.log(f"{child.name} died {len(child.restarts) + 1} times within {self.window_s:g} s "
                             f"(exit {child.process.returncode}); not restarting it again")
                    continue
                quick = child.restarts and now - child.started < self.stable_s  # a crash loop, maybe
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (len(child.restarts) - 1)) if quick else 0.0
                child.due = now + delay
                self.log(f"{child.name} exited ({child.process.returncode}); restarting"
                         + (f" in {delay:.2f} s" if delay else ""))
            if now >= child.due:
                child.restarts.append(now)
                self._spawn(child)
                self.respawned += 1

    def stop(self, timeout: float = 10.0, twin_grace: float = 1.0) -> None:
        """SIGINT to all (a node's Ctrl-C path: the actor's last word is zero velocity), then SIGKILL to a node
        still running after `timeout` s (said through `log`) and to a twin still running after `twin_grace` s: a
        twin drives nothing, and one held in a C call (an import, the middleware's start or goodbye) cannot run
        its signal handler."""
        for child in self.children.values():
            if child.standby is not None and child.standby.poll() is None:
                child.standby.stdin.close()  # end of input: it exits without starting
        nodes = [(c.name, c.process) for c in self.children.values() if c.process is not None]
        twins = [c.standby for c in self.children.values() if c.standby is not None]
        for process in [p for _, p in nodes] + twins:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        start = time.monotonic()
        for twin in twins:
            _wait_or_kill(twin, start + twin_grace)
        for name, process in nodes:
            if not _wait_or_kill(process, start + timeout):
                self.log(f"{name} (pid {process.pid}) still ran {time.monotonic() - start:.1f} s after SIGINT; "
                         "killed it")


def _wait_or_kill(process: subprocess.Popen, deadline: float) -> bool:
    """Wait for `process` until `deadline` (monotonic), then SIGKILL it. False if it had to be killed."""
    try:
        process.wait(timeout=max(0.01, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
