"""SMS PDU codec for the modem simulator (3GPP TS 23.040 / 23.038).

The simulator has to *understand* what a client submits, not merely accept
it: tests assert on the exact text that reached the "network".  So this
module decodes SMS-SUBMIT TPDUs completely (SMSC prefix, first octet, TP-MR,
destination address with its type of address, PID, DCS, all validity-period
formats, user data header with 8- and 16-bit concatenation references, GSM
7-bit default alphabet with the extension table, 8-bit data and UCS-2), and
encodes SMS-DELIVER TPDUs for messages injected into the modem's inbox.

python3-gammu's DecodePDU was tried first and rejected: it mis-decodes GSM
7-bit parts that contain extension-table characters (trailing garbage after
"[]{}EUR"), and an oracle that is wrong in the interesting cases is worse
than none.  gammu's *encoder* is still used by test_pdu.py to cross-check
this decoder.

Only the standard library is used.  Everything here is pure and
side-effect free; errors are reported by raising PduError with a reason
that the simulator logs next to the +CMS ERROR it answers.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

# --------------------------------------------------------------------------
# GSM 03.38 default alphabet and extension table

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(GSM7_BASIC) == 128

GSM7_EXT = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
GSM7_ESC = 0x1B

_BASIC_REV = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != GSM7_ESC}
_EXT_REV = {ch: code for code, ch in GSM7_EXT.items()}


class PduError(ValueError):
    """A PDU that a real SMSC would refuse; the message says why."""


def gsm7_septets(text: str) -> list[int] | None:
    """Septets for text in the default alphabet (+ extension), or None."""
    out: list[int] = []
    for ch in text:
        code = _BASIC_REV.get(ch)
        if code is not None:
            out.append(code)
            continue
        code = _EXT_REV.get(ch)
        if code is None:
            return None
        out.extend((GSM7_ESC, code))
    return out


def gsm7_decode(septets: list[int]) -> str:
    out = []
    escape = False
    for s in septets:
        if escape:
            # 23.038: an unknown extension code shows the basic character.
            out.append(GSM7_EXT.get(s, GSM7_BASIC[s] if s != GSM7_ESC else " "))
            escape = False
        elif s == GSM7_ESC:
            escape = True
        else:
            out.append(GSM7_BASIC[s])
    return "".join(out)


def unpack_septets(data: bytes, count: int) -> list[int]:
    """Septet i sits at bits 7i..7i+6 of the little-endian bit stream."""
    if (count * 7 + 7) // 8 > len(data):
        raise PduError(f"user data shorter than {count} septets")
    bits = int.from_bytes(data, "little")
    return [(bits >> (7 * i)) & 0x7F for i in range(count)]


def pack_septets(septets: list[int]) -> bytes:
    bits = 0
    for i, s in enumerate(septets):
        bits |= (s & 0x7F) << (7 * i)
    return bits.to_bytes((len(septets) * 7 + 7) // 8, "little")


# --------------------------------------------------------------------------
# Addresses (semi-octet BCD, 23.040 9.1.2.5)

_BCD_DIGITS = "0123456789*#abc"


def _bcd_decode(data: bytes, ndigits: int) -> str:
    digits = []
    for octet in data:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                continue
            digits.append(_BCD_DIGITS[nibble])
    return "".join(digits[:ndigits])


def _bcd_encode(digits: str) -> bytes:
    nibbles = [_BCD_DIGITS.index(d) for d in digits]
    if len(nibbles) % 2:
        nibbles.append(0x0F)
    return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))


def _number_with_toa(toa: int, digits: str) -> str:
    return "+" + digits if (toa >> 4) & 0x07 == 1 else digits


def encode_address(number: str) -> tuple[int, bytes]:
    """(TOA, semi-octets) for a phone number or an alphanumeric sender."""
    if number.startswith("+") and number[1:].isdigit():
        return 0x91, _bcd_encode(number[1:])
    if number.isdigit():
        return 0x81, _bcd_encode(number)
    septets = gsm7_septets(number[:11])
    if septets is None:
        raise PduError(f"sender {number!r} is not representable")
    return 0xD0, pack_septets(septets)


class _Reader:
    """Bounds-checked cursor over a PDU."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError(f"PDU truncated in {what}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def octet(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


def _read_smsc(r: _Reader) -> str:
    n = r.octet("SMSC length")
    if n == 0:
        return ""
    if n > 11:
        raise PduError(f"SMSC length {n} too long")
    toa = r.octet("SMSC type")
    return _number_with_toa(toa, _bcd_decode(r.take(n - 1, "SMSC"), 2 * (n - 1)))


def _read_address(r: _Reader, what: str) -> tuple[str, int]:
    ndigits = r.octet(f"{what} length")
    toa = r.octet(f"{what} type")
    if ndigits > 20:
        raise PduError(f"{what} length {ndigits} too long")
    raw = r.take((ndigits + 1) // 2, what)
    if (toa >> 4) & 0x07 == 5:  # alphanumeric, GSM 7-bit packed
        return gsm7_decode(unpack_septets(raw, ndigits * 4 // 7)), toa
    return _number_with_toa(toa, _bcd_decode(raw, ndigits)), toa


# --------------------------------------------------------------------------
# Data coding scheme (23.038 section 4)

def dcs_alphabet(dcs: int) -> str:
    """'gsm7', '8bit' or 'ucs2'; compressed text is refused."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding / automatic deletion group
        if dcs & 0x20:
            raise PduError(f"compressed text (DCS {dcs:02X}) not supported")
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x03]
    if group in (0xC, 0xD):
        return "gsm7"
    if group == 0xE:
        return "ucs2"
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"  # reserved groups: 23.038 says treat as default alphabet


def _read_vp(r: _Reader, vpf: int) -> dict | None:
    if vpf == 0:
        return None
    if vpf == 2:
        v = r.octet("validity period")
        if v <= 143:
            minutes = (v + 1) * 5
        elif v <= 167:
            minutes = 12 * 60 + (v - 143) * 30
        elif v <= 196:
            minutes = (v - 166) * 24 * 60
        else:
            minutes = (v - 192) * 7 * 24 * 60
        return {"format": "relative", "raw": f"{v:02X}", "minutes": minutes}
    raw = r.take(7, "validity period")
    return {"format": "enhanced" if vpf == 1 else "absolute", "raw": raw.hex().upper()}


# --------------------------------------------------------------------------
# User data header

@dataclass
class Concat:
    ref: int
    total: int
    seq: int
    ref_bits: int  # 8 or 16


def _parse_udh(udh: bytes) -> tuple[list[tuple[int, bytes]], Concat | None]:
    ies: list[tuple[int, bytes]] = []
    concat = None
    i = 0
    while i < len(udh):
        if i + 2 > len(udh):
            raise PduError("user data header truncated")
        iei, length = udh[i], udh[i + 1]
        data = udh[i + 2:i + 2 + length]
        if len(data) != length:
            raise PduError(f"UDH element {iei:02X} truncated")
        ies.append((iei, data))
        i += 2 + length
        if iei == 0x00 and length == 3:
            c = Concat(data[0], data[1], data[2], 8)
        elif iei == 0x08 and length == 4:
            c = Concat((data[0] << 8) | data[1], data[2], data[3], 16)
        else:
            continue
        # 23.040 9.2.3.24.1: a concatenation IE with bad numbers is ignored.
        if c.total >= 1 and 1 <= c.seq <= c.total:
            concat = c
    return ies, concat


# --------------------------------------------------------------------------
# SMS-SUBMIT

@dataclass
class Submit:
    smsc: str
    first_octet: int
    mr: int
    to: str
    toa: int
    pid: int
    dcs: int
    alphabet: str
    vp: dict | None
    udl: int
    text: str
    data: bytes = b""
    udh: list = field(default_factory=list)  # [(iei, bytes)]
    concat: Concat | None = None
    tpdu_len: int = 0
    srr: bool = False
    reject_duplicates: bool = False
    reply_path: bool = False
    warnings: list = field(default_factory=list)


def decode_submit(pdu: bytes, with_smsc: bool = True) -> Submit:
    """Decode a complete SMS-SUBMIT as sent after AT+CMGS in PDU mode."""
    r = _Reader(pdu)
    smsc = _read_smsc(r) if with_smsc else ""
    tpdu_start = r.pos
    fo = r.octet("first octet")
    if fo & 0x03 != 0x01:
        raise PduError(f"TP-MTI {fo & 0x03} is not SMS-SUBMIT")
    vpf = (fo >> 3) & 0x03
    udhi = bool(fo & 0x40)
    mr = r.octet("TP-MR")
    to, toa = _read_address(r, "TP-DA")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    alphabet = dcs_alphabet(dcs)
    vp = _read_vp(r, vpf)
    udl = r.octet("TP-UDL")
    ud = r.rest()

    if alphabet == "gsm7":
        if udl > 160:
            raise PduError(f"TP-UDL {udl} septets exceeds 160")
        need = (udl * 7 + 7) // 8
    else:
        if udl > 140:
            raise PduError(f"TP-UDL {udl} octets exceeds 140")
        need = udl
    if len(ud) < need:
        raise PduError(f"user data has {len(ud)} octets, TP-UDL needs {need}")
    if len(ud) > need:
        raise PduError(f"{len(ud) - need} octets after the user data")

    udh_ies: list = []
    concat = None
    header_octets = 0
    warnings: list[str] = []
    if udhi:
        if not ud:
            raise PduError("UDHI set but user data empty")
        udhl = ud[0]
        header_octets = udhl + 1
        if header_octets > len(ud):
            raise PduError("user data header longer than user data")
        udh_ies, concat = _parse_udh(ud[1:header_octets])

    data = b""
    if alphabet == "gsm7":
        skip = (header_octets * 8 + 6) // 7  # header plus fill bits, in septets
        if skip > udl:
            raise PduError("user data header longer than TP-UDL")
        text = gsm7_decode(unpack_septets(ud, udl)[skip:])
    else:
        data = ud[header_octets:udl]
        if alphabet == "ucs2":
            # A modem does not judge the content of user data; the handset
            # shows a replacement character, and so do we (with a warning).
            if len(data) % 2:
                warnings.append("odd number of UCS-2 octets")
            text = data.decode("utf-16-be", errors="replace")
        else:
            text = data.decode("latin-1")

    return Submit(smsc=smsc, first_octet=fo, mr=mr, to=to, toa=toa, pid=pid, dcs=dcs,
                  alphabet=alphabet, vp=vp, udl=udl, text=text, data=data, udh=udh_ies,
                  concat=concat, tpdu_len=len(pdu) - tpdu_start,
                  srr=bool(fo & 0x20), reject_duplicates=bool(fo & 0x04),
                  reply_path=bool(fo & 0x80), warnings=warnings)


# --------------------------------------------------------------------------
# Splitting text into parts (shared by DELIVER and SUBMIT encoders)

def split_text(text: str, force_ucs2: bool = False, udh_octets: int = 6) -> tuple[str, list]:
    """('gsm7', [septet lists]) or ('ucs2', [byte strings]), one per part.

    GSM 7-bit: 160 septets single, 153 per concatenated part (152 with a
    16-bit reference), an escape sequence is never split.  UCS-2: 70
    characters single, 67 per part (66), a surrogate pair is never split.
    """
    septets = None if force_ucs2 else gsm7_septets(text)
    per_septets = 160 - (udh_octets * 8 + 6) // 7
    per_octets = 140 - udh_octets
    if septets is not None:
        if len(septets) <= 160:
            return "gsm7", [septets]
        parts, cur = [], []
        i = 0
        while i < len(septets):
            unit = septets[i:i + 2] if septets[i] == GSM7_ESC else septets[i:i + 1]
            if len(cur) + len(unit) > per_septets:
                parts.append(cur)
                cur = []
            cur.extend(unit)
            i += len(unit)
        parts.append(cur)
        return "gsm7", parts
    data = text.encode("utf-16-be")
    if len(data) <= 140:
        return "ucs2", [data]
    parts, cur = [], b""
    i = 0
    while i < len(data):
        hi = data[i]
        unit = data[i:i + 4] if 0xD8 <= hi <= 0xDB else data[i:i + 2]
        if len(cur) + len(unit) > per_octets:
            parts.append(cur)
            cur = b""
        cur += unit
        i += len(unit)
    parts.append(cur)
    return "ucs2", parts


def _user_data(alphabet: str, body, concat: tuple[int, int, int] | None,
               ref16: bool = False) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) with an optional concatenation header (8- or 16-bit reference)."""
    if concat is None:
        udh = b""
    elif ref16:
        udh = bytes([6, 0x08, 4, (concat[0] >> 8) & 0xFF, concat[0] & 0xFF, concat[1], concat[2]])
    else:
        udh = bytes([5, 0x00, 3, concat[0] & 0xFF, concat[1], concat[2]])
    if alphabet == "gsm7":
        skip = (len(udh) * 8 + 6) // 7
        packed = bytearray(pack_septets([0] * skip + list(body)))
        packed[:len(udh)] = udh
        return skip + len(body), bytes(packed)
    return len(udh) + len(body), udh + bytes(body)


def _smsc_field(smsc: str) -> bytes:
    if not smsc:
        return b"\x00"
    toa, digits = encode_address(smsc)
    return bytes([len(digits) + 1, toa]) + digits


def _address_field(number: str) -> bytes:
    toa, digits = encode_address(number)
    if toa == 0xD0:
        n = len(gsm7_septets(number[:11]) or []) * 7
        return bytes([(n + 3) // 4, toa]) + digits
    return bytes([len(number.lstrip("+")), toa]) + digits


# --------------------------------------------------------------------------
# SMS-DELIVER (incoming messages stored in the simulated SIM)

def _scts(when: _dt.datetime) -> bytes:
    offset = when.utcoffset() or _dt.timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    fields = [when.year % 100, when.month, when.day, when.hour, when.minute, when.second]
    out = bytes(((v % 10) << 4) | (v // 10) for v in fields)
    q = abs(quarters)
    tz = ((q % 10) << 4) | (q // 10) | (0x08 if quarters < 0 else 0)
    return out + bytes([tz])


@dataclass
class DeliverPart:
    pdu: bytes  # with SMSC prefix
    tpdu_len: int
    text: str
    alphabet: str
    part: int
    parts: int


def encode_deliver(sender: str, text: str, smsc: str, ref: int,
                   when: _dt.datetime | None = None, force_ucs2: bool = False,
                   ref16: bool = False) -> list[DeliverPart]:
    """SMS-DELIVER PDUs for text, concatenated (8-bit ref, or 16-bit) when too long."""
    alphabet, bodies = split_text(text, force_ucs2, udh_octets=7 if ref16 else 6)
    return _deliver_pdus(sender, alphabet, bodies, smsc, ref, ref16, when)


def encode_deliver_parts(sender: str, texts: list[str], alphabet: str, smsc: str, ref: int,
                         when: _dt.datetime | None = None,
                         ref16: bool = False) -> list[DeliverPart]:
    """SMS-DELIVER PDUs keeping a message's existing split: one PDU per text in texts
    (concatenated when more than one), in alphabet ('gsm7', 'ucs2' or '8bit', whose
    text is latin-1).  A part that does not fit its alphabet moves the whole message
    to UCS-2; if it does not fit that either, the text is split anew (encode_deliver)."""
    n = len(texts)
    udh = 0 if n == 1 else (7 if ref16 else 6)
    max_septets = 160 - (udh * 8 + 6) // 7
    max_octets = 140 - udh
    if alphabet == "gsm7":
        bodies = [gsm7_septets(t) for t in texts]
        if all(b is not None and len(b) <= max_septets for b in bodies):
            return _deliver_pdus(sender, "gsm7", bodies, smsc, ref, ref16, when)
    if alphabet == "8bit":
        try:
            bodies = [t.encode("latin-1") for t in texts]
        except UnicodeEncodeError:
            bodies = None
        if bodies is not None and all(len(b) <= max_octets for b in bodies):
            return _deliver_pdus(sender, "8bit", bodies, smsc, ref, ref16, when)
    bodies = [t.encode("utf-16-be") for t in texts]
    if all(len(b) <= max_octets for b in bodies):
        return _deliver_pdus(sender, "ucs2", bodies, smsc, ref, ref16, when)
    return encode_deliver(sender, "".join(texts), smsc, ref, when, force_ucs2=False,
                          ref16=ref16)


DELIVER_DCS = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}


def _deliver_pdus(sender: str, alphabet: str, bodies: list, smsc: str, ref: int,
                  ref16: bool, when: _dt.datetime | None) -> list[DeliverPart]:
    when = when or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    n = len(bodies)
    out = []
    for i, body in enumerate(bodies, 1):
        concat = (ref, n, i) if n > 1 else None
        fo = 0x04 | (0x40 if concat else 0)  # SMS-DELIVER, no more messages
        udl, ud = _user_data(alphabet, body, concat, ref16)
        tpdu = (bytes([fo]) + _address_field(sender) + bytes([0x00, DELIVER_DCS[alphabet]])
                + _scts(when) + bytes([udl]) + ud)
        if alphabet == "gsm7":
            part_text = gsm7_decode(body)
        elif alphabet == "ucs2":
            part_text = bytes(body).decode("utf-16-be")
        else:
            part_text = bytes(body).decode("latin-1")
        out.append(DeliverPart(_smsc_field(smsc) + tpdu, len(tpdu), part_text, alphabet, i, n))
    return out


def encode_submit(to: str, text: str, mr: int = 0, ref: int = 0, smsc: str = "",
                  force_ucs2: bool = False, vp: int | None = None) -> list[tuple[bytes, int]]:
    """SMS-SUBMIT PDUs as (pdu with SMSC field, TPDU length); for tests."""
    alphabet, bodies = split_text(text, force_ucs2)
    n = len(bodies)
    out = []
    for i, body in enumerate(bodies, 1):
        concat = (ref, n, i) if n > 1 else None
        fo = 0x01 | (0x10 if vp is not None else 0) | (0x40 if concat else 0)
        udl, ud = _user_data(alphabet, body, concat)
        tpdu = (bytes([fo, mr & 0xFF]) + _address_field(to)
                + bytes([0x00, 0x08 if alphabet == "ucs2" else 0x00])
                + (bytes([vp]) if vp is not None else b"") + bytes([udl]) + ud)
        out.append((_smsc_field(smsc) + tpdu, len(tpdu)))
    return out


# --------------------------------------------------------------------------
# SMS-STATUS-REPORT (23.040 9.2.2.3), for submits that asked for one (TP-SRR)

# TP-ST values (23.040 9.2.3.15) by the names the control socket accepts.
REPORT_STATUS = {
    "delivered": 0x00, "forwarded": 0x01, "replaced": 0x02,
    "pending": 0x21,      # SME busy: the SC keeps trying
    "failed": 0x43,       # not obtainable: permanent
    "rejected": 0x42,     # connection rejected by SME: permanent
    "expired": 0x46,      # validity period expired: permanent
}


@dataclass
class StatusReport:
    pdu: bytes  # with SMSC prefix
    tpdu_len: int
    mr: int
    recipient: str
    status: int
    scts: _dt.datetime
    dt: _dt.datetime


def encode_status_report(smsc: str, mr: int, recipient: str, status: int,
                         scts: _dt.datetime, dt: _dt.datetime) -> StatusReport:
    """A status report PDU: first octet 0x06 (SMS-STATUS-REPORT, no more messages)."""
    tpdu = (bytes([0x06, mr & 0xFF]) + _address_field(recipient) + _scts(scts) + _scts(dt)
            + bytes([status & 0xFF]))
    return StatusReport(_smsc_field(smsc) + tpdu, len(tpdu), mr & 0xFF, recipient,
                        status & 0xFF, scts, dt)


def decode_status_report(pdu: bytes, with_smsc: bool = True) -> dict:
    """The fields of a status report (for tests): mr, recipient, status."""
    r = _Reader(pdu)
    if with_smsc:
        _read_smsc(r)
    fo = r.octet("first octet")
    if fo & 0x03 != 0x02:
        raise PduError(f"TP-MTI {fo & 0x03} is not SMS-STATUS-REPORT")
    mr = r.octet("TP-MR")
    recipient, toa = _read_address(r, "TP-RA")
    scts = r.take(7, "TP-SCTS")
    dt = r.take(7, "TP-DT")
    status = r.octet("TP-ST")
    return {"mr": mr, "recipient": recipient, "toa": toa, "status": status,
            "scts": scts.hex(), "dt": dt.hex()}


def decode_deliver(pdu: bytes, with_smsc: bool = True) -> dict:
    """The fields of an SMS-DELIVER (for tests): sender, toa, dcs, alphabet, udh, concat
    (ref, total, seq, ref_bits or None) and the part's text."""
    r = _Reader(pdu)
    smsc = _read_smsc(r) if with_smsc else ""
    fo = r.octet("first octet")
    if fo & 0x03 != 0x00:
        raise PduError(f"TP-MTI {fo & 0x03} is not SMS-DELIVER")
    sender, toa = _read_address(r, "TP-OA")
    pid = r.octet("TP-PID")
    dcs = r.octet("TP-DCS")
    alphabet = dcs_alphabet(dcs)
    r.take(7, "TP-SCTS")
    udl = r.octet("TP-UDL")
    ud = r.rest()
    udh_ies, concat, header_octets = [], None, 0
    if fo & 0x40:
        header_octets = ud[0] + 1
        udh_ies, concat = _parse_udh(ud[1:header_octets])
    if alphabet == "gsm7":
        skip = (header_octets * 8 + 6) // 7
        text = gsm7_decode(unpack_septets(ud, udl)[skip:])
    elif alphabet == "ucs2":
        text = ud[header_octets:udl].decode("utf-16-be", errors="replace")
    else:
        text = ud[header_octets:udl].decode("latin-1")
    return {"smsc": smsc, "sender": sender, "toa": toa, "pid": pid, "dcs": dcs,
            "alphabet": alphabet, "udh": [f"{iei:02X}:{d.hex().upper()}" for iei, d in udh_ies],
            "concat": None if concat is None else
            (concat.ref, concat.total, concat.seq, concat.ref_bits), "text": text}
