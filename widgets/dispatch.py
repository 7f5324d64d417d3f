"""Run a callback on the kernel's own thread.

Runs report from their background threads; widget state must change on the kernel's
event loop, or the browser may miss updates. Inside a kernel, callbacks are handed to its
IO loop (thread-safe); in plain Python (tests, scripts) they run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def _kernel_loop() -> Any:
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:
        return None
    if not IPKernelApp.initialized():
        return None
    kernel = IPKernelApp.instance().kernel
    return getattr(kernel, "io_loop", None)


def call_soon(callback: Callable[[], None]) -> None:
    """Call ``callback`` on the kernel loop when there is one, else right away."""
    loop = _kernel_loop()
    if loop is None or threading.current_thread() is threading.main_thread():
        callback()
    else:
        loop.add_callback(callback)
