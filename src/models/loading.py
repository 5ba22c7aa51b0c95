"""Objects rebuilt from a checkpoint's stored config without running code it was not allowed
to run: this project's model and data classes, classes of a package the user trusts on the
command line (`trust=[mypkg]`), plain-value arguments (a checkpoint is data; a `_target_` such
as builtins.open must never run, and an untrusted package is not even imported)."""

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from src.errors import ConfigError
from src.utils.checkpoint import load_checkpoint

REBUILDABLE_PACKAGES = ("src.models.", "src.data.")
MAX_DEPTH = 32  # no config of ours nests this deep


def rebuild(node: Any, key: str, base: type, trust: Sequence[str] = (), **extra: Any) -> Any:
    """`node` built without Hydra (with `extra` arguments): a class of this project, or of a
    package in `trust`, subclassing `base`, plain-value arguments only; anything else
    (another `_target_`, a nested one) refused in one line before any of its code is imported."""
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise ConfigError(key, node, "no `_target_` class in the checkpoint's config")
    target = node["_target_"]
    refusal = ConfigError(key, target, "refused: only this project's model and data classes")
    module_name, _, class_name = target.rpartition(".")
    if not class_name.isidentifier():
        raise refusal
    if not target.startswith((*REBUILDABLE_PACKAGES, *(f"{p}." for p in trust))):
        package = target.split(".")[0]
        if target.startswith("src."):
            raise refusal
        raise ConfigError(key, target, f"refused: a class outside src, whose code runs only "
                          f"if you trust its package: trust=[{package}]")  # fmt: skip
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise refusal from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise refusal
    kwargs = {k: v for k, v in node.items() if k != "_target_"} | extra

    def check_plain(value: Any, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ConfigError(key, ConfigError.UNSHOWN, "a damaged checkpoint (its config is "
                              f"nested over {MAX_DEPTH} deep)")  # fmt: skip
        if isinstance(value, dict):
            if "_target_" in value:
                raise refusal
            for item in value.values():
                check_plain(item, depth + 1)
        elif isinstance(value, list | tuple):
            for item in value:
                check_plain(item, depth + 1)
        elif not (value is None or isinstance(value, bool | int | float | str)):
            raise ConfigError(key, repr(value), "not a plain value")

    check_plain(kwargs)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ConfigError(key, target, f"arguments do not fit ({error})") from None


# what a stored data config may not choose: where files are written, how much is read into
# memory, what is downloaded (the defaults of this machine's run, or the user's keys, instead)
SIDE_EFFECTS = ("cache_dir", "num_workers", "resident", "resident_max_gb", "download")


def stored_data(
    config: dict, trust: Sequence[str], root: str | None = None, cache_dir: str | None = None
) -> Any:
    """The data a checkpoint was trained on (its `data` config: the dataset and its shape), at
    `root` if given, its side effects chosen here, never by the stored config."""
    from src.data.base import ImageSource

    node = config.get("data")
    if not isinstance(node, dict):
        raise ConfigError("ckpt_path", "its config", "no data section: not saved by src.train")
    node = {k: v for k, v in node.items() if k not in SIDE_EFFECTS}
    if root is not None:
        node["root"] = str(Path(root).expanduser())
        if not Path(node["root"]).is_dir():
            raise ConfigError("data_root", root, "no such directory (the run's data.root)")
    elif node.get("root") is not None and not Path(node["root"]).is_dir():
        raise ConfigError("data_root", None, f"the run's data.root {node['root']} is not here: "
                          "give data_root=<where the data is now>")  # fmt: skip
    return rebuild(node, "data", ImageSource, trust, cache_dir=cache_dir)


def load_generator(
    ckpt_path: str, key: str = "ckpt_path", trust: Sequence[str] = ()
) -> tuple[torch.nn.Module, dict]:
    """G from a checkpoint (the EMA weights when the run kept them) in eval mode, and the
    run's config; G is rebuilt from the project's classes or trusted ones (`rebuild`)."""
    checkpoint = load_checkpoint(ckpt_path, key=key)
    config = checkpoint.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ConfigError(key, ckpt_path, "no run config inside: not saved by src.train")
    state = checkpoint["state_dict"]
    ema = "generator_ema.module."  # swa_utils.AveragedModel's copy of G
    prefix = ema if any(k.startswith(ema) for k in state) else "generator."
    names = checkpoint.get("class_names")
    classes = {"num_classes": len(names)} if isinstance(names, list) else {}
    generator = rebuild(
        config["model"].get("generator"), "model.generator", torch.nn.Module, trust, **classes
    )
    weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    check_weights(weights, generator.state_dict(), key, ckpt_path, prefix)
    generator.load_state_dict(weights)
    generator.class_names = names  # a conditional model's classes
    return generator.eval(), config


def check_weights(
    stored: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], key: str, path: Any,
    prefix: str = "",
) -> None:  # fmt: skip
    """The checkpoint's tensors fit the model: the same names, shapes and dtypes (load_state_dict
    would cast an integer tensor silently) and finite values; else one line naming the first
    tensor that does not."""
    names = sorted(set(stored) ^ set(expected))
    if names:
        where = "missing from" if names[0] in expected else "unexpected in"
        raise ConfigError(key, str(path), f"{prefix}{names[0]} is {where} the checkpoint")
    for name, tensor in stored.items():
        mine = expected[name]
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != mine.dtype:
            found = getattr(tensor, "dtype", type(tensor).__name__)
            raise ConfigError(
                key, str(path), f"{prefix}{name} is {found}, the model needs {mine.dtype}"
            )
        if tensor.shape != mine.shape:
            raise ConfigError(
                key, str(path),
                f"{prefix}{name} has shape {tuple(tensor.shape)}, the model {tuple(mine.shape)}",
            )  # fmt: skip
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConfigError(key, str(path), f"{prefix}{name} holds non-finite values")
