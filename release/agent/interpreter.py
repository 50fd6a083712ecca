"""The host's interpreter, machine and C library, and the agent's own floor.

Written for any Python 3: the loader imports it before anything else, so a host whose python3
is too old for the agent answers with what it has instead of a traceback.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping

#: The oldest interpreter the agent (and every release) runs on.
FLOOR = (3, 11)
#: The exit code of an agent that refused its interpreter.
TOO_OLD = 3


def facts() -> dict[str, str | None]:
    """python, implementation, machine and glibc version, as `HostPlatform` names them."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not glibc (musl has no such name)
        libc = ""
    name, _, version = libc.partition(" ")
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "glibc": version if name == "glibc" and version else None,
    }


def too_old(found: Mapping[str, object]) -> dict[str, object] | None:
    """The hello an agent on that interpreter answers with instead of serving (None: it serves)."""
    version = tuple(int(part) for part in str(found["python"]).split(".")[:2])
    if version >= FLOOR:
        return None
    floor = ".".join(str(part) for part in FLOOR)
    return {"ok": False, "error": f"python3 is {found['python']}, not {floor}+", "platform": found}


def refuse_if_too_old() -> None:
    """Below FLOOR: say so as the hello, with what the host has, and exit."""
    refusal = too_old(facts())
    if refusal is not None:
        sys.stdout.write(json.dumps(refusal) + "\n")
        sys.stdout.flush()
        sys.exit(TOO_OLD)
