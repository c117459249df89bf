"""Strict bundle-config values: booleans and numbers given on MONAI's command line, and override keys.

``python -m monai.bundle run --resume false`` hands the *string* ``'false'`` to the config (Fire only turns
``False``, ``0``, ``3.5`` into Python values), and a string is true. The configs therefore read their boolean and
numeric knobs through :func:`as_bool`, :func:`as_int` and :func:`as_float`, which accept the spellings a person
types and reject everything else with an error naming the key. A mistyped key (``--lamda 0.3``) would be added to
the config and ignored; :func:`check_command_line_overrides` (the first step of each bundle's ``initialize``)
rejects it, listing the closest known ids.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import logging
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "as_bool",
    "as_float",
    "as_int",
    "bundle_root",
    "check_command_line_overrides",
    "check_override_keys",
    "config_ids",
]

logger = logging.getLogger(__name__)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def as_bool(value: Any, key: str) -> bool:
    """The boolean meant by a config value.

    Args:
        value: a bool, the int 0 or 1, or one of the strings ``true/1/yes/on`` and ``false/0/no/off`` (any case,
            surrounding blanks ignored).
        key: the config id, named in the error.

    Returns:
        The boolean.

    Raises:
        ValueError: for anything else (e.g. ``"flase"``, ``2``, ``None``), naming ``key``.

    Example:
        >>> as_bool("False", "resume"), as_bool("on", "amp"), as_bool(1, "x")
        (False, True, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(
        f"config value {key!r} must be a boolean (true/false, yes/no, on/off, 1/0), got {value!r} "
        f"({type(value).__name__})."
    )


def _number(value: Any, key: str, kind: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (Real, str)):
        raise ValueError(f"config value {key!r} must be {kind}, got {value!r} ({type(value).__name__}).")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config value {key!r} must be {kind}, got {value!r}.") from None
    # a numbers.Real (int, float, numpy scalar, ...): mypy does not model the numeric tower; callers use int()/float()
    return cast("float | int", value)


def as_int(value: Any, key: str, minimum: int | None = None) -> int:
    """The integer meant by a config value (an int, a float with no fraction, or a string of one).

    Args:
        value: the value.
        key: the config id, named in the error.
        minimum: smallest accepted value (None: no bound).

    Returns:
        The integer.

    Raises:
        ValueError: a bool, a fraction, a non-number, or a value below ``minimum``, naming ``key``.

    Example:
        >>> as_int("12", "epochs"), as_int(3.0, "seed")
        (12, 3)
    """
    number = _number(value, key, "an integer")
    if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
        raise ValueError(f"config value {key!r} must be an integer, got {value!r}.")
    number = int(number)
    if minimum is not None and number < minimum:
        raise ValueError(f"config value {key!r} must be >= {minimum}, got {value!r}.")
    return number


def as_float(value: Any, key: str, finite: bool = True) -> float:
    """The real number meant by a config value (an int, a float, or a string of one).

    Args:
        value: the value.
        key: the config id, named in the error.
        finite: reject NaN and infinities.

    Returns:
        The float.

    Raises:
        ValueError: a bool, a non-number, or (with ``finite``) a non-finite number, naming ``key``.

    Example:
        >>> as_float("1e-3", "learning_rate")
        0.001
    """
    number = float(_number(value, key, "a number"))
    if finite and not math.isfinite(number):
        raise ValueError(f"config value {key!r} must be a finite number, got {value!r}.")
    return number


def config_ids(config: Any, prefix: str = "") -> list[str]:
    """Every id of a config (``a``, ``a#b``, ``a#0#c``, ...), depth first, as ``ConfigParser`` addresses them."""
    ids: list[str] = []
    items: Iterable[tuple[Any, Any]]
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, list):
        items = enumerate(config)
    else:
        return ids
    for key, value in items:
        sub = f"{prefix}#{key}" if prefix else str(key)
        ids.append(sub)
        ids.extend(config_ids(value, sub))
    return ids


def check_override_keys(
    config_file: str | os.PathLike | Sequence[str | os.PathLike], keys: Iterable[str], allowed: Iterable[str] = ()
) -> None:
    """Raise when an override key is not an id of the config files (a typo would otherwise be silently ignored).

    Args:
        config_file: the config file(s) of the run (merged as MONAI merges them).
        keys: the override ids (``lambda``, ``synthetic#n_train``, ...).
        allowed: further ids accepted although the files do not define them.

    Raises:
        ValueError: naming each unknown key with the closest known ids.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file)
    parser.read_config(f=[str(f) for f in files])
    known = set(config_ids(parser.get())) | set(allowed)
    unknown = [k for k in keys if k not in known and not k.startswith(ConfigParser.meta_key)]
    if not unknown:
        return
    lines = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "no similar id"
        lines.append(f"{key!r} ({hint})")
    raise ValueError(
        f"unknown config override(s): {'; '.join(lines)}. Every override must be an id of the config file(s) "
        f"{_files(config_file)}; to add an entry to a dict knob, give the whole dict "
        "(e.g. --loss_kwargs \"{'margin': 0.1}\")."
    )


def _files(config_file: Any) -> str:
    files = [config_file] if isinstance(config_file, (str, os.PathLike)) else list(config_file)
    return ", ".join(str(f) for f in files)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _cli_arguments(argv: Sequence[str]) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` / ``--flag`` pairs of a Fire command line (hyphens read as underscores)."""
    pairs: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--") or token == "--":
            continue  # a positional argument (e.g. run_id)
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            else:
                value = "True"
        pairs[name.replace("-", "_")] = _literal(value)
    return pairs


