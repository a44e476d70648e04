"""Rigs: SIMs that work together, found from evidence that is costly to fake.

At each scoring tick, after the per-SIM scorer, :class:`detector.rigs.book.RigBook`
1. adds the **co-location** kind of evidence: a cell where at least ``hot_cell_min_sims``
   active SIMs show rig-like behaviour in the same hour *and behave like machines*: no data
   session in 24 h and almost no incoming calls (one service, one way: a gateway port or a
   modem neither browses nor gets called back ~100× less than it calls (Murynets et al.);
   a call-centre agent's or courier's phone does both; absence counts once the daemon has
   watched the network ``absence_after_s``) — each such SIM with another kind of evidence of
   its own is flagged (``rig``);
2. adds the **synchronised power-on** kind of evidence (signalling): at least
   ``co_power_min_sims`` SIMs that attached in one cell within seconds of each other, that
   have calls or SMS (meters have neither) and have one other kind of evidence of their own
   (like a hot cell) — or none but did so again later with the same companions (one box
   powering on, day after day; a crowd or a site's power cut coincides once) — are flagged
   (``rig``); so are, from the first burst on, SIMs of a burst whose SIMs then call or text
   each other (``co_power_min_sims`` of them take part: a box imitating people) and modems of
   a burst that receive verification codes with ``co_power_min_sims`` of its SIMs and
   neither call, are called nor use data (a modem pool);
3. adds **calling groups**: at least ``co_power_min_sims`` callers that call and text each
   other from one place (busiest cells the same in the same hour), not on one ID document,
   each linked to two others of the group, or one more SIM each linked to one (a chain), with
   the callers hanging off it by a contact they made — a box imitating people already at
   work, its power-on missed (``rig``; callers in contact with two of its flagged SIMs, one of them by
   their own call or text, join it, then or at any later tick, wherever they are; before
   a day has been watched, calls are counted as a day's rate: :func:`detector.rigs.common.callers_min`);
4. adds the **remote SIM** kind of evidence (signalling): a SIM whose answers to
   authentication take ``remote_sim_auth_ms`` or longer on average (at least two of them; a
   phone answers in 0.1-0.3 s, a SIM in a remote SIM bank waits for the network between bank
   and gateway) and that shows one other kind of evidence of its own is flagged (``rig``);
5. flags the **associates** of flagged SIMs: a SIM with rig-like behaviour that shares a
   device (IMEI) with a flagged SIM, now or earlier in the day (``rig_member``), a SIM that
   powered on with a flagged SIM, or was machine-like in a flagged machine-like SIM's cell
   within the hour, and passes the anomaly policy on its own, whatever the supervised layer
   says (``rig_member``: a card of a box too small for the group rules, a gateway's or a
   moving rig's card the layer holds back), and the cards of a **bulk
   registration** (one ID document, one channel, consecutive ICCIDs, activated within
   ``bulk_window_s``) one of whose cards is flagged for how it is used (rig evidence, or
   enough kinds of evidence besides its registration), used or not (``bulk_registration``);
6. groups flagged SIMs into rigs (union-find over shared devices, hot cells, power-on bursts,
   calling groups and bulk registrations) with a stable id and an evidence summary.

Cells here are radio cells (:meth:`FeatureEngine.radio_cells`): a box's cards of several
networks on one shared cell are in one cell.

Single behaviours never flag here either: co-location needs a second kind of evidence, and
an association needs a flagged SIM on the other end.
"""

