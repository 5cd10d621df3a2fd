"""A small MCP server over Streamable HTTP for deskhand's connector tests, whose tool list grows.

`grow` adds the tool `extra` and tells the client so unprompted: the notification is not tied to
the request, so the server sends it on the client's listening stream (`subscriptions/listen`, or
the GET stream of earlier revisions), which a client hears only if it keeps one open. Run: python listening_server.py PORT (serves
http://127.0.0.1:PORT/mcp).
"""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("deskhand-listening")


def extra() -> str:
    return "the extra tool"


@server.tool(name="grow", description="Adds a tool named extra.")
async def grow(ctx: Context) -> str:
    server.add_tool(extra, name="extra", description="A tool added while the server ran.")
    # 2026-07-28 and later: to the client's `subscriptions/listen` stream;
    # earlier revisions: to its GET stream (each is dropped in the other era).
    await ctx.notify_tools_changed()
    await ctx.session.send_tool_list_changed()
    return "grown"


if __name__ == "__main__":
    print(f"listening on port {sys.argv[1]}", flush=True)
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
