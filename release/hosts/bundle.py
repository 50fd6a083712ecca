"""The agent package as it travels: one line on the SSH channel's stdin, never the command line.

`BOOTSTRAP` (the only thing on the command line) reads that line, a compressed loader holding
every module's source, and runs it; the loader serves the modules from memory under the name
`helionyx_agent` and starts the serve loop. Linux refuses a single argument over 128 kB; stdin
has no such wall.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import release.agent

#: What `python3 -c` runs on the host.
BOOTSTRAP = (
    "import base64,sys,zlib;"
    "exec(compile(zlib.decompress(base64.b64decode(sys.stdin.readline())),"
    "'helionyx-agent','exec'))"
)

#: The agent's package name on the host (its modules import each other relatively).
HOST_PACKAGE = "helionyx_agent"

_LOADER = """
import importlib.machinery, sys
SOURCES = {sources!r}
class Loader:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in SOURCES:
            return importlib.machinery.ModuleSpec(name, Loader, is_package=SOURCES[name][0])
        return None
    @staticmethod
    def create_module(spec):
        return None
    @staticmethod
    def get_source(name):
        return SOURCES[name][1]
    @staticmethod
    def exec_module(module):
        package, source = SOURCES[module.__name__]
        filename = "helionyx-agent/" + module.__name__.replace(".", "/") + (
            "/__init__.py" if package else ".py")
        exec(compile(source, filename, "exec"), module.__dict__)
sys.meta_path.insert(0, Loader)
from {package}.interpreter import refuse_if_too_old
refuse_if_too_old()
from {package}.serve import serve
sys.exit(serve())
"""


def sources(directory: Path, package: str = HOST_PACKAGE) -> dict[str, tuple[bool, str]]:
    """{module name: (is package, source)} of every module of the package in `directory`."""
    modules: dict[str, tuple[bool, str]] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name == "__main__.py":
            continue
        if path.name == "__init__.py":
            modules[package] = (True, path.read_text(encoding="utf-8"))
        else:
            modules[f"{package}.{path.stem}"] = (False, path.read_text(encoding="utf-8"))
    return modules


def agent_bundle(modules: dict[str, tuple[bool, str]], package: str = HOST_PACKAGE) -> str:
    """The one line BOOTSTRAP reads: the loader with `modules`, compressed, base64."""
    loader = _LOADER.format(sources=modules, package=package)
    return base64.b64encode(zlib.compress(loader.encode(), 9)).decode()


#: Read as text, not imported: it runs on the host, not here.
AGENT_BUNDLE = agent_bundle(sources(Path(release.agent.__file__).parent))
