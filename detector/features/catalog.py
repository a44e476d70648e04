"""The feature catalogue: names (the model's column order), meaning, and how a reason reads.

``suspicious`` says which side of the population is rig-like: "high" values beyond the
population's 99th percentile, or "low" values below its 1st, become reasons. Definitions
are in docs/features.md; keep both in step.
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

    def show(self, value: float) -> str:
        return self.fmt.format(value)


CATALOG: tuple[Feature, ...] = (
    Feature("voice_out_1h", "high", "outgoing calls in the last hour"),
    Feature("voice_out_24h", "high", "outgoing calls in 24 h"),
    Feature("voice_in_24h", "", "incoming calls in 24 h"),
    Feature("out_in_ratio_24h", "high", "outgoing calls per incoming call in 24 h", "{:.1f}", needs_calls=True),
    Feature("distinct_callees_1h", "high", "distinct numbers contacted in the last hour"),
    Feature("distinct_callees_24h", "high", "distinct numbers contacted in 24 h"),
    Feature("callee_repeat_ratio_24h", "low", "share of contacts that were repeats in 24 h", "{:.2f}", needs_calls=True),
    Feature("sms_out_24h", "high", "SMS sent in 24 h"),
    Feature("sms_in_24h", "high", "SMS received in 24 h"),
    Feature("data_sessions_24h", "", "data sessions in 24 h"),
    Feature("distinct_cells_24h", "", "distinct cells in 24 h"),
    Feature("dominant_cell_share_24h", "", "share of activity in the busiest cell in 24 h", "{:.2f}"),
    Feature("distinct_imeis_24h", "high", "distinct devices (IMEIs) used in 24 h"),
    Feature("sims_per_imei_24h", "high", "SIMs seen in the same device in 24 h"),
    Feature("answered_ratio_24h", "low", "share of outgoing calls answered in 24 h", "{:.2f}", needs_calls=True),
    Feature("duration_mean_24h", "low", "s mean answered call duration in 24 h", needs_calls=True),
    Feature("duration_cv_24h", "low", "coefficient of variation of call durations in 24 h", "{:.2f}", needs_calls=True),
    Feature("gap_cv", "low", "coefficient of variation of gaps between outgoing calls", "{:.2f}", needs_calls=True),
    Feature("night_share_24h", "high", "share of activity between 00:00 and 06:00 local time", "{:.2f}"),
    Feature("sim_age_days", "low", "days since the SIM was activated", "{:.1f}"),
    Feature("cards_on_id", "high", "cards registered on the same ID document"),
)

FEATURES: tuple[str, ...] = tuple(f.name for f in CATALOG)
BY_NAME = {f.name: f for f in CATALOG}