def _reserved_arguments() -> set[str]:
    """Names ``monai.bundle run`` takes for itself (not config overrides): its own and the workflow's arguments."""
    from monai.bundle import ConfigWorkflow, scripts

    names: set[str] = set()
    for func in (scripts.run, scripts.create_workflow, ConfigWorkflow.__init__):
        names |= {
            p.name for p in inspect.signature(func).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
        }
    return names - {"self"}


def check_command_line_overrides(argv: Sequence[str] | None = None) -> None:
    """Reject unknown override keys of ``python -m monai.bundle run`` (a bundle's first ``initialize`` step).

    MONAI adds any ``--key value`` to the config, so a typo such as ``--lamda 0.3`` trains with the default lambda
    and exit code 0. This reads the command line (``sys.argv``; also the pairs of ``--args_file``) and checks every
    override against the ids of the config files of the run. Outside ``python -m monai.bundle run`` (a
    ``ConfigWorkflow`` built in Python) it does nothing: call :func:`check_override_keys` there.

    Args:
        argv: the command line (default ``sys.argv``).

    Raises:
        ValueError: an unknown override key, with the closest known ids.
    """
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or Path(argv[0]).parts[-2:] != ("bundle", "__main__.py") or argv[1] != "run":
        return
    from monai.bundle import ConfigParser
    from monai.bundle.utils import DEFAULT_EXP_MGMT_SETTINGS

    given = _cli_arguments(argv[2:])
    args: dict[str, Any] = {}
    if given.get("args_file"):
        args.update(ConfigParser.load_config_file(given["args_file"]))
    args.update(given)
    config_file = args.get("config_file")
    if not config_file:
        return
    reserved = _reserved_arguments()
    allowed: set[str] = set()
    tracking = args.get("tracking")
    if isinstance(tracking, str) and tracking in DEFAULT_EXP_MGMT_SETTINGS:
        # MONAI's settings: "configs" maps the config keys the tracking adds to their values
        allowed = set(cast("Mapping[str, Any]", DEFAULT_EXP_MGMT_SETTINGS[tracking].get("configs", {})))
    elif isinstance(tracking, dict):
        allowed = set(tracking.get("configs", {}))
    check_override_keys(config_file, [k for k in args if k not in reserved], allowed)


def _root_of(config_file: Any) -> Path:
    first = config_file if isinstance(config_file, (str, os.PathLike)) else next(iter(config_file))
    folder = Path(first).resolve().parent
    return folder.parent if folder.name == "configs" else folder


def bundle_root() -> str:
    """The folder of the bundle whose config is running, whatever the working directory.

    MONAI's own rule (``ConfigWorkflow.run`` puts it on ``sys.path``): the parent of the ``configs`` folder that
    holds the (first) config file, or that folder itself when it is not called ``configs``. The config file is taken
    from the running ``ConfigWorkflow`` (``python -m monai.bundle run``, or one built in Python), else from
    ``--config_file`` of a ``python -m monai.bundle`` command line (``verify_net_in_out``, ``ckpt_export``, ...);
    without either (a bare ``ConfigParser``) it is the working directory. ``--bundle_root`` overrides it as usual.

    Use it as ``"bundle_root": "$monai_explain.utils.bundle_root()"``.

    Note:
        The running workflow is found by walking the call stack because MONAI (1.6.1) gives a config no
        frame-free way to know its own path: ``ConfigWorkflow`` keeps ``config_root_path`` to itself (it neither
        sets ``bundle_root`` nor puts the path in the parser or its expression globals), ``%file#id`` macros read
        paths from the working directory, and the bundle folder it puts on ``sys.path`` in ``run()`` (only then)
        cannot be told apart from an earlier workflow's in the same process.

    Returns:
        The absolute bundle folder.
    """
    from monai.bundle import ConfigWorkflow

    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, ConfigWorkflow):
            return str(_root_of(owner.config_root_path / "_"))
        frame = frame.f_back
    argv = sys.argv
    if len(argv) > 1 and Path(argv[0]).parts[-2:] == ("bundle", "__main__.py"):
        config_file = _cli_arguments(argv[2:]).get("config_file")
        if config_file:
            return str(_root_of(config_file))
    logger.info("bundle_root: no running bundle workflow or command line found; using the working directory")
    return os.getcwd()
