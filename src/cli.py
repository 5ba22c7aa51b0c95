"""The one boundary between an entry point (train, generate, evaluate) and its user.

Every exception becomes one line on stderr and an exit status: 2 for a config, data or
checkpoint mistake (Hydra's own composition and override errors included), 3 for divergence,
130/143 after SIGINT/SIGTERM, 1 for anything else (a bug: `HYDRA_FULL_ERROR=1` shows its
traceback).
"""

import difflib
import errno
import functools
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf.errors import OmegaConfBaseException

from src.errors import ConfigError, DivergenceError, EnvironmentFault, Interrupted
from src.utils.hydra_callbacks import in_multirun, job_failed

EXIT_CONFIG, EXIT_DIVERGENCE, EXIT_ENVIRONMENT = 2, 3, 4
CONF = Path(__file__).resolve().parents[1] / "conf"
# the machine's problems, not convgan's: full disk, quota, file too large, read-only, denied
FILE_SYSTEM_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                      errno.EPERM)  # fmt: skip
# set beside HYDRA_FULL_ERROR when this boundary set it (not the user): child processes see both
OURS = "CONVGAN_BOUNDARY"
TYPES = {"IntegerNode": "an integer", "FloatNode": "a number", "BooleanNode": "true or false",
         "StringNode": "a string"}  # fmt: skip


def fail(message: str, status: int) -> None:
    one_line = " ".join(message.split())
    to_log_files(f"error: {one_line}", logging.ERROR)  # the run's train.log holds it too
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    sys.exit(status)


