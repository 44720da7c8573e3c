"""The embedded Kafka-protocol broker, behind one small module so another can replace it.

Today it is noida-db (from PyPI; its wheel ships the binary). docs/broker.md records what
it does and does not do compared with Apache Kafka, and how Scoreline designs around it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from core.exceptions import StackError
from core.stack.process import port_open, start_detached, tail, wait_until


def broker_binary() -> Path:
    """The noida-db executable shipped inside its wheel."""
    try:
        path = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError as e:
        raise StackError("the embedded broker (noida-db) is not installed: run `make setup`") from e
    if not path.is_file():
        raise StackError(f"the embedded broker binary is missing at {path}: reinstall noida-db")
    path.chmod(0o755)
    return path


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    """A single-node Kafka-protocol broker on 127.0.0.1:port keeping its data in data_dir."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "kafka.log"

    def start(self, timeout: float) -> int:
        """Start the broker in the background, wait until it answers, return its PID."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(broker_binary()),
            "start",
            "--only",
            "kafka",
            "--host",
            self.host,
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        pid = start_detached(args, self.log_path)
        try:
            wait_until(
                lambda: port_open(self.host, self.port),
                timeout=timeout,
                what=f"the embedded broker on {self.bootstrap_servers}",
            )
            wait_until(
                lambda: kafka_answers(self.bootstrap_servers),
                timeout=timeout,
                what=f"the embedded broker on {self.bootstrap_servers} to answer metadata",
            )
        except StackError as e:
            raise StackError(f"{e}; last lines of {self.log_path}:\n{tail(self.log_path)}") from e
        return pid


def kafka_answers(bootstrap_servers: str, timeout: float = 5.0) -> bool:
    """True when a Kafka-protocol broker answers a metadata request at bootstrap_servers."""
    return asyncio.run(kafka_answers_async(bootstrap_servers, timeout))


async def kafka_answers_async(bootstrap_servers: str, timeout: float = 5.0) -> bool:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a refused connection is the answer, not an error
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False
    finally:
        quiet.setLevel(level)
        await client.close()
