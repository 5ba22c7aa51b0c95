"""The one boundary between an entry point (train, generate, evaluate) and its user.

Every exception that reaches it becomes one line on stderr and an exit status: 2 for a
config, data or checkpoint mistake, 3 for divergence, 130/143 after SIGINT/SIGTERM, 1 for
anything else (a bug: `HYDRA_FULL_ERROR=1` shows its traceback).
"""

import contextlib
import functools
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from src.errors import ConfigError, DivergenceError, Interrupted

EXIT_CONFIG, EXIT_DIVERGENCE = 2, 3


def fail(message: str, status: int) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    sys.exit(status)


def describe(error: BaseException) -> str:
    """The useful line of an exception's message (a DataLoader worker's error is wrapped in
    a message that holds the worker's traceback: keep its last line, the original error)."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def is_user_error(error: BaseException) -> bool:
    """Config mistakes found by OmegaConf (missing values, bad interpolations) or by
    Lightning's own Trainer checks."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    return isinstance(error, OmegaConfBaseException | MisconfigurationException)


def quiet_known_warnings() -> None:
    """The project's only warning filters: noise that is understood and not actionable."""
    # The progress bar shows rank 0's epoch means on purpose (no extra collective per step).
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed")
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        quiet_known_warnings()
        try:
            return main(*args, **kwargs)
        except ConfigError as error:
            fail(f"config error: {error}", status=EXIT_CONFIG)
        except MissingMandatoryValue as error:
            fail(f"config error: {error.full_key}='???': required: set it", status=EXIT_CONFIG)
        except DivergenceError as error:
            fail(str(error), status=EXIT_DIVERGENCE)
        except Interrupted as error:
            fail(str(error), status=error.status)
        except Exception as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if is_user_error(error) or "ConfigError: " in describe(error):
                fail(f"config error: {describe(error)}", status=EXIT_CONFIG)
            fail(f"{describe(error)} (HYDRA_FULL_ERROR=1 shows the traceback)", status=1)

    return wrapped


def writable_dir(key: str, path: str | os.PathLike) -> Path:
    """`path` as an existing (created) writable directory, checked before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(key, str(path), "is a file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(key, str(path), f"cannot create it ({error.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), "not writable")
    return path


@contextlib.contextmanager
def signals_as_exit_status(trainer: Any, output_dir: str) -> Iterator[None]:
    """SIGTERM (Lightning saves nothing and raises SIGTERMException) and Ctrl-C (Lightning
    stops gracefully, then exits 1) become `Interrupted`: exit 143 / 130 with where to resume."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    def interrupted(name: str, number: int) -> Interrupted:
        last = Path(output_dir) / "checkpoints" / "last.ckpt"
        saved = f"{last} holds the last completed epoch" if last.is_file() else "no epoch completed"
        return Interrupted(
            f"stopped by {name}; {saved}; continue with ckpt_path=auto hydra.run.dir={output_dir}",
            128 + number,
        )

    try:
        yield
    except SIGTERMException:
        raise interrupted("SIGTERM", signal.SIGTERM) from None
    except SystemExit:
        if trainer.interrupted:
            raise interrupted("SIGINT", signal.SIGINT) from None
        raise
