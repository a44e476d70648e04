"""Rigs: SIMs that work together, found from evidence that is costly to fake.

At each scoring tick, after the per-SIM scorer, the rig book
(:class:`detector.rigs.book.RigBook`) runs the rules of :data:`RULES` in this order, each a
module with ``find(tick: Tick) -> list[Flag]`` (:mod:`detector.rigs.tick`) whose docstring
says what it looks for and why:

1. :mod:`~detector.rigs.hot_cells` — **co-location**: machine-like SIMs (no data, almost no
   incoming calls) together in one cell within the hour, each with another kind of evidence
   of its own (``rig``);
2. :mod:`~detector.rigs.cohorts` — **co-moving cohorts**: SIMs that moved through the same
   cells in the same order within minutes of each other, enough of them not called back
   like people, each with another kind of evidence of its own (``rig``);
3. :mod:`~detector.rigs.co_power` — **synchronised power-on** (signalling): SIMs that
   attached together and have one more kind of evidence, or did so again with the same
   companions, or then talk among themselves, or take verification codes as a modem pool
   (``rig``);
4. :mod:`~detector.rigs.code_pools` — **code pools**: modems of one model in one cell that
   take verification codes and nothing else, power-on seen or not (``rig``);
5. :mod:`~detector.rigs.calling_groups` — **calling groups**: callers that call and text each
   other from one place, and the callers that join a group later (``rig``);
6. :mod:`~detector.rigs.remote_sims` — **remote SIMs** (signalling): slow answers to
   authentication and one more kind of evidence (``rig``);

then, with ``associate``, the **associates** of flagged SIMs:

7. :mod:`~detector.rigs.shared_devices` — SIMs in a device of a flagged SIM, now or earlier
   in the day (``rig_member``);
8. :mod:`~detector.rigs.companions` — SIMs that powered on with a flagged SIM or were
   machine-like beside one, rig-like on their own, whatever the supervised layer says
   (``rig_member``);

and, with or without ``associate``:

9. :mod:`~detector.rigs.machine_sims` — **machine-like SIMs**: SIMs that pass the anomaly
   policy on their own, neither use data nor are called back, and do not call the same
   numbers again, whatever the supervised layer says (``sim_anomaly``; after the companions,
   whose link is the better reason);
10. :mod:`~detector.rigs.bulk_siblings` — the cards of a bulk registration
    (:mod:`~detector.rigs.registrations`) one of whose cards is flagged for its use
    (``bulk_registration``).

The book then groups flagged SIMs into rigs (union-find over shared devices, hot cells,
cohorts, power-on bursts, calling groups, code pools and bulk registrations) with a stable id and an
evidence summary. Each rule takes the SIMs it flags, so a later rule does not flag them
again: the order is part of what the rules find. Helpers the rules share are in
:mod:`~detector.rigs.common`; the interface the pipeline sees is :mod:`~detector.rigs.interface`.

Cells here are radio cells (:meth:`FeatureEngine.radio_cells`): a box's cards of several
networks on one shared cell are in one cell.

Single behaviours never flag here either: co-location needs a second kind of evidence, a
machine-like SIM the anomaly policy's two, and an association needs a flagged SIM on the
other end.
"""

from detector.rigs import (bulk_siblings, calling_groups, co_power, code_pools, cohorts, companions,
                           hot_cells, machine_sims, remote_sims, shared_devices)

RULES = (hot_cells, cohorts, co_power, code_pools, calling_groups, remote_sims, shared_devices, companions,
         machine_sims, bulk_siblings)
