"""Code pools: modems of one model in one cell that take verification codes and nothing else.

Modems of one model in one cell that take verification codes and neither call, are called
nor use data: ``hot_cell_min_sims`` of them are a modem pool (猫池), power-on seen or not (a
pool at work before the capture started, or whose power-on it missed). A person keeping a
second SIM for codes has it in a phone of their own; meters get no codes. Their silence is
evidence once the network has been watched ``absence_after_s`` divided by their number: k
people all without data or calls for w hours are as unlikely as one for k·w hours, so a
pool at work before a first start is not held back the whole wait.
"""

from __future__ import annotations

import numpy as np

from detector.flags import Flag
from detector.ids import imsi_text, tac_text
from detector.rigs.common import DAY_S, SMS_IN, VOICE_DATA, cell_and_model, quiet, row_flag, watched_s
from detector.rigs.tick import Tick


def find(tick: Tick) -> list[Flag]:
    engine, frame = tick.engine, tick.frame
    watched_for = watched_s(engine)
    if watched_for <= 0:
        return []
    since = engine.watermark - DAY_S
    modem = (frame.values[:, VOICE_DATA].sum(axis=1) == 0) & (frame.values[:, SMS_IN] > 0) & \
        (engine.last_code(frame.sims) > since)
    if not modem.any():
        return []
    cell, tac = cell_and_model(engine, frame.sims)
    modem &= (cell >= 0) & (tac > 0)
    # people get codes too (many SIMs): only those in the frame's cells are asked
    got = engine.sims_in_cells(cell[modem])
    got = got[engine.last_code(got) > since]
    near = got[cell_and_model(engine, got)[1] > 0]
    pool = quiet(engine, near)
    pool_cell, pool_tac = cell_and_model(engine, pool)
    keys, counts = np.unique(np.stack([pool_cell, pool_tac], axis=1), axis=0, return_counts=True)
    size = {(int(c), int(m)): int(k) for (c, m), k in zip(keys, counts)}
    names = engine.cell_names()
    out: list[Flag] = []
    for r in np.flatnonzero(modem):
        imsi = imsi_text(frame.imsi[r])
        k = size.get((int(cell[r]), int(tac[r])), 0)
        if imsi in tick.taken or k < tick.policy.hot_cell_min_sims or \
                watched_for * k < tick.policy.absence_after_s:
            continue
        where = names[cell[r]]
        reason = (f"one of {k} SIMs in cell {where} in devices of one model (TAC {tac_text(tac[r])}) that "
                  f"receive verification codes without calls or data (a modem pool)")
        flag = row_flag(tick.scorer, frame, tick.strengths, r, "rig", reason, engine.watermark, vetoable=False)
        tick.keep(flag, out, "pool", f"{k} code-taking modems of one model in cell {where}")
    return out
