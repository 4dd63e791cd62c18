"""Layout: the package's imports form no cycle, and no module is too long to read."""
import ast
from pathlib import Path

import pipeline

PACKAGE = Path(pipeline.__file__).parent
MAX_LINES = 600


def module_files():
    """{dotted module name: path} of every module of the ``pipeline`` package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name, path, known):
    """The package's modules that module ``name`` imports anywhere in its file (inside
    functions too): ``import pipeline.x``, ``from pipeline import x``, ``from pipeline.x import y``
    and relative imports. Importing ``pipeline.a.b`` counts as importing the module itself,
    not the packages above it (their ``__init__`` runs, but holds only a docstring)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name and module != "pipeline"}


def import_graph():
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}  # module -> "visiting" | "done"
    stack = []

    def visit(module):
        state[module] = "visiting"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "visiting":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None
    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_import_walk_sees_every_form():
    graph = import_graph()
    assert "pipeline.schema" in graph["pipeline.cli"] and "pipeline.segment" in graph["pipeline.nightly"]
    assert "pipeline.config" in graph["pipeline.cli"]            # from pipeline.config import ...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_over_the_size_limit():
    long = {name: n for name, path in module_files().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
