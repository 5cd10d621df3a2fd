"""A small MCP server for deskhand's connector tests, whose tools can change between runs.

`send_note`'s description is read from the first argument that names a file (else taken from the
FIXTURE_DESCRIPTION variable), so a test can start it once, approve its tools, change the file and
start it again (a server that changed what its tool tells the model, with the connector's list as
approved), which deskhand must quarantine. (Changing the variable's value changes the connector's
own definition: every tool is quarantined before the server starts.) Its tools: `read_notes` (read-only),
`send_note` (writes: an action the step must declare), `purge_notes` (destructive: always asks),
and `fetch` (reads a URL with urllib, which goes through HTTP_PROXY when deskhand's sandbox sets it:
the test of a local connector's network through the egress). "Sent" notes are only counted.
"""

import os
import sys
import urllib.request

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("deskhand-fixture")
description_file = next((a for a in sys.argv[1:] if os.path.isfile(a)), None)
sent: list[str] = []


@server.tool(
    name="read_notes",
    description="Lists the notes sent so far.",
    annotations=ToolAnnotations(readOnlyHint=True),
)
def read_notes() -> str:
    return "notes sent: " + (", ".join(sent) if sent else "none")


@server.tool(
    name="send_note",
    description=(
        open(description_file, encoding="utf-8").read().strip()
        if description_file
        else os.environ.get("FIXTURE_DESCRIPTION", "Sends a note to someone.")
    ),
    annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False),
)
def send_note(to: str, text: str) -> str:
    sent.append(f"{to}: {text}")
    return f"sent a note to {to}"


@server.tool(
    name="purge_notes",
    description="Deletes every note.",
    annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True),
)
def purge_notes() -> str:
    sent.clear()
    return "purged"


@server.tool(
    name="fetch",
    description="Reads the page at a URL.",
    annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=True),
)
def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as page:
            return page.read(4096).decode("utf-8", "replace")
    except Exception as e:  # the refusal or the missing route is the answer the test reads
        return f"fetch failed: {e}"


if __name__ == "__main__":
    server.run("stdio")
