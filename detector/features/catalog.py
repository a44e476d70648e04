"""The feature catalogue: names (the model's column order), meaning, and how a reason reads.

``suspicious`` says which side of the population is rig-like: "high" values beyond the
population's 99th percentile, or "low" values below its 1st, become reasons. ``family``
groups features that measure the same behaviour (40 calls in an hour are also 40 distinct
callees): the scoring policy counts independent families, not correlated features.
Definitions are in docs/features.md; keep both in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    suspicious: str          # "high" | "low" | "" (context only, never a reason by itself)
    phrase: str              # "{value} <phrase>"
    fmt: str = "{:.0f}"
    needs_calls: bool = False  # a ratio over calls: compared among callers only
    without_calls: bool = False  # evidence only for SIMs that are not callers (see CALLERS_MIN_VOICE_OUT)
    family: str = ""           # the behaviour it measures (see FAMILIES)
    floor: float = 0.0         # below this a value is never evidence, whatever the percentiles
    unit: str = ""             # what one unit of the value is, shown beside it with the name
    count: bool = False        # a count of events or parties: grows with how busy people are
                               # (calibration lets its tail rise with the population's body)

    def show(self, value: float) -> str:
        return self.fmt.format(value)


CATALOG: tuple[Feature, ...] = (
    Feature("voice_out_1h", "high", "outgoing calls in the last hour", family="volume", unit="calls", count=True),
    Feature("voice_out_24h", "high", "outgoing calls in 24 h", family="volume", unit="calls", count=True),
    Feature("voice_in_24h", "", "incoming calls in 24 h", unit="calls", count=True),
    Feature("out_in_ratio_24h", "high", "outgoing calls per incoming call in 24 h", "{:.1f}", needs_calls=True, family="one_way", unit="outgoing calls per incoming call"),
    Feature("distinct_callees_1h", "high", "distinct numbers contacted in the last hour", family="volume", unit="numbers", count=True),
    Feature("distinct_callees_24h", "high", "distinct numbers contacted in 24 h", family="volume", unit="numbers", count=True),
    Feature("callee_repeat_ratio_24h", "low", "share of contacts that were repeats in 24 h", "{:.2f}", needs_calls=True, family="volume", unit="share of contacts (0-1)"),
    # people send a few SMS a day and a spam box hundreds: a few more than most (9 against a
    # 99th percentile of 6: couriers, enterprise cards) is not a second kind of behaviour
    Feature("sms_out_24h", "high", "SMS sent in 24 h", family="sms", floor=20.0, unit="SMS", count=True),
    # a modem taking codes receives SMS and does not call; a SIM that calls many numbers and
    # receives many SMS is a busy person's phone (couriers get delivery notices)
    Feature("sms_in_24h", "high", "SMS received in 24 h", family="sms", without_calls=True, unit="SMS", count=True),
    Feature("data_sessions_24h", "", "data sessions in 24 h", unit="sessions", count=True),
    Feature("distinct_cells_24h", "", "distinct cells in 24 h", unit="cells"),
    Feature("dominant_cell_share_24h", "", "share of activity in the busiest cell in 24 h", "{:.2f}", unit="share of records (0-1)"),
    Feature("distinct_imeis_24h", "high", "distinct devices (IMEIs) used in 24 h", family="device", unit="devices"),
    Feature("sims_per_imei_24h", "high", "SIMs seen in the same device in 24 h", family="device", unit="SIMs"),
    Feature("answered_ratio_24h", "low", "share of outgoing calls answered in 24 h", "{:.2f}", needs_calls=True, family="call_quality", unit="share of outgoing calls (0-1)"),
    Feature("duration_mean_24h", "low", "s mean answered call duration in 24 h", needs_calls=True, family="call_quality", unit="s"),
    Feature("duration_cv_24h", "low", "coefficient of variation of call durations in 24 h", "{:.2f}", needs_calls=True, family="call_quality", unit="ratio (standard deviation / mean)"),
    Feature("gap_cv", "low", "coefficient of variation of gaps between outgoing calls", "{:.2f}", needs_calls=True, family="rhythm", unit="ratio (standard deviation / mean)"),
    Feature("night_share_24h", "high", "share of activity between 00:00 and 06:00 local time", "{:.2f}", family="rhythm", unit="share of records (0-1)"),
    Feature("sim_age_days", "low", "days since the SIM was activated", "{:.1f}", family="registration", unit="days"),
    Feature("cards_on_id", "high", "cards registered on the same ID document", family="registration", unit="cards"),
    # mostly 0, so its 99th percentile is 0: one neighbour within 30 s is chance in a busy
    # cell, two make a burst of three (the rig rules' co_power_min_sims)
    Feature("attach_sync_24h", "high", "other SIMs attached in the same cell within 30 s of it (signalling, 24 h)",
            family="sync", floor=2.0, unit="SIMs"),
)

FEATURES: tuple[str, ...] = tuple(f.name for f in CATALOG)
FAMILIES: tuple[str, ...] = ("volume", "one_way", "sms", "device", "call_quality", "rhythm",
                             "registration", "sync")
BY_NAME = {f.name: f for f in CATALOG}
