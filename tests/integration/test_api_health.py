"""The API's /health, /ready and /metrics against real Postgres and Redis."""

from __future__ import annotations

from pydantic import SecretStr

from core.settings import Settings
from core.stack.process import free_port
from tests.api import api_client


async def test_ready_when_postgres_and_redis_answer(settings: Settings) -> None:
    async with api_client(settings) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "python_info" in metrics.text


async def test_not_ready_when_redis_is_down(settings: Settings) -> None:
    down = SecretStr(f"redis://127.0.0.1:{free_port()}/0")
    async with api_client(settings.model_copy(update={"redis_url": down})) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["redis"].startswith("down")


async def test_the_leaderboard_page_reads_the_board_json(settings: Settings) -> None:
    async with api_client(settings) as client:
        page = await client.get("/leaderboard/league:l001")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '"league:l001"' in page.text
        assert "/boards/" in page.text
        hostile = await client.get("/leaderboard/<b onmouseover=alert(1)>")
        assert hostile.status_code == 200
        assert "<b onmouseover" not in hostile.text, "the board id is escaped"
