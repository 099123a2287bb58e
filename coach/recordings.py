"""Where a recording named in an event is on this process's filesystem.

Asterisk reports its own path (`/var/spool/asterisk/monitor/coach/<name>.raw`); a service reads
the recordings' volume mounted elsewhere (`RECORDINGS_DIR`, e.g. /recordings in compose). The
relay's audio route and the second pass find the file the same way, and never outside the
folder: the path comes from the bus, and a path the bus carries must not open other files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def locate(reported: str, recordings_dir: Path) -> Path | None:
    """The file under `recordings_dir` that `reported` names, or None.

    The longest tail of the reported path that exists under the folder wins
    (`coach/<name>.raw`, then `<name>.raw`); a reported path already inside the folder is
    taken as it is; `..` and symlinks that lead out of the folder are refused."""
    base = recordings_dir.resolve()
    parts = [p for p in PurePosixPath(reported).parts if p not in ("/", "..", ".")]
    for first in range(len(parts)):
        candidate = base.joinpath(*parts[first:]).resolve()
        if base in candidate.parents and candidate.is_file():
            return candidate
    inside = Path(reported).resolve()
    if base in inside.parents and inside.is_file():
        return inside
    return None
