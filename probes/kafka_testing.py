"""A Kafka cluster for tests and benchmarks: librdkafka's built-in mock cluster.

The confluent-kafka wheel ships librdkafka, whose mock cluster (``test.mock.num.brokers``)
speaks the Kafka protocol on loopback: produce, fetch, metadata, watermarks and group offset
commits, which is what the Kafka probe uses. It lives inside the producer that created it,
so any client (another process too) can reach it while :class:`MockKafka` is open. Topics
are created on first use with four partitions; produce to ``partition=`` to choose one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path


class MockKafka:
    def __init__(self, brokers: int = 1) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({"test.mock.num.brokers": brokers,
                                  "bootstrap.servers": "unused:9092",   # replaced by the mock's
                                  "linger.ms": 20, "compression.type": "lz4", "batch.size": 1 << 20,
                                  "log_level": 3})
        meta = self.producer.list_topics(timeout=10)
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in meta.brokers.values())

    def produce(self, topic: str, values: Iterable[bytes | None], partition: int = 0) -> int:
        """Produce messages in order to one partition; returns how many."""
        n = 0
        for value in values:
            while True:
                try:
                    self.producer.produce(topic, value=value, partition=partition)
                    break
                except BufferError:   # local queue full: let deliveries drain
                    self.producer.poll(0.1)
            n += 1
        left = self.producer.flush(30)
        if left:
            raise RuntimeError(f"{left} message(s) not delivered to the mock cluster")
        return n

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark of each partition of ``topic``."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "mock-inspector",
                      "log_level": 3})
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in parts}
        finally:
            c.close()

    def retained(self, topic: str) -> int:
        """Messages the mock still holds on ``topic`` (it drops the oldest beyond ~5 MB a
        partition)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "mock-inspector",
                      "log_level": 3})
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts]
            return sum(high - low for low, high in marks)
        finally:
            c.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Offsets the group committed to Kafka, per partition (-1001: none)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "log_level": 3})
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
            return {tp.partition: tp.offset for tp in got}
        finally:
            c.close()

    def close(self) -> None:
        self.producer.flush(10)
        self.producer = None   # the mock cluster goes with its producer


def csv_messages(path: Path, rows_per_message: int, header: bool = False) -> Iterator[bytes]:
    """The rows of a CSV file (its header line dropped) as message values of up to
    ``rows_per_message`` rows; with ``header``, each message starts with the header line."""
    with path.open("rb") as fh:
        head = fh.readline()
        chunk: list[bytes] = []
        for line in fh:
            chunk.append(line)
            if len(chunk) == rows_per_message:
                yield (head if header else b"") + b"".join(chunk)
                chunk = []
        if chunk:
            yield (head if header else b"") + b"".join(chunk)
