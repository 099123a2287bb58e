"""Call recordings on disk: Asterisk's MixMonitor files (`.raw`) and WAVs.

Which file belongs to which call: ari's call id is the caller channel's id, which is Asterisk's
UNIQUEID, and the dialplan names the file `YYYYmmdd-HHMMSS-<UNIQUEID>.raw`
(asterisk/extensions.conf). A file whose name is the call id itself also belongs to it. Other
names are matched through what the text stores know (`call.ended.recording`, the call
record's recording column), by base name: paths are Asterisk's, not this container's.

Age is the file's modification time: MixMonitor writes until the call ends, so it is the
call's end. (The name's timestamp is the call's start in Asterisk's local time zone.)

Nothing outside `root` is touched: the walk does not follow symbolic links, and only regular
files with a recording suffix are removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from coach.retention import DataKind, Erasure, Removal

log = logging.getLogger("retention.recordings")

MIXMONITOR_NAME = re.compile(r"^\d{8}-\d{6}-(?P<call>.+)$")
"""`YYYYmmdd-HHMMSS-<UNIQUEID>` (the stem of a MixMonitor file)."""


def call_of(path: Path) -> str | None:
    """The call id a recording's name carries (its stem without a MixMonitor timestamp)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    match = MIXMONITOR_NAME.match(stem)
    return match.group("call") if match else stem or None


class RecordingsStore:
    """`coach.retention.Store` of the recordings directory (module docstring)."""

    name = "recordings"
    kind: DataKind = "audio"

    def __init__(self, root: Path, suffixes: tuple[str, ...] = (".raw", ".wav")) -> None:
        self.root = root
        self.suffixes = tuple(s.lower() for s in suffixes)

    def files(self) -> Iterator[tuple[Path, os.stat_result]]:
        """Every recording under `root` with its stat (symbolic links are not followed)."""
        for folder, dirs, names in os.walk(self.root, followlinks=False):
            dirs.sort()
            for name in sorted(names):
                if not name.lower().endswith(self.suffixes):
                    continue
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue  # removed meanwhile (the post-command deletes empty files)
                if path.is_symlink() or not path.is_file():
                    continue
                yield path, st

    async def purge_before(self, cutoff_ms: int) -> list[Removal]:
        """Remove recordings last written before the cutoff."""
        cutoff_s = cutoff_ms / 1000
        return await asyncio.to_thread(self._remove, lambda _p, st: st.st_mtime < cutoff_s)

    async def erase(self, request: Erasure) -> list[Removal]:
        """Remove the call's recordings: its id in the name, or a name some store knows."""
        names = request.recordings

        def belongs(path: Path, _: os.stat_result) -> bool:
            return path.name in names or call_of(path) == request.call_id

        return await asyncio.to_thread(self._remove, belongs)

    def _remove(self, chosen: Callable[[Path, os.stat_result], bool]) -> list[Removal]:
        out: list[Removal] = []
        for path, st in list(self.files()):
            if not chosen(path, st):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            out.append(
                Removal(
                    self.name,
                    "recording",
                    call_of(path),
                    1,
                    st.st_size,
                    str(path.relative_to(self.root)),
                )
            )
        return out

    async def close(self) -> None:
        """Nothing held open."""
