"""The package's floors: imports go only downwards, with no cycles and no private names.

A lower layer never imports an upper one, modules form no import cycle and no module imports a
private name from another module.

Layers, bottom up: the foundation (``errors``, ``registry``, ``_version``), the blocks (audio,
data, frontends, encoders, heads, losses, augment), ``tasks``, ``train``, ``model``, the drivers
that use a trained model (``evaluate``, ``export``, ``hear``, ``pitch``) and the front doors
(``cli``, ``demo``). Imports inside functions count too: a lazy import up is still an arrow up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pocketear"
LAYERS: dict[str, int] = {
    "_version": 0, "errors": 0, "registry": 0,
    "audio": 1, "data": 1, "frontends": 1, "encoders": 1, "heads": 1, "losses": 1, "augment": 1,
    "tasks": 2, "train": 3, "model": 4, "federated": 4,
    "evaluate": 5, "export": 5, "hear": 5, "pitch": 5,
    "cli": 6, "demo": 6, "__main__": 6,
}


def _module_name(path: Path) -> str:
    parts = ["pocketear", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``pocketear`` import in ``path``, relative ones resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("pocketear")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "pocketear") and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _floor(module: str) -> tuple[str, int] | None:
    """The top-level part of a ``pocketear`` module and its layer (None: the package itself)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1], LAYERS[parts[1]]


def test_every_top_level_part_has_a_layer() -> None:
    parts = {m.split(".")[1] for m in MODULES if "." in m}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "pocketear"])
def test_no_arrow_up_and_no_private_import(module: str) -> None:
    _, layer = _floor(module)  # type: ignore[misc]
    for target, names in _imports(MODULES[module]):
        floor = _floor(target)
        if floor is None:  # `from pocketear import __version__, register`: the facade's names
            assert not any(n in ("load", "pretrain") for n in names), (module, names)
            continue
        assert floor[1] <= layer, f"{module} (layer {layer}) imports {target} (layer {floor[1]})"
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{module} imports private {private} from {target}"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, names in _imports(path):
            for name in [f"{target}.{n}" for n in names] or [target]:
                dep = name if name in MODULES else target
                if dep in MODULES and dep != module and dep != "pocketear":
                    graph[module].add(dep)
    return graph


def test_no_import_cycles() -> None:
    graph, state, cycles = _graph(), {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    # a package's __init__ importing its own submodules is not a cycle of the code
    real = [c for c in cycles if not any(MODULES[x].name == "__init__.py" for x in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)
