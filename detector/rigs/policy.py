"""The rig rules' knobs (flat in ``[detector]`` of the config, beside the scoring policy's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RigPolicy:
    hot_cell_min_sims: int = 3
    co_power_min_sims: int = 3      # SIMs powering on together, twice
    remote_sim_auth_ms: int = 1000  # mean authentication latency of a SIM in a SIM bank
    bulk_min_cards: int = 6         # more cards on one ID than the per-person cap allows
    bulk_window_s: int = 3 * 3600   # activated within this span
    absence_after_s: int = 6 * 3600  # watched this long, no data or calls is machine-like
    associate: bool = True

    def __post_init__(self) -> None:
        if min(self.hot_cell_min_sims, self.bulk_min_cards, self.co_power_min_sims) < 2:
            raise ValueError("hot_cell_min_sims, co_power_min_sims and bulk_min_cards must be at least 2")
        if self.remote_sim_auth_ms < 1:
            raise ValueError("remote_sim_auth_ms must be at least 1")
        if self.absence_after_s < 0:
            raise ValueError("absence_after_s must not be negative")
