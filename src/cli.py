"""The one boundary between an entry point (train, generate, evaluate) and its user.

Every exception that reaches it becomes one line on stderr and an exit status: 2 for a
config, data or checkpoint mistake, 3 for divergence, 130/143 after SIGINT/SIGTERM, 1 for
anything else (a bug: `HYDRA_FULL_ERROR=1` shows its traceback).
"""

import contextlib
import difflib
import errno
import functools
import logging
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from src.errors import ConfigError, DivergenceError, Interrupted

EXIT_CONFIG, EXIT_DIVERGENCE = 2, 3
# the machine's problems, not convgan's: full disk, quota, file too large, read-only, denied
FILE_SYSTEM_ERRORS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
)


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


class WithoutTips(logging.Filter):
    """Lightning's advertisement for its cloud logger, on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_known_warnings() -> None:
    """The project's only warning filters: noise that is understood and not actionable."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, WithoutTips) for f in rank_zero.filters):  # the API calls it again
        rank_zero.addFilter(WithoutTips())
    # The progress bar shows rank 0's epoch means on purpose (no extra collective per step).
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed")
    # a resume writes into its own checkpoints/ again, on purpose
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # debug=overfit: our val sampler is a fixed contiguous slice (not shuffled), validation off
    warnings.filterwarnings("ignore", message=r"You requested to overfit but enabled val ")
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        quiet_known_warnings()
        try:
            return main(*args, **kwargs)
        except SystemExit as stop:
            if not in_multirun():
                raise
            return job_failed(f"exited with status {stop.code}", int(stop.code or 1))
        except BaseException as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or isinstance(error, KeyboardInterrupt):
                raise
            message, status = one_line(error)
            if in_multirun() and not isinstance(error, Interrupted):
                return job_failed(message, status)
            fail(message, status)

    return wrapped


def one_line(error: BaseException) -> tuple[str, int]:
    """What the user reads, and the exit status."""
    if isinstance(error, ConfigError):
        return f"config error: {error}", EXIT_CONFIG
    if isinstance(error, MissingMandatoryValue):
        return f"config error: {error.full_key}='???': required: set it", EXIT_CONFIG
    if isinstance(error, DivergenceError):
        return str(error), EXIT_DIVERGENCE
    if isinstance(error, Interrupted):
        return str(error), error.status
    if isinstance(error, OSError) and error.errno in FILE_SYSTEM_ERRORS:
        where = error.filename or "a file of the run"
        return (f"file-system error: {where}: {error.strerror}; what was written before is "
                f"intact (free space, or choose another hydra.run.dir)", EXIT_CONFIG)  # fmt: skip
    if isinstance(error, OmegaConfBaseException) and getattr(error, "full_key", None):
        return f"config error: {error.full_key}: {describe(error)}", EXIT_CONFIG
    if is_user_error(error) or "ConfigError: " in describe(error):
        return f"config error: {describe(error)}", EXIT_CONFIG
    return f"{describe(error)} (HYDRA_FULL_ERROR=1 shows the traceback)", 1


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def swept_values() -> list[str]:
    """This multirun job's values of the swept keys, e.g. `['lr=0.0001', 'momentum=0.9']`:
    the keys given several values on the sweep's command line, and the sweeper's search
    space (Optuna's `params`). Empty outside a multirun."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return []
    hydra_cfg = HydraConfig.get()
    swept = {o.get_key_element() for o in sweep_overrides() if o.is_sweep_override()}
    swept |= set((hydra_cfg.sweeper.get("params") or {}).keys())
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    job = dict(o.split("=", 1) for o in task if "=" in o)
    return [f"{key.rsplit('.', 1)[-1]}={job[key]}" for key in job if key in swept]


def sweep_overrides() -> list[Any]:
    """The sweep's command-line overrides, parsed; none when this process was not started
    with them (a relaunched DDP rank, a SLURM job)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        arguments = [a for a in sys.argv[1:] if not a.startswith("-")]  # -m, --multirun
        return OverridesParser.create().parse_overrides(arguments)
    except Exception:
        return []


def job_dir_name() -> str:
    """A multirun job's folder (`hydra.sweep.subdir`): its swept values, as its W&B run is
    named (`lr=0.0001,momentum=0.9`); the job number in front where two jobs could share
    them (values a sweeper samples, a value listed twice); the number alone without any."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    if not in_multirun():  # `--cfg all --resolve` of a single run: no job number yet
        return "0"
    number, name = str(hydra_cfg.job.num), ",".join(swept_values()).replace("/", "_")
    listed = [list(o.sweep_string_iterator()) for o in sweep_overrides() if o.is_sweep_override()]
    repeated = any(len(set(values)) < len(values) for values in listed)
    if not name or len(name) > 200:
        return number
    return f"{number}_{name}" if repeated or hydra_cfg.sweeper.get("params") else name


OmegaConf.register_new_resolver("sweep_job", job_dir_name, replace=True)


FAILED_JOBS: list[tuple[str, str, int]] = []  # (job, line, exit status) of this multirun


def job_failed(message: str, status: int) -> float:
    """A failed multirun job: its line on stderr and in `<job dir>/failed.txt` (the report
    shows it), remembered for the sweep's exit status; NaN goes to the sweeper (Optuna marks
    the trial failed) and the next job runs."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    line = " ".join(message.split())
    print(f"error: job {hydra_cfg.job.num}: {line}", file=sys.stderr, flush=True)
    FAILED_JOBS.append((str(hydra_cfg.job.num), line, status))
    folder = Path(hydra_cfg.runtime.output_dir)
    with contextlib.suppress(OSError):  # an unwritable job directory is the failure itself
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        overrides = folder / ".hydra" / "overrides.yaml"
        if not overrides.exists():
            task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
            overrides.write_text("".join(f"- {o}\n" for o in task))
        (folder / "failed.txt").write_text(line + "\n")
    return float("nan")


