"""``/leaderboard/{board_id}``: a small live page over the board's JSON, for people."""

from __future__ import annotations

import html
import json

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Scoreline · {title}</title>
<style>
 body {{ font: 15px system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; }}
 table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }}
 td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
 .muted {{ color: #777; font-size: 13px; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="muted">Top 50, refreshed every 2 s · source: <span id="source">-</span></p>
<table><thead><tr><th>#</th><th>member</th><th>points</th><th>exact</th></tr></thead>
<tbody id="lines"><tr><td colspan="4">waiting for the first results…</td></tr></tbody></table>
<script>
const board = {board};
async function refresh() {{
  const params = new URLSearchParams(location.search);
  const headers = params.get("token") ? {{"X-League-Token": params.get("token")}} : {{}};
  const r = await fetch(`/boards/${{encodeURIComponent(board)}}?limit=50`, {{headers}});
  const body = document.getElementById("lines");
  if (!r.ok) {{ body.innerHTML = `<tr><td colspan="4">${{r.status}}</td></tr>`; return; }}
  const page = await r.json();
  document.getElementById("source").textContent = page.source;
  body.replaceChildren(...page.data.map(l => {{
    const tr = document.createElement("tr");
    const cells = [[l.rank, "n"], [l.member_id, ""], [l.total, "n"], [l.exact_count, "n"]];
    for (const [v, cls] of cells) {{
      const td = document.createElement("td");
      td.textContent = v; td.className = cls; tr.append(td);
    }}
    return tr;
  }}));
}}
refresh(); setInterval(refresh, 2000);
</script></body></html>"""


@router.get("/leaderboard/{board_id}", response_class=HTMLResponse, include_in_schema=False)
async def leaderboard_page(board_id: str) -> HTMLResponse:
    """The board as a page that refreshes itself; data comes from ``/boards/{board_id}``."""
    board = json.dumps(board_id).replace("<", "\\u003c")  # no markup inside the script
    return HTMLResponse(PAGE.format(title=html.escape(board_id), board=board))
