"""User mistakes (config, data, checkpoint) reported as one line, never as a traceback."""


class ConfigError(ValueError):
    """`<key>=<value>: <what is allowed>`; `src.train` prints it and exits with status 2."""

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")


class DivergenceError(RuntimeError):
    """Training diverged: too many consecutive non-finite losses (exit status 3)."""


class Interrupted(RuntimeError):
    """The run was stopped by a signal after saving what it had (exit status 128 + signal)."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)
