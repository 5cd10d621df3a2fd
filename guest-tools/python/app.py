"""The `python` tool: runs a script a model wrote, in the sandbox.

Built by componentize-py (CPython for WASI) against deskhand's `tool` world;
`runtime/build.rs` does that. The script sees only the call's preopened
folders (granted folders read-only, output/ writable), no network and no
environment; deskhand's deadline and memory cap stop it. Its `print()`
output comes back capped; its result is the variable `result` if the script
sets one, else the value of its last line when that is an expression. An
exception comes back as a typed error carrying the traceback.
"""

import ast
import builtins
import errno
import io
import json
import os
import sys
import time
import traceback

import preimport  # noqa: F401  (the standard library scripts can import)
import deskhand
from componentize_py_types import Err
from wit_world.imports import types as wit

SCRIPT_NAME = "<script>"
MAX_RESULT_BYTES = 1024 * 1024
MAX_SCRIPT_BYTES = 1024 * 1024
#: How much of what the script printed an error carries.
ERROR_OUTPUT_TAIL = 4096
#: How much of the printed output and of the result the short text shows.
TEXT_PREVIEW = 2000
ENOTCAPABLE = getattr(errno, "ENOTCAPABLE", 76)

# Read at build time (the snapshot keeps it). The host embeds the same file, so
# listing the tools does not compile this 23 MB component.
with open(os.path.join(os.path.dirname(__file__), "description.json"), encoding="utf-8") as _f:
    DESCRIPTION = json.load(_f)
_RUN = DESCRIPTION["operations"][0]
ARGS = _RUN["args_schema"]["properties"]
DEFAULT_OUTPUT_BYTES = ARGS["max_output_bytes"]["default"]
MAX_OUTPUT_BYTES = ARGS["max_output_bytes"]["maximum"]


class _Capture(io.TextIOBase):
    """A text stream that keeps the first `cap` bytes and counts the rest."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.kept = 0
        self.total = 0

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        data = s.encode("utf-8", "replace")
        self.total += len(data)
        room = self.cap - self.kept
        if room > 0:
            piece = data[:room]
            self.parts.append(piece)
            self.kept += len(piece)
        return len(s)

    def text(self):
        return b"".join(self.parts).decode("utf-8", "replace")

    @property
    def truncated(self):
        return self.total > self.kept

    def tail(self, n):
        text = self.text()
        return text[-n:] if len(text) > n else text


def _jsonable(value):
    """How a result that json cannot encode is returned."""
    import datetime
    import decimal
    import fractions
    import pathlib

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, fractions.Fraction, pathlib.PurePath, complex)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if hasattr(value, "_asdict"):
        return value._asdict()
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def _path_error(path, message):
    return wit.PathError(path=path, message=message)


def _fail(variant, path, message):
    raise Err(variant(_path_error(path, message)))


def _script_traceback(exc):
    """The traceback from the script's own frames on (the runner's are noise)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SCRIPT_NAME:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _with_output(message, stdout):
    printed = stdout.tail(ERROR_OUTPUT_TAIL)
    if printed:
        return f"{message}\n--- the script printed (last {ERROR_OUTPUT_TAIL} characters at most) ---\n{printed}"
    return message


def _importable():
    """The top-level modules a script can import (those imported at build time)."""
    names = {name.split(".")[0] for name in sys.modules}
    return sorted(n for n in names if not n.startswith("_") and n not in ("app", "preimport", "wit_world"))


def _raise_script_error(exc, stdout):
    message = _script_traceback(exc)
    if isinstance(exc, ModuleNotFoundError):
        message += (
            "Only the standard library modules built into this tool can be imported (no pip packages): "
            + ", ".join(_importable())
            + "\n"
        )
    message = _with_output(message, stdout)
    path = getattr(exc, "filename", None)
    path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else SCRIPT_NAME
    if isinstance(exc, OSError):
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, ENOTCAPABLE):
            _fail(wit.ToolError_Denied, path, message)
        if isinstance(exc, FileNotFoundError):
            _fail(wit.ToolError_NotFound, path, message)
        if isinstance(exc, FileExistsError):
            _fail(wit.ToolError_AlreadyExists, path, message)
    _fail(wit.ToolError_BadContent, SCRIPT_NAME, message)