def to_log_files(message: str, level: int = logging.INFO) -> None:
    """`message` into the run's log file only (Hydra's job logging: <run dir>/train.log), not
    on the console."""
    record = logging.LogRecord("convgan", level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def tracebacks_wanted() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" and os.environ.get(OURS) != "1"


def entry(main: Callable[[], Any]) -> None:
    """Runs a `@hydra.main` entry point. Hydra gap: it prints its own composition and
    override errors as several lines and exits 1, unless HYDRA_FULL_ERROR=1 makes it raise
    them; set here (unless the user set it), so they end as one line and exit 2 too."""
    if not tracebacks_wanted():
        os.environ["HYDRA_FULL_ERROR"] = os.environ[OURS] = "1"
    try:
        main()
    except BaseException as error:
        if isinstance(error, SystemExit | KeyboardInterrupt) or tracebacks_wanted():
            raise
        fail(*one_line(error))


def describe(error: BaseException) -> str:
    """The useful line of an exception's message (a DataLoader worker's error is wrapped in
    a message that holds the worker's traceback: keep its last line, the original error)."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    text = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def one_line(error: BaseException) -> tuple[str, int]:
    """What the user reads, and the exit status."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    if isinstance(error, ConfigError):
        return f"config error: {error}", EXIT_CONFIG
    if "ConfigError: " in describe(error):  # raised in a DataLoader worker, re-raised wrapped
        return f"config error: {describe(error).split('ConfigError: ', 1)[1]}", EXIT_CONFIG
    if isinstance(error, DivergenceError):
        return str(error), EXIT_DIVERGENCE
    if isinstance(error, EnvironmentFault):
        return f"environment error: {error}", EXIT_ENVIRONMENT
    if isinstance(error, Interrupted):
        return str(error), error.status
    if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:  # a sweep job's folder
        length = len(Path(str(error.filename)).name)
        return (f"config error: hydra.sweep.subdir: a folder name of {length} "
                "characters is too long for the file system (a sweep job is named by its "
                "overrides): leave keys out with hydra.job.config.override_dirname.exclude_keys or "
                "set hydra.sweep.subdir='${hydra.job.num}'", EXIT_CONFIG)  # fmt: skip
    if isinstance(error, OSError) and error.errno in FILE_SYSTEM_ERRORS:
        where = error.filename or "a file of the run"
        key = getattr(error, "key", "hydra.run.dir")  # what chose the place (`writing`)
        return (f"file-system error: {where}: {error.strerror}; what was written before is "
                f"intact (free space, or choose another {key})", EXIT_CONFIG)  # fmt: skip
    if isinstance(error, OverrideParseException):
        reason = error.message.strip().splitlines()[0]
        return (f"config error: {error.override}: not an override Hydra can parse ({reason}); "
                "quote a value with special characters: key='value'", EXIT_CONFIG)  # fmt: skip
    if isinstance(error, ConfigCompositionException):
        return f"config error: {composition_error(error)}", EXIT_CONFIG
    if isinstance(error, OmegaConfBaseException):
        return f"config error: {omegaconf_error(error)}", EXIT_CONFIG
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    if isinstance(error, MisconfigurationException):
        return f"config error: trainer: Lightning refused it: {describe(error)}", EXIT_CONFIG
    return f"{describe(error)} (HYDRA_FULL_ERROR=1 shows the traceback)", 1


def omegaconf_error(error: OmegaConfBaseException) -> str:
    """A value OmegaConf refused (a schema's type, a missing or unresolvable value)."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    key = getattr(error, "full_key", None) or "config"
    if isinstance(error, MissingMandatoryValue):
        return f"{key}='???': required: set it"
    if isinstance(error, InterpolationResolutionError):
        node = getattr(error, "child_node", None)
        raw = str(node._value()) if node is not None else ""
        read = sorted(set(re.findall(r"\$\{([\w.]+)\}", raw)))  # the keys it is made of
        made_of = f" from {', '.join(read)}" if read else ""
        return f"{key}: cannot be resolved{made_of} ({describe(error)})"
    node, value = getattr(error, "child_node", None), getattr(error, "value", None)
    if allowed := TYPES.get(type(node).__name__):
        return f"{key}={value!r}: allowed: {allowed}"
    return f"{key}: {describe(error)}"


def composition_error(error: Exception) -> str:
    """What Hydra could not compose, from its exception's fields: an unknown key with the
    nearest keys of its node (Hydra suggests `+key`, which would pass a bogus key on), an
    unknown group option with the options."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, value = error.missing_cfg_file.rpartition("/")
        options = error.options or sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        return f"{group}={value!r}: allowed: {', '.join(options)}"
    cause = error.__cause__
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key:
        parent, _, name = cause.full_key.rpartition(".")
        keys = [str(k) for k in cause.parent_node] if cause.parent_node is not None else []
        if (CONF / cause.full_key.replace(".", "/")).is_dir():  # a config group's node
            return (f"{cause.full_key}: not chosen; choose one of conf/"
                    f"{cause.full_key.replace('.', '/')}/ with {cause.full_key.replace('.', '/')}"
                    "=<name>")  # fmt: skip
        near = difflib.get_close_matches(name, keys, n=1, cutoff=0.5)
        if near:
            hint = f"did you mean {', '.join(f'{parent}.{k}' if parent else k for k in near)}?"
        else:
            hint = f"keys here: {', '.join(keys)}" if keys else f"{parent} is empty"
            hint += f"; +{cause.full_key}=... adds one"
        return f"{cause.full_key}: no such key; {hint}"
    if isinstance(cause, OmegaConfBaseException):
        return omegaconf_error(cause)
    return describe(error).removeprefix(f"{type(error).__name__}: ")


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """The job's boundary: one line and the exit status; in a multirun the job is marked
    failed and the next one runs."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except SystemExit as stop:
            if not in_multirun():
                raise
            return job_failed(f"exited with status {stop.code}", int(stop.code or 1))
        except BaseException as error:
            if tracebacks_wanted() or isinstance(error, KeyboardInterrupt):
                raise
            message, status = one_line(error)
            if in_multirun() and not isinstance(error, Interrupted):
                return job_failed(message, status)
            fail(message, status)

    return wrapped
