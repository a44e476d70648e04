"""S1AP with NAS EMM: attach, authentication, identity, detach and tracking-area updates.

NAS carries the IMSI (attach request or identity response) and the IMEISV (identity
response, or security mode complete when the MME asks for it); S1AP carries the cell
(E-UTRAN CGI) and the TAC. They arrive in different messages of one UE context, so the
UE context (S1 association plus eNB-UE-S1AP-ID, renewed at each InitialUEMessage) is the
unit: :func:`orient` gives every event of a context the identities seen anywhere in it.
NAS messages that are ciphered cannot be read (TShark shows no EMM type): they are skipped.

The MME's Authentication request and the UE's Authentication response (sent before NAS
security starts, so readable) are paired within the UE context: their latency is the time
the SIM took to compute its answer plus the radio round trip, ~0.1-0.3 s for a phone and
much longer for a SIM that sits in a remote SIM bank (Kouam et al., "SigN", 2025).
"""

from __future__ import annotations


from probes.signalling import codec
from probes.signalling.correlate import ANSWER, REQUEST, SINGLE, Message
from probes.signalling.tshark import FrameInfo, Row

PROTOCOL = "s1ap"
MARKER = "s1ap.procedureCode"
FIELDS = ("s1ap.procedureCode", "s1ap.ENB_UE_S1AP_ID", "nas_eps.nas_msg_emm_type",
          "gsm_a.ie.mobileid.type", "e212.imsi", "gsm_a.imeisv", "gsm_a.imei",
          "e212.ecgi.mcc", "e212.ecgi.mnc", "s1ap.CellIdentity", "s1ap.tAC")
INITIAL_UE_MESSAGE = "12"

# EMM message type -> (name, kind, role)
EMM = {0x41: ("Attach request", "attach", SINGLE), 0x45: ("Detach request", "detach", SINGLE),
       0x48: ("Tracking area update request", "location_update", SINGLE),
       0x52: ("Authentication request", "auth", REQUEST),
       0x53: ("Authentication response", "auth", ANSWER),
       0x56: ("Identity response", "identity", SINGLE),
       0x5E: ("Security mode complete", "identity", SINGLE)}


def _cell(row: Row) -> str | None:
    mcc, mnc = row.first("e212.ecgi.mcc"), row.first("e212.ecgi.mnc")
    eci, tac = codec.int_or_none(row.first("s1ap.CellIdentity")), codec.int_or_none(row.first("s1ap.tAC"))
    if mcc and mnc and eci is not None:
        return codec.cell(int(mcc), int(mnc), tac or 0, eci)
    return None


def messages(row: Row, f: FrameInfo) -> list[Message]:
    emm = row.all("nas_eps.nas_msg_emm_type")
    procs = row.all("s1ap.procedureCode")
    if len(emm) != 1 or len(procs) != 1:  # bundled S1AP chunks: cannot tell whose NAS it is
        return []
    known = EMM.get(codec.int_or_none(emm[0]) or -1)
    if known is None:
        return []
    name, kind, role = known
    if name == "Security mode complete" and not row.has("gsm_a.imeisv"):
        return []
    enb_id = row.first("s1ap.ENB_UE_S1AP_ID") or ""
    return [Message(
        ts=f.ts, frame=f.frame, protocol=PROTOCOL, message=name, kind=kind, role=role,
        # key: the UE context; procs[0] lets orient() notice a new InitialUEMessage
        key=(f.hosts, enb_id, procs[0] == INITIAL_UE_MESSAGE), correlation_id=f"enb-ue:{enb_id}",
        standalone=role != ANSWER,          # a response whose request was not captured: no latency
        imsi=codec.imsi(row.first("e212.imsi")),
        imei=codec.imei(row.first("gsm_a.imeisv") or row.first("gsm_a.imei")),
        cell_id=_cell(row))]


def orient(msgs: list[Message]) -> list[Message]:
    """Share IMSI, IMEI and cell across the S1AP events of one UE context; key the
    authentication request and response by that context, for pairing."""
    context_of: list[int | None] = []
    current: dict[tuple, int] = {}
    n = 0
    for m in msgs:
        if m.protocol != PROTOCOL:
            context_of.append(None)
            continue
        hosts, enb_id, initial = m.key
        if initial or (hosts, enb_id) not in current:
            current[(hosts, enb_id)] = n
            n += 1
        context_of.append(current[(hosts, enb_id)])
    ids: dict[int, dict[str, str]] = {}
    for m, c in zip(msgs, context_of, strict=True):
        if c is not None:
            found = ids.setdefault(c, {})
            for k in ("imsi", "imei", "cell_id"):
                if getattr(m, k) and k not in found:
                    found[k] = getattr(m, k)
    return [m if c is None else m._replace(key=None if m.role == SINGLE else c,
                                        **{k: getattr(m, k) or v for k, v in ids[c].items()})
            for m, c in zip(msgs, context_of, strict=True)]
