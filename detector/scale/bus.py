"""NATS JetStream plumbing: the connection, the stream, a partition's durable consumer."""

from __future__ import annotations

import nats
from nats.js import api
from nats.js.errors import NotFoundError

from detector.scale.config import ScaleConfig


class BusError(RuntimeError):
    pass


async def connect(cfg: ScaleConfig):
    """(connection, JetStream context); a clear error when NATS does not answer."""
    try:
        nc = await nats.connect(cfg.nats_url, connect_timeout=5, max_reconnect_attempts=3,
                                allow_reconnect=True)
    except Exception as e:  # nats raises several unrelated types for "not there"
        raise BusError(f"cannot connect to NATS at {cfg.nats_url}: {e}") from e
    return nc, nc.jetstream()


async def ensure_stream(js, cfg: ScaleConfig) -> None:
    """Make the stream (file storage, de-duplication window) unless it exists."""
    try:
        await js.stream_info(cfg.stream)
        return
    except NotFoundError:
        pass
    await js.add_stream(name=cfg.stream, subjects=[f"{cfg.subject_prefix}.>"],
                        storage=api.StorageType.FILE, duplicate_window=float(cfg.duplicate_window_s))


async def consumer_from(js, cfg: ScaleConfig, partition: int, after_seq: int):
    """A pull subscription on ``partition``'s durable consumer, starting after stream
    sequence ``after_seq`` (the partition's checkpoint). The consumer is made anew at each
    start: the store, not the consumer, holds the position, so a worker that died between its
    checkpoint and its acks neither loses nor repeats a message."""
    durable = cfg.durable(partition)
    try:
        await js.delete_consumer(cfg.stream, durable)
    except NotFoundError:
        pass
    config = api.ConsumerConfig(
        durable_name=durable, filter_subject=cfg.subject(partition),
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1,
        ack_policy=api.AckPolicy.EXPLICIT, ack_wait=float(cfg.ack_wait_s),
        max_ack_pending=max(cfg.fetch_batch * 4, 1024))
    return await js.pull_subscribe(cfg.subject(partition), durable=durable, stream=cfg.stream,
                                   config=config)


async def summary_consumer(js, cfg: ScaleConfig, after_seq: int):
    """The rig stage's pull subscription on every partition's summaries, after ``after_seq``."""
    durable = f"{cfg.stream}_rigs"
    try:
        await js.delete_consumer(cfg.stream, durable)
    except NotFoundError:
        pass
    config = api.ConsumerConfig(
        durable_name=durable, filter_subject=f"{cfg.subject_prefix}.sum.>",
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1,
        ack_policy=api.AckPolicy.EXPLICIT, ack_wait=float(cfg.ack_wait_s),
        max_ack_pending=max(cfg.fetch_batch * 4, 1024))
    return await js.pull_subscribe(f"{cfg.subject_prefix}.sum.>", durable=durable, stream=cfg.stream,
                                   config=config)
