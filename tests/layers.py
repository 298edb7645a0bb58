"""The import contract between the layers, checked by `make lint` (`python -m tests.layers`)
and by tests/unit/test_layers.py.

The pure layers, `placement.core` (the models, the decision, the plan and its executor) and
`placement.replay`, import no Kubernetes or HTTP client and nothing from `placement.adapters`,
`placement.runtime` or `placement.localenv`, so every rule can be tested without a cluster
and replay runs exactly what the operator runs. The adapters and the runtime may import
anything.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "operator" / "placement"

# The pure layers: every module under these subpackages.
PURE = ("core", "replay")
FORBIDDEN = frozenset(
    {
        "aiohttp",
        "kopf",
        "kubernetes",
        "prometheus_api_client",
        "prometheus_client",
        "requests",
        "urllib3",
    }
)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):  # nested and TYPE_CHECKING imports included
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def violations(source: str, filename: str) -> list[str]:
    """Each import of `source` (a pure module) that breaks the contract."""
    found = []
    for line, module in _imports(ast.parse(source, filename)):
        top, _, rest = module.partition(".")
        inner = rest.partition(".")[0]
        if top in FORBIDDEN:
            found.append(f"{filename}:{line}: imports {module}, a client library")
        elif top == "placement" and inner not in PURE:
            found.append(f"{filename}:{line}: imports {module}, an adapter or runtime module")
    return found


def pure_modules(package: Path = PACKAGE) -> list[Path]:
    return sorted(path for layer in PURE for path in (package / layer).glob("*.py"))


def check(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in pure_modules(package):
        name = f"operator/placement/{path.relative_to(package).as_posix()}"
        found += violations(path.read_text(), name)
    return found


def main(argv: list[str]) -> int:
    """Exit status 1 and one line per violation; argv[0]: another package directory."""
    found = check(Path(argv[0])) if argv else check()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
