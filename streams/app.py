"""The Faust app of the stream worker: settings, transport, and its agents.

``processing_guarantee="exactly_once"`` with the transaction fixes of
:mod:`streams.transactions`. State lives in partition stores rebuilt from Kafka
(:mod:`streams.state`), not in Faust tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from core.kafka import bootstrap_servers, compression_type
from core.settings import Settings
from streams.transactions import Transport


class ScorelineApp(faust.App):
    """faust.App whose consumer transport carries the fixed transaction manager."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def app_id(settings: Settings) -> str:
    """The Faust app id: also its consumer group and transactional-id prefix."""
    return f"{settings.topic_prefix}scoreline-worker"


def create_app(settings: Settings, **overrides: Any) -> ScorelineApp:
    options: dict[str, Any] = {
        "broker": f"kafka://{bootstrap_servers(settings)}",
        "processing_guarantee": "exactly_once",
        "store": "memory://",
        "topic_allow_declare": False,  # `scoreline topics apply` owns the topics
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "broker_commit_every": 10_000,
        "web_enabled": False,
        "autodiscover": False,
        "stream_buffer_maxsize": 20_000,
        # A finished match sends whole record batches per partition (streams/agents/
        # predictions.py): 1 MiB ones, below the broker's default message.max.bytes.
        "producer_max_batch_size": 1 << 20,
        "producer_compression_type": compression_type(settings),
        # Faust keeps a data dir even with the memory store; not in the working directory.
        "datadir": str(settings.home.resolve() / "faust" / app_id(settings)),
    }
    # Static membership (docs/broker.md, gap c): a worker restarted with the same id takes
    # its partitions back at once, on the embedded broker (which never expires a killed
    # member) and on Apache Kafka alike, and its transactional producers fence the old ones.
    options["consumer_group_instance_id"] = f"{app_id(settings)}-{settings.worker_id}"
    options.update(overrides)
    Path(options["datadir"]).mkdir(parents=True, exist_ok=True)
    app = ScorelineApp(app_id(settings), **options)
    from streams.agents.predictions import register

    # The boards stage is its own role (`scoreline boards`, streams/boards.py): on its own
    # process it folds awards while the worker scores the next chunk.
    register(app, settings)
    from streams.settlement import register as register_settlement

    register_settlement(app, settings)  # an app.task: docs/markets.md
    return app
