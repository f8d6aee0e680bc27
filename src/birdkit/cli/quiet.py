"""Lines that native libraries write straight to file descriptor 2, dropped unless ``--verbose``.

TensorFlow 2.21 and LiteRT log through absl's C++ logger before it is initialised (``I0000 ... port.cc] oneDNN
custom operations are on``, ``INFO: Created TensorFlow Lite XNNPACK delegate``): no environment variable turns
those off, and they bypass ``sys.stderr``. So the real CLI process routes fd 2 through a pipe and a thread
that passes every line on except these; worker processes and Jupyter kernels inherit the same pipe. Errors
(absl ``E``/``F`` lines, Python tracebacks, birdkit's own messages) always pass.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading

NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] .*"  # absl INFO/WARNING lines
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|INFO: Created TensorFlow Lite (?:XNNPACK )?delegate for CPU\."
    rb"|INFO: Initialized TensorFlow Lite runtime\."
    rb"|.*tf\.lite\.Interpreter is deprecated.*"
    rb"|.*running over TCP without encryption.*"
    rb"|\s*warnings\.warn\(.*)\r?$"
)
# The start of a line that may turn out to be noise: held until its end is seen.
_MAYBE = re.compile(rb"^(?:[IW]\d{0,4}(?: |$)|WARNING: All|INFO: |\s+warnings)")


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        keep = [ln + b"\n" for ln in lines if not NOISE.match(ln)]
        if pending and not _MAYBE.match(pending):  # a progress bar redraws without a newline: pass it now
            keep.append(pending)
            pending = b""
        if keep:
            with contextlib.suppress(OSError):
                os.write(out_fd, b"".join(keep))
    if pending and not NOISE.match(pending):
        os.write(out_fd, pending)


def filter_native_stderr() -> None:
    """Route fd 2 through the filter for the rest of this process (and the processes it starts)."""
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
    except OSError:
        return  # no fd 2 to filter (an embedded interpreter): leave it
    thread = threading.Thread(target=_pump, args=(read_fd, original), name="birdkit-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(original, 2)  # this process no longer writes into the pipe: the pump sees its end
        thread.join(timeout=2.0)

    atexit.register(restore)
