"""The package shows its pipeline: rooms in layers, imports only downwards, no circle.

Read from the source with ``ast`` (every import, the lazy ones inside functions included), so a
new module or import that breaks the layering fails here, with the offending line named.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vbgm_core"

# Bottom to top. A room may import from its own layer (without a circle) and from any below.
LAYERS = (
    ("errors", "files", "progress", "figures", "media"),      # cross-cutting rooms
    ("music",),            # tokens, harmony, instruments, the sampler: what music is
    ("options",),          # what a user may choose (checked against music's vocabulary)
    ("video", "model", "audio", "metrics", "timeline", "training"),   # the stages
    ("source", "scorer", "plot"),                              # one scoring run
    ("api", "batch", "evaluation"),                            # many runs, and the public call
    ("cli", "__main__"),
)
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _modules():
    """``{dotted module name: path}`` of every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name, path):
    """``[(line, imported vbgm_core module)]`` of one module, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from . import x`` may name a submodule (then the import is of it) or a name
            found += [(node.lineno, (target, a.name)) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in found
            if (t[0] if isinstance(t, tuple) else t).split(".")[0] == "vbgm_core"]


def _graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for line, target in _imports(name, path):
            if isinstance(target, tuple):   # from PACKAGE import NAME: a submodule, or a name
                package, attr = target
                target = f"{package}.{attr}" if f"{package}.{attr}" in modules else package
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target != name and target in modules:
                edges.add((line, target))
        graph[name] = edges
    return modules, graph


def _room(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_layer():
    rooms = {_room(m) for m in _modules()} - {"__init__"}
    assert rooms <= set(LAYER), f"rooms without a layer: {sorted(rooms - set(LAYER))}"


def test_imports_only_go_down_or_across():
    modules, graph = _graph()
    upward = [f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
              for m, edges in graph.items() if _room(m) != "__init__"
              for line, t in edges
              if _room(t) != "__init__" and LAYER[_room(t)] > LAYER[_room(m)]]
    assert not upward, "imports that run back up:\n" + "\n".join(sorted(upward))


def _cycle(graph):
    """One circle of the graph ``{node: {successors}}`` as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = "done"
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_circle_between_modules_or_rooms():
    _, graph = _graph()
    modules = {m: {t for _, t in edges} for m, edges in graph.items()}
    assert _cycle(modules) is None, f"modules import each other in a circle: {_cycle(modules)}"
    rooms = {}
    for m, targets in modules.items():
        rooms.setdefault(_room(m), set()).update(
            _room(t) for t in targets if _room(t) not in (_room(m), "__init__"))
    assert _cycle(rooms) is None, f"rooms import each other in a circle: {_cycle(rooms)}"


def test_the_checks_catch_what_they_should():
    """The layout checks themselves: a circle and an upward import are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert LAYER["music"] < LAYER["options"] < LAYER["audio"] < LAYER["scorer"] < LAYER["cli"]
