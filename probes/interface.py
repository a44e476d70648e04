"""What a probe is to the daemon, and what it offers: the plug point of the input side.

A probe runs as one task (:meth:`Probe.run`) and offers :class:`Work`, one piece at a time,
each committed by the daemon before the next. What a probe can do beyond that is declared by
the protocols it implements, each a class it names as a base, and the daemon and the
operations endpoints ask only those:

- :class:`FiniteProbe`: a finite run (``goipwatch run --until-done``) ends it once it has
  nothing left; :class:`IdleExitProbe` also waits for a watched directory to be idle first;
- :class:`ResumableProbe`: a stream read from the offsets of the store's last checkpoint,
  built anew at those offsets when its task fails;
- :class:`ReportsHealth`: whether its input answers (``/readyz``, ``goipwatch_input_up``);
- :class:`ReportsLag`: how many messages wait on the brokers (``goipwatch_kafka_lag_messages``).

Work is of two kinds, committed differently: a file (:class:`FileInput`), taken in once by
its content, and a micro-batch of messages (:class:`MessageInput`), committed with the
offsets after it. A piece of work hands itself to the daemon's method for its kind
(:meth:`Work.hand_to`), so that the daemon never asks what it holds.

:mod:`probes.files` and :mod:`probes.kafka` implement them (CSV, BER and GTP′ CDR files,
registration files and signalling captures are all files).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:   # the types only: importing the interface loads no parser
    from probes.config import ProbeConfig
    from probes.csvparse import Parsed
    from probes.health import InputHealth

# (topic, partition) -> the next offset to read
Offsets = Mapping[tuple[str, int], int]


class Work(Protocol):
    """A piece of input offered to the daemon."""

    @property
    def probe(self) -> str:
        """The name of the probe that offers it."""

    @property
    def kind(self) -> str:
        """``cdr``, ``registrations`` or ``signalling``: what its blocks hold."""

    @property
    def name(self) -> str:
        """Its name in reports and coverage (a file's name, a stream's topics)."""

    @property
    def first_ts(self) -> int | None:
        """Event time of its first records (None: unknown), to take offers in event order."""

    def blocks(self) -> AsyncIterator[Parsed]:
        """Its records, block by block, with the rows refused."""

    def locate(self, source: str, line: int) -> tuple[str, int]:
        """Where a record of a block (its batch's source and line) came from, for quarantine."""

    def hand_to(self, intake: Intake) -> Awaitable[None]:
        """Give itself to the intake's method for its kind: a file to
        :meth:`Intake.take_file`, messages to :meth:`Intake.take_messages`."""


class FileInput(Work, Protocol):
    """A file: taken in exactly once, known by its name, size and SHA-256."""

    @property
    def path(self) -> Path: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


class MessageInput(Work, Protocol):
    """A micro-batch of messages: committed with the offsets after it."""

    @property
    def offsets(self) -> Offsets: ...

    @property
    def messages(self) -> int: ...

    def on_stored(self) -> None:
        """Called once the checkpoint holding its offsets has committed."""


class Intake(Protocol):
    """The daemon's side: commits each kind of work in its own way."""

    async def take_file(self, work: FileInput) -> None: ...

    async def take_messages(self, work: MessageInput) -> None: ...


# What a probe calls with each piece of work, returning once the daemon has committed it;
# None says it has nothing ready now (so the daemon does not wait for it).
Offer = Callable[[Work | None], Awaitable[None]]


@runtime_checkable
class Probe(Protocol):
    """An input: one ``[[probes]]`` table, run as one task."""

    name: str
    config: ProbeConfig

    async def run(self, offer: Offer, stopping: asyncio.Event) -> None:
        """Offer work until ``stopping`` is set, or until there is none left (a list of files
        offered, a finite run done); raises when the probe fails."""


@runtime_checkable
class FiniteProbe(Probe, Protocol):
    # Set by the daemon before the run: True for --until-done, where run() returns once
    # everything that was there at start (or, watched, arrived while running) is offered.
    finite: bool


@runtime_checkable
class IdleExitProbe(FiniteProbe, Protocol):
    # In a finite run, how long a watched directory must be idle before run() returns
    # (None: the probe's settle_s).
    idle_exit_s: float | None


@runtime_checkable
class ResumableProbe(Probe, Protocol):
    def resume(self, offsets: Offsets) -> None:
        """Start where the store's last checkpoint ends (called before :meth:`run`)."""

    def discard(self) -> None:
        """Release what a failed run holds (a client's thread): a new probe, resumed at the
        checkpoint's offsets, takes its place."""


@runtime_checkable
class ReportsHealth(Probe, Protocol):
    # whether the input answers (a broker, a drop directory), logged once each way
    health: InputHealth


@runtime_checkable
class ReportsLag(Probe, Protocol):
    def lag(self) -> dict[str, int]:
        """Messages per topic on the brokers not yet committed to the store."""