class SweepStatus:
    """Hydra callback (conf/hydra/default.yaml): after a multirun, one line per failed job
    and a non-zero exit status if any failed (the worst: 1 for a bug, else the first's)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None  # Hydra's other callback hooks: nothing to do

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if not FAILED_JOBS:
            return
        statuses = [status for _, _, status in FAILED_JOBS]
        jobs = ", ".join(job for job, _, _ in FAILED_JOBS)
        print(f"error: {len(FAILED_JOBS)} job(s) failed: {jobs}", file=sys.stderr, flush=True)
        FAILED_JOBS.clear()
        sys.exit(1 if 1 in statuses else statuses[0])


def check_overrides(config_name: str, argv: list[str] | None = None) -> None:
    """Hydra's composition errors as one line, exit 2, before Hydra runs: an unknown key with
    the nearest existing keys (Hydra suggests `+key`, which would pass a bogus key on), an
    unknown group option with the options. A sweep override is checked with its first value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException

    arguments = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
    except Exception:  # a syntax error: Hydra's own message says where
        return
    overrides = [
        f"{o.input_line.split('=', 1)[0]}={next(o.sweep_string_iterator())}"
        if o.is_sweep_override() else o.input_line
        for o in parsed
    ]  # fmt: skip
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        try:
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        except ConfigCompositionException as error:
            fail(f"config error: {composition_error(error, config_name, overrides)}", EXIT_CONFIG)
        if cfg.hydra.output_subdir is not None or config_name == "train":  # a run directory
            sweep = "-m" in sys.argv or "--multirun" in sys.argv or cfg.hydra.mode == "MULTIRUN"
            key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
            writable_target(key, cfg.hydra.sweep.dir if sweep else cfg.hydra.run.dir)


def writable_target(key: str, path: str | os.PathLike) -> None:
    """Where a run will write (Hydra creates it before any job code runs): one line, exit 2,
    when it is a file, a dangling link or not writable, instead of Hydra's traceback."""
    path = Path(path)
    problem = "a dangling symbolic link" if path.is_symlink() and not path.exists() else None
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if problem is None and not ancestor.is_dir():
        problem = f"{ancestor} is a file; give a directory"
    elif problem is None and not os.access(ancestor, os.W_OK | os.X_OK):
        problem = f"{ancestor} is not writable (read-only or no permission)"
    if problem:
        fail(f"config error: {key}={str(path)!r}: {problem}", EXIT_CONFIG)


def composition_error(error: Exception, config_name: str, overrides: list[str]) -> str:
    """What Hydra could not compose, in one line: an unknown key is looked up in the config the
    group choices make (`model=r3gan` has other keys than the default), down to the innermost
    key that is unknown (a dict given for an existing key may hold one)."""
    from hydra import compose

    text = str(error)
    if unknown := re.search(r"Could not override '([^']+)'", text):
        key = unknown[1]
        if inner := re.search(r"full_key: (\S+)", str(error.__cause__)):
            key = inner[1]
        parent, _, name = key.rpartition(".")
        choices = [o for o in overrides if "." not in o.split("=", 1)[0].lstrip("+~")]
        try:
            node = compose(config_name, overrides=[
                o for o in choices if o.split("=", 1)[0].lstrip("+~") != unknown[1]
            ])  # fmt: skip
        except Exception:  # another choice is wrong too: the defaults' keys
            node = compose(config_name)
        for part in parent.split(".") if parent else []:
            node = node.get(part) if hasattr(node, "get") else None
        keys = [str(k) for k in node] if hasattr(node, "keys") else []
        near = difflib.get_close_matches(name, keys, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(f'{parent}.{k}' if parent else k for k in near)}?"
        if not keys:
            return f"{key}: no such key; {parent} is empty: +{key}=... adds one"
        return f"{key}: no such key; {hint if near else 'keys here: ' + ', '.join(keys)}"
    if missing := re.search(r"Could not find '([^']+)/([^']+)'", text):
        group, value = missing.groups()
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        return f"{group}={value!r}: allowed: {', '.join(options)}"
    return " ".join(text.split("\n")[0].split())


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
