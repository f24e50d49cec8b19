"""The sandbox worker process: ``python -m app.sandbox.worker FD`` serves programs over FD.

Started by ``app.sandbox.isolation`` (through ``app.workers.pool``); it warms up, limits itself
(one torch thread, CPU-time and address-space rlimits, no core dumps: ``app.workers.serve``),
then answers (kind, code, limits, backward, steps, encoded) requests with tagged replies until its
socket closes. With ``encoded`` the answer comes back as the bytes of its JSON, made here, so the
server never builds (or holds more than) the answer itself.
"""

from __future__ import annotations

from typing import Any

from app.sandbox.graph import graph_answer
from app.sandbox.interpreter import run_answer, run_program
from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.notebook import notebook_json
from app.workers import serve

# Virtual memory a worker may map on top of what it maps after importing torch and warming up.
ADDRESS_SPACE_HEADROOM = 2 * 1024**3
# CPU seconds a program may use past max_seconds before the kernel stops it (SIGXCPU).
CPU_MARGIN_SECONDS = 2.0

# Imports what the first optimizer needs (torch._dynamo, ~2 s) before any learner's clock runs.
_WARM_UP = """
w = torch.zeros(2, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
loss = (w * 2).sum()
loss.backward()
opt.step()
import matplotlib.pyplot as plt
plt.plot([1, 2])
plt.show()
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter()
writer.add_scalar("loss", 1.0, 0)
writer.close()
line = open("data/wine/wine.csv").readline()
"""


def handle(request: tuple[Any, ...]) -> tuple[Any, ...]:
    """One request -> ("ok", result) | ("limit", reason, line, limit) | ("refused", reason,
    line) | ("crash", message); result is a dict, or JSON bytes when the request is encoded."""
    kind, code, limits, backward, steps, encoded = request
    try:
        if kind == "notebook":  # the program as a notebook's JSON bytes; backward is its title
            return ("ok", notebook_json(code, backward or "program", limits))
        answer = None
        if kind == "graph":  # backward: the variable's name, or {"backward", "root", "step"}
            options = backward if isinstance(backward, dict) else {"backward": backward}
            answer = graph_answer(
                code, options.get("backward"), limits, options.get("root"), options.get("step")
            )
        if answer is not None:
            return ("ok", answer.as_json() if encoded else answer.as_dict())
        run = run_answer(code, limits, steps)
        return ("ok", run.as_json() if encoded else run.as_dict())
    except SandboxLimitExceeded as exc:
        return ("limit", exc.reason, exc.line, exc.limit)
    except SandboxRefused as exc:
        return ("refused", exc.reason, exc.line)
    except MemoryError:
        return ("limit", "the program ran out of memory", None, "max_total_bytes")
    except Exception as exc:  # a bug in the sandbox itself: report it and keep serving
        return ("crash", f"{type(exc).__name__}: {exc}")


def cpu_seconds(request: tuple[Any, ...]) -> float:
    """CPU time one request may use: its program's max_seconds and a margin."""
    limits: SandboxLimits = request[2]
    return limits.max_seconds + CPU_MARGIN_SECONDS


def _warm_up() -> None:
    """Import what learner programs use (torch._dynamo, matplotlib's fonts, TensorBoard's writer,
    the wine file) before any clock runs. scikit-learn (1.5 s) is imported by the first program
    that uses it, and that time is given back to its clock (``lib_data.sklearn_parts``)."""
    run_program(_WARM_UP)


def main() -> None:
    serve.main(handle, cpu_seconds, ADDRESS_SPACE_HEADROOM, warm_up=_warm_up)


if __name__ == "__main__":
    main()
