"""Ctrl-C ends the command at once, at any point, with exit status 130 and one line on stderr.

Python's own handling (``KeyboardInterrupt``) is not enough here. The interpreter runs its handler
only between bytecodes of the main thread, so a Ctrl-C during XLA's compilation waits for it to
finish; and a ``KeyboardInterrupt`` that unwinds while XLA's threads (compilation, a host callback
of the progress bar) still run ends in interpreter finalisation under those threads: a segfault.
A library that catches ``BaseException`` during import can also swallow it.

So :func:`install` uses the signal's wakeup fd: the C-level handler writes a byte to a pipe as soon
as SIGINT arrives, and a daemon thread blocked on that pipe prints the message and calls ``os._exit``
(no finalisation, no atexit, no running XLA thread touched). Every file of a run is written
atomically (:mod:`aljax.atomic`), so what is on disk is whole: finished chunks are kept, and a
leftover temporary file is removed by the next run. Standard library only, so that it can be
installed before anything heavy is imported: ``python -m aljax`` installs it while importing the
package (``aljax/__init__.py``), the ``aljax`` console script first thing in :func:`aljax.__main__.main`.

Two windows remain where a handler is not ours, and what happens there:

* while the Python interpreter itself starts (before any aljax code runs: a few milliseconds),
  a Ctrl-C ends the process as Python ends it, killed by SIGINT (a shell shows status 130 either way);
* once the command has returned, :func:`settle` ignores SIGINT until the process exits: Python's
  finalization resets a Python-level handler to the default action, and a Ctrl-C there would kill
  the process by SIGINT after its work was done (status -2 for a parent process). A command that has
  finished exits with its own status.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

MESSAGE = "aljax: interrupted; rerun the same command to resume (finished chunks are kept)"  # a command may set its own
MAX_MESSAGE = 500  # characters of an error message printed (a 1 MB name is not echoed whole)
STATUS = 130
_installed = False


def install(message: str | None = None) -> None:
    """Make SIGINT end the process with ``message`` and status 130 (main thread only; idempotent)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # the thread below acts on it

    def wait() -> None:
        while True:
            data = os.read(read, 512)
            if signal.SIGINT in data:
                break
        try:
            sys.stderr.write(("\n" if sys.stderr.isatty() else "") + (message or MESSAGE) + "\n")  # end a progress bar's line
            sys.stderr.flush()
        finally:
            os._exit(STATUS)

    threading.Thread(target=wait, name="aljax-interrupt", daemon=True).start()
    _installed = True


def settle() -> None:
    """The command has returned: ignore SIGINT from here to the process's exit (see above)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line of at most about ``limit`` characters: line breaks and other control
    characters become spaces, and the middle of a longer text is cut (its length is said)."""
    text = "".join(c if c.isprintable() else " " for c in text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} [... {len(text) - 2 * half} characters cut ...] {text[-half:]}"
