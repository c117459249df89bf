"""Package-wide security checks: no unpickling of untrusted files.

- every ``torch.load`` in the package (and in the bundle configs' expressions) passes ``weights_only=True``, which
  restricts unpickling to tensors and plain containers: a checkpoint cannot run code when it is loaded;
- the checkpoint loader the bundle and :func:`monai_explain.handlers.attach_checkpointing` use, MONAI's
  ``CheckpointLoader``, does the same (read from its source, so a MONAI upgrade that drops it fails here);
- no pickle-based serialisation of user data: no ``pickle`` / ``dill`` / ``joblib`` / ``cloudpickle`` /
  ``shelve`` / ``marshal`` import, no ``numpy.load(..., allow_pickle=True)``, no ``pandas.read_pickle``.

(Image paths read from annotation files cannot leave ``dataset_dir``: tests/data/test_base.py, test_mscxr.py and
test_adapter_bad_input.py cover every adapter's id / path column.)
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "monai_explain"
BUNDLES = ROOT / "bundles"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}


def _package_sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50, f"the package sources were not found under {PACKAGE}"
    return files


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain of names, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_true(call: ast.Call, keyword: str) -> bool:
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_torch_loads(source: str) -> list[int]:
    """Line numbers of ``torch.load`` calls (under any import alias) without ``weights_only=True``."""
    tree = ast.parse(source)
    torch_names = {"torch"}
    load_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            torch_names |= {a.asname or a.name for a in node.names if a.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        is_load = name in load_names or any(name in (f"{t}.load", f"{t}.serialization.load") for t in torch_names)
        if is_load and not _is_true(node, "weights_only"):
            bad.append(node.lineno)
    return bad


@pytest.mark.parametrize(
    "source,expected",
    [
        ("import torch\ntorch.load('m.pt')", [2]),
        ("import torch\ntorch.load('m.pt', weights_only=True)", []),
        ("import torch\ntorch.load('m.pt', weights_only=False)", [2]),
        ("import torch as T\nT.load('m.pt', map_location='cpu')", [2]),
        ("from torch import load\nload('m.pt')", [2]),
        ("from torch import load as L\nL('m.pt', weights_only=True)", []),
        ("import torch\ntorch.serialization.load('m.pt')", [2]),
        ("import json\njson.load(f)", []),
    ],
)
def test_scanner_finds_unsafe_torch_load(source, expected):
    assert unsafe_torch_loads(source) == expected


def test_every_torch_load_in_the_package_is_weights_only():
    found = {}
    for path in _package_sources():
        bad = unsafe_torch_loads(path.read_text(encoding="utf-8"))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    assert not found, f"torch.load without weights_only=True at {found}"


def test_bundle_config_expressions_do_not_call_torch_load_unsafely():
    configs = sorted(BUNDLES.rglob("*.json"))
    assert configs, f"no bundle configs under {BUNDLES}"
    for path in configs:
        text = path.read_text(encoding="utf-8")
        json.loads(text)  # a valid config
        for match in re.finditer(r"torch\.load\(([^\"]*)", text):
            assert "weights_only=True" in match.group(1), f"{path}: {match.group(0)}"


def test_monai_checkpoint_loader_used_by_the_bundle_is_weights_only():
    from monai.bundle.config_item import ComponentLocator
    from monai.handlers import CheckpointLoader

    source = textwrap.dedent(inspect.getsource(CheckpointLoader.__call__))
    tree = ast.parse(source)
    loads = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) == "torch.load"]
    assert loads, "MONAI's CheckpointLoader.__call__ no longer calls torch.load: review how it loads checkpoints"
    assert all(_is_true(n, "weights_only") for n in loads), "CheckpointLoader calls torch.load without weights_only"
    # the bundle's "_target_": "CheckpointLoader" resolves to that class
    targets = [p for p in BUNDLES.rglob("*.json") if '"CheckpointLoader"' in p.read_text(encoding="utf-8")]
    assert targets, "the bundle no longer uses CheckpointLoader: review how it loads checkpoints"
    assert ComponentLocator().get_component_module_name("CheckpointLoader") in (
        CheckpointLoader.__module__,
        [CheckpointLoader.__module__],
    )
    # and so does the package's resumable checkpointing
    checkpointing = ast.parse((PACKAGE / "handlers" / "checkpointing.py").read_text(encoding="utf-8"))
    assert any(
        isinstance(n, ast.ImportFrom)
        and n.module == "monai.handlers"
        and "CheckpointLoader" in {a.name for a in n.names}
        for n in ast.walk(checkpointing)
    )


def test_no_pickle_based_serialisation_in_the_package():
    found = []
    for path in _package_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{where}:{node.lineno} import {a.name}" for a in node.names if a.name in PICKLE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
                found.append(f"{where}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func) or ""
                if name.endswith("read_pickle") or (name.split(".")[-1] == "load" and _is_true(node, "allow_pickle")):
                    found.append(f"{where}:{node.lineno} {name}(...)")
    assert not found, f"pickle-based (de)serialisation found: {found}"
