"""The package's parts and their arrows: no import cycle, the layers import downwards only,
and the core knows nothing of the CLI, the service or the simulator (docs/architecture.md)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "loadbench"
# bottom to top: a part may import parts at or below its own rank
LAYERS = ["_version", "config", "pacing", "scoring", "stats", "views", "plan", "drive", "scale", "engine", "sim", "service", "cli", "api"]
CORE = {"config", "pacing", "scoring", "stats", "views", "plan", "drive", "scale", "engine"}
MAX_FUNCTION_LINES = 120


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every loadbench module this file imports (top-level and inside functions)."""
    mod = module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                 for n in ast.walk(block)}  # imports for annotations only: no arrow at run time
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("loadbench"):
                out.add(target)
                for alias in node.names:  # `from . import module`
                    candidate = f"{target}.{alias.name}"
                    if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists():
                        out.add(candidate)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("loadbench")}
    out.discard(mod)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else None


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if nxt not in g:
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node)


def test_layers_import_downwards_and_the_core_knows_no_edge():
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for mod, deps in graph().items():
        src = part(mod)
        if src not in rank:
            continue
        for dep in deps:
            dst = part(dep)
            if dst in rank and rank[dst] > rank[src]:
                wrong.append(f"{mod} -> {dep}")
            if src in CORE and dst in {"cli", "service", "sim", "api"}:
                wrong.append(f"core {mod} -> {dep}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_every_module_says_what_it_is_for():
    missing = [module_name(p) for p in PACKAGE.rglob("*.py") if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, missing


def test_parts_are_folders_and_the_top_level_is_the_public_api():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_version.py", "api.py"], top
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYERS) - {"api", "_version"}


def test_no_function_is_far_too_long():
    long = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module_name(p)}.{node.name}: {lines} lines")
    assert not long, "\n".join(long)


def test_no_module_is_far_too_long():
    long = [f"{module_name(p)}: {n} lines" for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 520]
    assert not long, "\n".join(long)
