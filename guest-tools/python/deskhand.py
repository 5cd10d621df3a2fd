"""What a script can ask of deskhand besides the sandbox's own files.

Granted folders are read-only inside the sandbox, so a script does not move,
delete or overwrite the person's files itself: it proposes each change here,
and deskhand checks, shows and applies them as one changeset after the script
has finished (the same path as the `fs` tool's move/delete/save; undoable).
Files under output/ can be written directly.

    import deskhand
    deskhand.propose_move("/data/a.txt", "/data/archive/a.txt")
    deskhand.propose_delete("/data/old.tmp")
    deskhand.propose_save("/data/notes.txt", "new text")   # or bytes
    deskhand.progress(3, 10, "reading receipts")
    deskhand.log("info", "skipped 2 empty rows")
"""

import os

from wit_world.imports import host
from wit_world.imports import types as wit

#: Where staged content goes; the host gives every call a fresh, empty one.
SCRATCH = "/.deskhand-scratch"
#: The largest content one `propose_save` may stage.
MAX_SAVE_BYTES = 64 * 1024 * 1024
#: The most changes one script may propose.
MAX_CHANGES = 10_000

_changes = []
_proposed = []

_LEVELS = {
    "debug": host.Level.DEBUG,
    "info": host.Level.INFO,
    "warn": host.Level.WARN,
    "warning": host.Level.WARN,
    "error": host.Level.ERROR,
}


def _absolute(path, what):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or pathlib.Path), not {type(path).__name__}")
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{what} is empty")
    return os.path.normpath(os.path.abspath(text))


def _add(change, summary):
    if len(_changes) >= MAX_CHANGES:
        raise RuntimeError(f"a script may propose at most {MAX_CHANGES} changes")
    _changes.append(change)
    _proposed.append(summary)


def propose_move(source, target):
    """Propose renaming or moving `source` to `target` (which must not exist).

    A new name in the same folder is a rename; another folder is a move.
    """
    src = _absolute(source, "source")
    dst = _absolute(target, "target")
    if not os.path.lexists(src):
        raise FileNotFoundError(2, "cannot propose to move a path that does not exist", src)
    pair = wit.PathPair(source=src, target=dst)
    if os.path.dirname(src) == os.path.dirname(dst):
        _add(wit.Change_Rename(pair), {"proposed": "rename", "path": src, "to": dst})
    else:
        _add(wit.Change_Move(pair), {"proposed": "move", "path": src, "to": dst})


def propose_delete(path):
    """Propose deleting a file (the person is always asked; it goes to the trash)."""
    target = _absolute(path, "path")
    if not os.path.lexists(target):
        raise FileNotFoundError(2, "cannot propose to delete a path that does not exist", target)
    _add(wit.Change_Delete(target), {"proposed": "delete", "path": target})


def propose_save(path, content):
    """Propose writing `content` (str, UTF-8, or bytes) to `path`: a new file,
    or an overwrite whose previous version deskhand keeps for undo."""
    target = _absolute(path, "path")
    if isinstance(content, str):
        data = content.encode("utf-8")
    elif isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
    else:
        raise TypeError(f"content must be str or bytes, not {type(content).__name__}")
    if len(data) > MAX_SAVE_BYTES:
        raise ValueError(f"content for {target} is {len(data)} bytes; the cap is {MAX_SAVE_BYTES}")
    staged = f"{SCRATCH}/save-{len(_changes)}"
    with open(staged, "xb") as f:
        f.write(data)
    file = wit.StagedFile(path=target, staged=staged)
    if os.path.lexists(target):
        _add(wit.Change_Overwrite(file), {"proposed": "overwrite", "path": target, "size": len(data)})
    else:
        _add(wit.Change_Create(file), {"proposed": "create", "path": target, "size": len(data)})


def progress(done, total=None, message=""):
    """Report progress of long work (`total` may be None when unknown)."""
    host.progress(max(0, int(done)), None if total is None else max(0, int(total)), str(message))


def log(level, message=None):
    """A line for the run's log: `log("warn", "...")`, or `log("...")` at info."""
    if message is None:
        level, message = "info", level
    host.log(_LEVELS.get(str(level).lower(), host.Level.INFO), str(message))


def _take():
    """The changes proposed so far and their summaries (for the runner)."""
    return list(_changes), list(_proposed)
