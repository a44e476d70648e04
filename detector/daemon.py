"""The daemon: probes → feature engine → scoring → store and flag stream, on uvloop.

Probes run as concurrent tasks and offer whole files (file probes) or micro-batches of
messages (Kafka); one consumer applies them in order (the feature state has a single writer)
and commits a checkpoint after each, with the Kafka offsets it covers. A probe whose task
fails is reported and started again with back-off (:mod:`detector.supervisor`); a file
that cannot be read or stored is refused whole and recorded, so no input stops intake. Scoring
happens on event-time ticks inside the pipeline, and after ``idle_score_s`` without input.
SIGTERM/SIGINT stop intake, let the file in hand finish, checkpoint and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from pathlib import Path

import asyncpg

from detector import model as model_mod
from detector.calibration import calibrator_for
from detector.config import Config
from detector.metrics import Histogram
from detector.offers import Offers
from detector.pipeline import Pipeline
from detector.records import Rejected, iso
from detector.rigs.book import RigBook
from detector.scoring import Scorer
from detector.sdnotify import Notifier
from detector.supervisor import ProbeHealth, Supervisor
from detector.store import checkpoint as cp
from detector.store.db import connect, redact, resolve_dsn
from detector.store.embedded import EmbeddedPostgres
from detector.wording import counted
from probes.config import ProbeConfig
from probes.csvparse import FeedError
from probes.files import FileProbe
from probes.interface import (FileInput, FiniteProbe, IdleExitProbe, MessageInput, Probe,
                              ResumableProbe, Work)

log = logging.getLogger("goipwatch.daemon")

# With --until-done, a probe that fails this many times in a row ends the run (exit 1): a
# finite run must end. Live, a probe is started again for as long as it takes.
UNTIL_DONE_MAX_FAILURES = 5


def flag_json(e: cp.FlagEvent) -> str:
    """One line of flags.jsonl: the event (its id, what changed) and the flag as it then is."""
    f = e.flag
    return json.dumps({"event_id": e.event_id, "event": e.event, "flag_id": e.flag_id,
                       "imsi": f.imsi, "msisdn": f.msisdn, "kind": f.kind, "score": f.score,
                       "flagged_at": iso(f.flagged_at), "rig_id": f.rig_id,
                       "reasons": list(f.reasons)}, ensure_ascii=False)


def stream_tail(path: Path) -> dict:
    """The last whole line of the flag stream at ``path`` ({} when it has none); a line torn by
    a crash mid-write is ended, so that the next line starts clean."""
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(fh.tell() - 65536, 0))
        tail = fh.read()
    if tail and not tail.endswith(b"\n"):
        with path.open("a") as fh:
            fh.write("\n")
    for line in reversed(tail.splitlines()):
        try:
            last = json.loads(line)
            int(last["flag_id"]), int(last.get("event_id", 0))
            return last
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a crash mid-write
    return {}


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.notifier = Notifier()
        self.stopping = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self._api = None   # the API's runner, when [api] is configured
        self._ops = None   # the operations listener, when [ops] is configured
        self._probe_tasks: list[asyncio.Task] = []
        self.supervisor: Supervisor | None = None   # while running
        # a failed probe starts again after 1 s, then 2, 4, ... up to 60 s; one that has run
        # a minute without failing is well again and its back-off starts afresh
        self.restart_backoff_s, self.restart_backoff_cap_s, self.probe_stable_s = 1.0, 60.0, 60.0
        self._embedded: EmbeddedPostgres | None = None
        self.model = model_mod.load(config.detector.model)
        self.scorer = Scorer(self.model, config.detector.policy)
        self.probes: list[Probe] = [make_probe(p) for p in config.probes]
        self.until_done = False                  # this run's: see run()
        self.idle_exit_s: float | None = None
        self.pending = cp.Pending()
        self._cells_saved = 0
        self.files_done = 0
        self.newest: dict[str, int] = {}   # newest event time taken in, per probe (for /metrics)
        self.checkpoint_seconds = Histogram()
        self._streamed = 0   # id of the last flag event in the flag stream
        self._new_engine()

    def _new_engine(self) -> None:
        f = self.config.features
        self.engine = f.engine()
        det = self.config.detector
        self.scorer.use(self.model)      # the prior, until the checkpoint restores a calibration
        self.pipe = Pipeline(self.engine, self.scorer, det.scoring_interval_s,
                             rigs=RigBook(self.engine, self.scorer, det.rigs),
                             calibrator=calibrator_for(self.model, det.policy, det.calibration))

    # ---- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        store = self.config.store
        dsn, self._embedded = resolve_dsn(store.dsn, store.dsn_file, self.config.daemon.state_dir)
        self.pool = await connect(dsn, self.config.store.pool_size)
        log.info("store connected", extra={"dsn": redact(dsn)})
        await self._restore()
        for probe in self.probes:
            if isinstance(probe, ResumableProbe):   # start where the checkpoint ends
                probe.resume(await cp.stream_offsets(self.pool, probe.name))
        await self._catch_up_stream()
        self._api = await serve_api(self.pool, dsn, self.config)
        if self.config.ops is not None and self.config.ops.enabled:
            from detector.ops import start_ops
            self._ops = await start_ops(self, self.config.ops)

    async def _restore(self) -> None:
        self._new_engine()
        restored = await cp.restore(self.pool, self.engine, self.pipe)
        self._cells_saved = restored.cells
        log.info("checkpoint restored", extra={"sims": restored.sims, "imeis": restored.imeis,
                                               "flags": restored.flags})

    def probes_running(self) -> bool:
        """No probe is failing (a finished file list is not a failure)."""
        return not self.failing_probes()

    def failing_probes(self) -> list[ProbeHealth]:
        """Probes whose task failed and that have not run well since."""
        return self.supervisor.failing() if self.supervisor is not None else []

    async def fresh_probe(self, probe: Probe) -> Probe:
        """The probe to start again after ``probe`` failed. A file probe goes on as it was:
        it keeps the files the daemon committed, so it offers none of them again, and one
        offered but not committed was not marked and is offered again. A stream probe is
        built anew at the offsets of the last checkpoint: what it had read past them was
        not committed and is read again."""
        if not isinstance(probe, ResumableProbe):
            return probe
        probe.discard()
        new = make_probe(probe.config)
        self._set_run(new)
        if isinstance(new, ResumableProbe):
            new.resume(await cp.stream_offsets(self.pool, new.name))
        return new

    def _set_run(self, probe: Probe) -> None:
        """Tell a probe how this run ends (see :meth:`run`)."""
        if isinstance(probe, FiniteProbe):   # with --until-done, it ends once it has nothing left
            probe.finite = self.until_done
        if isinstance(probe, IdleExitProbe):
            probe.idle_exit_s = self.idle_exit_s

    async def _record_health(self, health: ProbeHealth) -> None:
        if self.pool is not None:
            await cp.save_probe_health(self.pool, health)

    async def close(self) -> None:
        if self._ops is not None:
            await self._ops.cleanup()
            self._ops = None
        if self._api is not None:
            await self._api.cleanup()
            self._api = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self._embedded is not None:
            self._embedded.stop()

    async def run(self, until_done: bool = False, idle_exit_s: float | None = None) -> None:
        """Run until :attr:`stopping` is set (by a signal or a caller) or, with ``until_done``,
        until every probe is done: its files offered and processed, a stream read to where
        it stood at start, and a watch directory idle (see :class:`probes.files.FileProbe`:
        nothing new settled for ``idle_exit_s``, by default the probe's ``settle_s``)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        offers = Offers(p.name for p in self.probes)
        self.until_done, self.idle_exit_s = until_done, idle_exit_s
        for p in self.probes:
            self._set_run(p)
        if self.pool is not None:
            await cp.reset_probe_health(self.pool, [p.name for p in self.probes])
        self.supervisor = Supervisor(self.probes, offers, self.stopping, self.fresh_probe,
                                     self._record_health, self.restart_backoff_s,
                                     self.restart_backoff_cap_s, self.probe_stable_s,
                                     max_failures=UNTIL_DONE_MAX_FAILURES if until_done else None)
        probe_tasks = self.supervisor.start()
        self._probe_tasks = probe_tasks
        helpers = []
        if self.config.verification is not None:
            from detector import verify  # aiohttp loads only when requests are configured
            self.config.verification.load_secret()  # a missing secret fails at start, loudly
            helpers.append(asyncio.create_task(
                verify.run_sender(self.pool, self.config.verification, self.stopping),
                name="verification-sender"))
        if self.notifier.watchdog_interval_s:
            helpers.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        self.notifier.ready(f"{counted(len(self.probes), 'probe')} running")
        log.info("daemon running", extra={"probes": [p.name for p in self.probes]})
        try:
            await self._consume(offers, probe_tasks if until_done else None)
            if until_done and self.config.verification is not None:
                await self._drain_outbox()
        finally:
            self.notifier.stopping()
            offers.cancel_all()
            for t in probe_tasks + helpers:
                t.cancel()
            await asyncio.gather(*probe_tasks, *helpers, return_exceptions=True)
            await self.checkpoint()
            log.info("daemon stopped", extra={"files": self.files_done})

    async def _drain_outbox(self, limit_s: float = 60.0) -> None:
        """Before a finite run ends, give the sender time to deliver what falls due before
        the limit, retries included (what it cannot deliver stays in the outbox for the next
        start)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while not self.stopping.is_set() and loop.time() < deadline:
            due = await self.pool.fetchval(
                "SELECT count(*) FROM verification_outbox WHERE status IN ('pending', 'sending') "
                "AND next_attempt_at <= now() + make_interval(secs => $1)", deadline - loop.time())
            if not due:
                return
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        log.info("stop requested: finishing the file in hand")
        self.stopping.set()

    async def _watchdog(self) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(self.notifier.watchdog_interval_s)

    async def _consume(self, offers: Offers, finite: list[asyncio.Task] | None) -> None:
        idle_s = self.config.daemon.idle_score_s
        stop_wait = asyncio.create_task(self.stopping.wait())
        get: asyncio.Task | None = None   # kept across waits so that no taken item is dropped
        try:
            while not self.stopping.is_set():
                if finite is not None and offers.empty() and (get is None or not get.done()) \
                        and all(t.done() for t in finite):
                    if get is not None:
                        get.cancel()
                        get = None
                    for t in finite:
                        if not t.cancelled() and t.exception():
                            raise t.exception()
                    await self._score_idle()
                    return
                if get is None:
                    get = asyncio.create_task(offers.take())
                running = {t for t in finite or () if not t.done()}
                done, _ = await asyncio.wait({get, stop_wait, *running},
                                             timeout=idle_s or None,
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    if not done and not self.stopping.is_set():
                        await self._score_idle()
                    continue
                work, finished = get.result()
                get = None
                try:
                    await self.process(work)
                finally:
                    if not finished.done():
                        finished.set_result(None)
        finally:
            stop_wait.cancel()
            if get is not None:
                get.cancel()
                if get.done() and not get.cancelled():
                    get.result()[1].cancel()

    # ---- work ----------------------------------------------------------------------------

    async def process(self, work: Work) -> None:
        """Take in one piece of work and commit it with everything it changed."""
        await work.hand_to(self)

    async def take_file(self, work: FileInput) -> None:
        """Take in one file exactly once and commit it with everything it changed."""
        prior = await self.pool.fetch(
            "SELECT name FROM ingested_files WHERE probe = $1 AND sha256 = $2",
            work.probe, work.sha256)
        names = {r["name"] for r in prior}
        if work.name in names:
            return  # done before (a restart re-offers what is still in the directory)
        if names:
            log.warning("duplicate file content skipped", extra={"probe": work.probe,
                                                                "file": work.name})
            self.pending.files.append(cp.FileDone(
                work.probe, work.name, work.size, work.sha256, "duplicate",
                detail=f"same content as {sorted(names)[0]}"))
            await self.checkpoint()
            return
        try:
            records, rejected = await self._apply(work)
        except FeedError as e:
            self._reject_file(work, str(e))
            await self.checkpoint()
            return
        except Exception as e:  # noqa: BLE001 - one file must not stop intake, whatever it holds
            await self._refuse_part_way(work, f"read failed: {type(e).__name__}: {e}")
            return
        self.pending.files.append(cp.FileDone(work.probe, work.name, work.size,
                                              work.sha256, "done", records, rejected))
        self.pending.count(work.probe, "files", 1)
        try:
            await self.checkpoint()
        except (asyncpg.DataError, UnicodeEncodeError) as e:
            # a value the store refuses (every text is made storable; this is the net under
            # that): nothing of the file was committed, so it is refused whole, not retried
            await self._refuse_part_way(work, f"store refused its rows: {type(e).__name__}: {e}")
            return
        self.files_done += 1
        log.info("file done", extra={"probe": work.probe, "file": work.name,
                                     "records": records, "rejected": rejected})

    async def _refuse_part_way(self, work: FileInput, reason: str) -> None:
        """A file that failed after it changed the state in memory: reload the state of the
        last checkpoint and record the file as rejected."""
        log.error("file failed part-way; state reloaded from the last checkpoint", exc_info=True,
                  extra={"probe": work.probe, "file": work.name})
        self.pending = cp.Pending()
        await self._restore()
        self._reject_file(work, reason)
        await self.checkpoint()

    async def take_messages(self, work: MessageInput) -> None:
        """Apply a micro-batch of messages and commit it with the offsets after it."""
        records, rejected = await self._apply(work)
        for (topic, partition), offset in work.offsets.items():
            self.pending.offsets[(work.probe, topic, partition)] = offset
        self.pending.count(work.probe, "messages", work.messages)
        await self.checkpoint()
        work.on_stored()
        log.debug("messages done", extra={"probe": work.probe, "messages": work.messages,
                                          "records": records, "rejected": rejected})

    def _reject_file(self, work: FileInput, reason: str) -> None:
        log.error("file rejected", extra={"probe": work.probe, "file": work.name,
                                          "reason": reason})
        self.pending.files.append(cp.FileDone(work.probe, work.name, work.size, work.sha256,
                                              "rejected", detail=reason))
        self.pending.quarantine.append((work.probe, Rejected(work.name, 0, reason)))
        self.pending.count(work.probe, "files_rejected", 1)

    async def _apply(self, work: Work) -> tuple[int, int]:
        records = rejected = 0
        async for parsed in work.blocks():
            batch = parsed.batch
            bad = list(parsed.rejected)
            if work.kind in ("cdr", "signalling"):
                fed = await asyncio.to_thread(self.pipe.feed, batch)
                horizon = iso(self.engine.watermark - self.engine.lateness_s)
                bad += [Rejected(*work.locate(batch.source, int(line)),
                                 f"late: event time {iso(ts)} is before "
                                 f"{horizon} (watermark minus allowed lateness)")
                        for line, ts in zip(batch.line[fed.late], batch.ts[fed.late])]
                self.pending.flags += fed.flags
                applied = len(batch) - int(fed.late.sum())
                self.pending.facts.add_records(work.probe, work.name, batch, ~fed.late)
                if len(batch):
                    newest = int(batch.ts.max())
                    self.newest[work.probe] = max(self.newest.get(work.probe, 0), newest)
            else:
                await asyncio.to_thread(self.pipe.register, batch)
                self.pending.facts.add_registrations(work.probe, work.name, batch)
                self.pending.registrations.append(batch)
                applied = len(batch)
            records += applied
            rejected += len(bad)
            self.pending.quarantine += [(work.probe, r) for r in bad]
            self.pending.count(work.probe, "records", applied)
            self.pending.count(work.probe, "rejected", len(bad))
        return records, rejected

    async def _score_idle(self) -> None:
        flags = await asyncio.to_thread(self.pipe.score_dirty)
        if flags:
            self.pending.flags += flags
            await self.checkpoint()

    async def checkpoint(self) -> None:
        if self.pool is None:
            return
        pending, self.pending = self.pending, cp.Pending()
        # new members grow and merge rigs; rigs at work move their window without a new flag
        pending.rigs = self.pipe.rigs.unsaved_rigs()
        started = time.perf_counter()
        try:
            verification = self.config.verification
            self._cells_saved, _ = await cp.save(
                self.pool, self.engine, self.pipe, pending, self._cells_saved,
                verification.policy if verification is not None else None)
        except BaseException:
            self.pending = pending  # nothing committed: keep it for the next try
            raise
        self.checkpoint_seconds.observe(time.perf_counter() - started)
        await self._emit()

    @property
    def _stream(self) -> Path:
        return self.config.path(self.config.daemon.flags_jsonl)

    async def _emit(self) -> None:
        """Append the flag events committed since the stream's last line, in their order: new
        flags, and changes of committed ones (a rig assigned after the flag), so that the
        stream's last line of each flag is the flag as the store has it."""
        events = await cp.flag_events_after(self.pool, self._streamed)
        if not events:
            return
        self._stream.parent.mkdir(parents=True, exist_ok=True)
        with self._stream.open("a", encoding="utf-8") as fh:
            for e in events:
                fh.write(flag_json(e) + "\n")
        self._streamed = events[-1].event_id
        raised = sum(e.event == "flag" for e in events)
        if raised:
            log.info("flags raised", extra={"count": raised})
        if len(events) > raised:
            log.info("flags changed", extra={"count": len(events) - raised})

    async def _catch_up_stream(self) -> None:
        """Find where the stream stopped (its last line) and append the flag events a crash
        kept from it. A stream written before events had ids ends with a flag id: it resumes
        after that flag's event."""
        last = stream_tail(self._stream)
        if "event_id" in last:
            self._streamed = int(last["event_id"])
        elif last:
            self._streamed = await cp.flag_event_of(self.pool, int(last["flag_id"]))
        else:
            self._streamed = 0
        await self._emit()


async def serve_api(pool: asyncpg.Pool, dsn: str, config: Config):
    """Start the lookup API (with the verification status callbacks when requests are
    configured) if ``[api]`` is enabled; returns its runner, or None. ``dsn`` is the store
    ``pool`` is on, for the report worker's own connection."""
    if config.api is None or not config.api.enabled:
        return None
    from detector.api import start_api
    routes = []
    if config.verification is not None:
        from detector.verify import status_routes
        routes.append(status_routes(pool, config.verification.load_secret(),
                                    config.verification.max_skew_s))
    from detector.api.reports import report_routes
    routes.append(report_routes(dsn, config.report))  # GET /v1/reports/{month}: regulators
    runner = await start_api(pool, config.api, routes)
    log.info("API listening", extra={"addresses": [str(a) for a in runner.addresses]})
    return runner


def make_probe(config: ProbeConfig) -> Probe:
    """The probe of a ``[[probes]]`` entry (the Kafka client loads only when one is used)."""
    if config.type == "kafka":
        from probes.kafka import KafkaProbe
        return KafkaProbe(config)
    return FileProbe(config)


async def serve(config: Config, until_done: bool = False, idle_exit_s: float | None = None) -> int:
    daemon = Daemon(config)
    try:
        await daemon.open()
        await daemon.run(until_done, idle_exit_s)
    finally:
        await daemon.close()
    return 0