def _parse_args(raw):
    try:
        args = json.loads(raw)
    except ValueError as e:
        raise Err(wit.ToolError_InvalidArgs(f"the arguments are not JSON: {e}"))
    if not isinstance(args, dict):
        raise Err(wit.ToolError_InvalidArgs("the arguments must be a JSON object"))
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise Err(wit.ToolError_InvalidArgs(f"unknown argument(s) {unknown}; expected script, args, cwd, max_output_bytes"))
    script = args.get("script")
    if not isinstance(script, str):
        raise Err(wit.ToolError_InvalidArgs("script is required and must be a string of Python source"))
    if len(script.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise Err(wit.ToolError_InvalidArgs(f"script is over {MAX_SCRIPT_BYTES} bytes; read large data from a file instead"))
    argv = args.get("args", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise Err(wit.ToolError_InvalidArgs("args must be a list of strings"))
    cwd = args.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise Err(wit.ToolError_InvalidArgs("cwd must be a path (a string)"))
    cap = args.get("max_output_bytes", DEFAULT_OUTPUT_BYTES)
    if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_OUTPUT_BYTES:
        raise Err(wit.ToolError_InvalidArgs(f"max_output_bytes must be an integer from 1 to {MAX_OUTPUT_BYTES}"))
    return script, argv, cwd, cap


def _compile(script, stdout):
    """The script's code, plus its last line compiled as an expression when it is one."""
    try:
        tree = ast.parse(script, SCRIPT_NAME, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), SCRIPT_NAME, "eval")
        return compile(tree, SCRIPT_NAME, "exec"), last
    except SyntaxError as e:
        message = "".join(traceback.format_exception_only(type(e), e))
        _fail(wit.ToolError_BadContent, SCRIPT_NAME, _with_output(message, stdout))


def _run(raw_args):
    script, argv, cwd, cap = _parse_args(raw_args)
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as e:
            variant = wit.ToolError_NotFound if isinstance(e, FileNotFoundError) else wit.ToolError_Denied
            _fail(variant, cwd, f"cannot start the script in this folder: {e.strerror or e}")
    # Tracebacks show the script's lines.
    import linecache

    linecache.cache[SCRIPT_NAME] = (len(script), None, script.splitlines(True), SCRIPT_NAME)
    stdout, stderr = _Capture(cap), _Capture(cap)
    code, last = _compile(script, stdout)
    scope = {"__name__": "__main__", "__builtins__": builtins, "__file__": SCRIPT_NAME}
    saved = sys.stdout, sys.stderr, sys.argv
    sys.stdout, sys.stderr, sys.argv = stdout, stderr, [SCRIPT_NAME, *argv]
    started = time.monotonic()
    value = None
    try:
        exec(code, scope)
        if last is not None:
            value = eval(last, scope)
    except SystemExit as e:
        if e.code not in (None, 0):
            sys.stdout, sys.stderr, sys.argv = saved
            _fail(wit.ToolError_BadContent, SCRIPT_NAME, _with_output(f"the script exited with status {e.code!r}", stdout))
    except BaseException as e:  # noqa: BLE001  (every failure goes back to the model)
        sys.stdout, sys.stderr, sys.argv = saved
        _raise_script_error(e, stdout)
    finally:
        sys.stdout, sys.stderr, sys.argv = saved
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    if "result" in scope:
        value = scope["result"]
    try:
        result_json = json.dumps(value, default=_jsonable, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        _fail(wit.ToolError_BadContent, SCRIPT_NAME, f"the script's result cannot be returned as JSON: {e}")
    if len(result_json) > MAX_RESULT_BYTES:
        _fail(
            wit.ToolError_TooLarge,
            SCRIPT_NAME,
            f"the script's result is {len(result_json)} bytes as JSON (cap {MAX_RESULT_BYTES}); "
            "write large data to a file under output/ and return a summary",
        )
    changes, proposed = deskhand._take()
    out = {
        "result": json.loads(result_json),
        "stdout": stdout.text(),
        "stdout_bytes": stdout.total,
        "stdout_truncated": stdout.truncated,
        "stderr": stderr.text(),
        "stderr_truncated": stderr.truncated,
        "proposed": proposed,
        "elapsed_ms": elapsed_ms,
    }
    text = f"the script finished in {elapsed_ms} ms; printed {stdout.total} bytes"
    if stdout.truncated:
        text += f" (only the first {stdout.kept} kept: print less, or write to a file under output/)"
    if changes:
        text += f"; proposed {len(changes)} change(s)"
    # A short view for people (`deskhand tool run`); the JSON has everything.
    printed = stdout.text()
    if printed:
        text += "\n" + (printed if len(printed) <= TEXT_PREVIEW else printed[:TEXT_PREVIEW] + "…")
    if value is not None or "result" in scope:
        text += "\nresult: " + (result_json if len(result_json) <= TEXT_PREVIEW else result_json[:TEXT_PREVIEW] + "…")
    return wit.Output(json=json.dumps(out, ensure_ascii=False), text=text, changes=changes)


class WitWorld:
    def describe(self):
        return wit.Description(
            name=DESCRIPTION["name"],
            version=DESCRIPTION["version"],
            summary=DESCRIPTION["summary"],
            operations=[
                wit.Operation(
                    name=op["name"],
                    summary=op["summary"],
                    args_schema=json.dumps(op["args_schema"]),
                    effects=wit.Effects(**op["effects"]),
                )
                for op in DESCRIPTION["operations"]
            ],
        )

    def run(self, operation, args):
        if operation != "run":
            raise Err(wit.ToolError_UnknownOperation(operation))
        return _run(args)
