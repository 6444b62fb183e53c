"""What `make run` installs is enough to run the platform.

`make run` syncs only `[project].dependencies` (and what they pull in); the test and bench
tools live in the `dev` and `bench` dependency groups, which only `make test` and
`make bench` install. The suite always has every group installed, so an import of a tool
from `src/govshare` would pass here and fail on a fresh `make run`; these tests catch it
from the source and the lock file instead."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "govshare"


def normalized(name: str) -> str:
    """A distribution name as the lock file spells it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return normalized(match.group())


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def runtime_closure() -> set[str]:
    """Every distribution `uv sync --no-default-groups` installs: govshare's own
    dependencies in uv.lock, with their extras, followed transitively. Environment markers
    are not evaluated, so a package needed only on another platform counts too; the set
    can only be too large, never miss what a Linux install has."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    packages = {normalized(p["name"]): p for p in lock["package"]}
    seen: set[str] = set()
    todo: list[dict[str, Any]] = list(packages["govshare"]["dependencies"])
    while todo:
        dep = todo.pop()
        name = normalized(dep["name"])
        package = packages[name]
        optional = package.get("optional-dependencies", {})
        for extra in dep.get("extra", []):
            todo.extend(optional[extra])
        if name not in seen:
            seen.add(name)
            todo.extend(package.get("dependencies", []))
    return seen


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(nodes: Iterable[ast.AST]) -> Iterator[tuple[str, int]]:
    """Top-level names of the absolute imports that run: everything but the bodies of
    `if TYPE_CHECKING:` (mypy reads those; the interpreter never does)."""
    for node in nodes:
        if isinstance(node, ast.If) and is_type_checking(node):
            yield from imported_modules(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.partition(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno
        yield from imported_modules(ast.iter_child_nodes(node))


def test_no_test_or_bench_tool_is_a_runtime_dependency() -> None:
    project = pyproject()
    runtime = {requirement_name(r) for r in project["project"]["dependencies"]}
    groups = project["dependency-groups"]
    tools = {requirement_name(r) for group in ("dev", "bench") for r in groups[group]}
    assert runtime & tools == set()


def lazy_import_lines(tree: ast.AST) -> set[int]:
    """Lines of the imports inside a function body: they run only when it is called."""
    return {
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    }


def test_the_platform_imports_only_what_make_run_installs() -> None:
    """An optional extra's package (connectorx) may be imported only inside a function,
    which the platform calls after finding the package installed."""
    closure = runtime_closure()
    extras = {
        requirement_name(r)
        for group in pyproject()["project"]["optional-dependencies"].values()
        for r in group
    }
    owners = importlib.metadata.packages_distributions()
    missing: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        lazy = lazy_import_lines(tree)
        for module, line in imported_modules([tree]):
            if module == "govshare" or module in sys.stdlib_module_names:
                continue
            dists = {normalized(d) for d in owners.get(module, [])}
            if dists and dists <= extras and line in lazy:
                continue
            if not dists & closure:
                where = f"{path.relative_to(ROOT)}:{line}"
                missing.append(f"{where} imports {module} ({', '.join(sorted(dists)) or '?'})")
    assert not missing, "\n".join(missing)


def test_the_closure_holds_the_runtime_and_none_of_the_tools() -> None:
    """The lock walk itself: it reaches what the platform is built on (pyarrow, uvicorn's
    fast loop and parser) and none of the group-only tools, so the test above compares
    against the right set."""
    closure = runtime_closure()
    assert {"fastapi", "pyarrow", "uvloop", "httptools", "psycopg-binary"} <= closure
    assert closure.isdisjoint(
        {"pytest", "playwright", "mypy", "ruff", "datasette", "py-spy", "faker", "gmssl"}
    )


def test_drivers_of_other_databases_are_extras_not_runtime_dependencies() -> None:
    """Oracle's and SQL Server's drivers are installed only on the nodes that need them
    (`govshare[oracle]`, `govshare[sqlserver]`); the suite compiles their SQL without them.
    The native reader (`govshare[fastread]`) is an extra too, but the dev group has it: the
    suite tests it against the real servers it starts."""
    extras = pyproject()["project"]["optional-dependencies"]
    drivers = {requirement_name(r) for name in ("oracle", "sqlserver") for r in extras[name]}
    fast = {requirement_name(r) for r in extras["fastread"]}
    assert set(extras) == {"oracle", "sqlserver", "fastread"}
    assert drivers == {"oracledb", "pyodbc"}
    assert fast == {"connectorx"}
    assert runtime_closure().isdisjoint(drivers | fast)
    dev = {requirement_name(r) for r in pyproject()["dependency-groups"]["dev"]}
    assert dev.isdisjoint(drivers)
    assert fast <= dev
