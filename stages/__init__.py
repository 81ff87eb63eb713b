"""One thin entry module per DVC stage: `python -m stages.<name>` reads params.yaml and calls the library."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from varireal.cpu_pins import pin_cpu
from varireal.models.errors import ModelError
from varireal.prompts.errors import PromptGenerationError

pin_cpu()  # before any stage module loads torch: the same kernels and thread count on every machine

# Errors about the user's inputs (params, files, weights, downloads): their messages name the
# key or file and what was expected, so a traceback would only bury them.
USER_ERRORS = (ValueError, OSError, ModelError, PromptGenerationError)


def run_stage(main: Callable[[], None]) -> None:
    try:
        main()
    except USER_ERRORS as err:
        if os.environ.get("VARIREAL_TRACEBACK"):
            raise
        print(f"error: {_message(err)}\n(set VARIREAL_TRACEBACK=1 for the traceback)", file=sys.stderr)
        sys.exit(1)


def _message(err: BaseException) -> str:
    """An OSError about a file as "path: No space left on device", the path first, as the other errors read."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        paths = f"{err.filename}" if err.filename2 is None else f"{err.filename} -> {err.filename2}"
        return f"{paths}: {err.strerror}"
    return str(err)
