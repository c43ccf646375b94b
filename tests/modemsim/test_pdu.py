#!/usr/bin/python3
"""Unit test of sms_pdu: SMS-SUBMIT decoding and SMS-DELIVER encoding.

Reference PDUs come from a published example and from python3-gammu's
encoder (libgammu's PDU code, as used by gammu and gammu-smsd); the
gammu-based checks are skipped when the module is missing.
Exit 0 pass, 1 fail.  Run: /usr/bin/python3 tests/modemsim/test_pdu.py
"""

from __future__ import annotations

import sys

from _testutil import Checker

import sms_pdu

try:
    import gammu
except ImportError:
    gammu = None


def gammu_submit(text: str, unicode: bool = False, entry: str = "ConcatenatedTextLong",
                 number: str = "+32470000001") -> list[bytes]:
    msgs = gammu.EncodeSMS({"Class": -1, "Unicode": unicode,
                            "Entries": [{"ID": entry, "Buffer": text}]})
    out = []
    for m in msgs:
        m.update(Number=number, SMSC={"Number": "+32475161616"}, Type="Submit")
        out.append(gammu.EncodePDU(m))
    return out


def decode_all(pdus: list[bytes]) -> list[sms_pdu.Submit]:
    return [sms_pdu.decode_submit(p) for p in pdus]


def main() -> int:
    check = Checker("test_pdu")

    check.section("published example (no SMSC, VP relative)")
    s = sms_pdu.decode_submit(bytes.fromhex("0011000B916407281553F80000AA0AE8329BFD4697D9EC37"))
    check(s.to == "+46708251358" and s.text == "hellohello" and s.vp["format"] == "relative",
          "to +46708251358, 'hellohello', VP relative 4 days", s)
    check(s.vp["minutes"] == 4 * 24 * 60, "VP AA = 4 days", s.vp)

    check.section("own encoder round trips")
    cases = [("plain", False), ("ext chars ^{}\\[~]|€ and @£$¥", False),
             ("x" * 152 + "€" + "y" * 20, False), ("Ωμέγα ✓ 日本 😀" * 8, False),
             ("forced ucs2", True)]
    for text, ucs2 in cases:
        parts = [sms_pdu.decode_submit(p) for p, _ in
                 sms_pdu.encode_submit("+32470000001", text, ref=42, force_ucs2=ucs2)]
        n = len(parts)
        check("".join(p.text for p in parts) == text and
              all(p.concat is None if n == 1 else p.concat.total == n for p in parts),
              f"{text[:24]!r}... -> {n} part(s) {parts[0].alphabet}")
    esc = [sms_pdu.decode_submit(p) for p, _ in
           sms_pdu.encode_submit("+32470000001", "a" * 152 + "€" + "b" * 10)]
    check(len(esc) == 2 and esc[0].text == "a" * 152 and esc[1].text.startswith("€"),
          "an escape sequence is not split across parts (152 + 2 septets)")

    check.section("validity period formats and flags")
    pdu, _ = sms_pdu.encode_submit("+32470000001", "vp", vp=167)[0]
    check(sms_pdu.decode_submit(pdu).vp["minutes"] == 24 * 60, "VP A7 = 1 day")
    # absolute VP (VPF=11), status report requested, reject duplicates
    absolute = bytes.fromhex("00" + "3D" + "07" + "0B912374000000F1" + "0000"
                             + "62113201044500" + "02" + "E834")
    s = sms_pdu.decode_submit(absolute)
    check(s.vp == {"format": "absolute", "raw": "62113201044500"} and s.srr and
          s.reject_duplicates and s.mr == 7 and s.text == "hi", "absolute VP, SRR, RD, MR 7", s)
    alnum = bytes.fromhex("000100" + "09D0C8329BFD06" + "0000" + "02E834")  # to "Hello"
    s = sms_pdu.decode_submit(alnum)
    check(s.to == "Hello" and s.toa == 0xD0, "alphanumeric destination", s)

    check.section("malformed PDUs are refused")
    bad = {
        "truncated": "0011000B916407281553F80000AA0AE8329B",
        "trailing octets": "0011000B916407281553F80000AA0AE8329BFD4697D9EC3700",
        "SMS-DELIVER, not SUBMIT": "0004000B916407281553F80000AA0AE8329BFD4697D9EC37",
        "UDL over 160": "0001000B916407281553F80000A1" + "00" * 141,
        "UDH longer than data": "0041000B916407281553F8000007" + "0A000301010200",
    }
    for what, hexpdu in bad.items():
        try:
            sms_pdu.decode_submit(bytes.fromhex(hexpdu))
            check(False, f"{what} refused")
        except sms_pdu.PduError as e:
            check(True, f"{what} refused ({e})")

    if gammu is None:
        print("  (python3-gammu missing: cross-checks with libgammu's encoder skipped)")
        return check.result()

    check.section("decoding what libgammu encodes")
    for text, uni, entry in [
            ("hello", False, "ConcatenatedTextLong"),
            ("x" * 200 + "[]{}€", False, "ConcatenatedTextLong"),
            ("Ωμέγα ✓ 日本 " * 10, True, "ConcatenatedTextLong"),
            ("sixteen bit ref " * 15, False, "ConcatenatedTextLong16bit"),
            ("a" * 152 + "€" + "b" * 10, False, "ConcatenatedTextLong")]:
        parts = decode_all(gammu_submit(text, uni, entry))
        n = len(parts)
        joined = "".join(p.text for p in parts)
        bits = {p.concat.ref_bits for p in parts} if n > 1 else {None}
        ok = (joined == text and all(p.to == "+32470000001" and p.smsc == "+32475161616"
                                      for p in parts)
              and (n == 1 or sorted(p.concat.seq for p in parts) == list(range(1, n + 1))))
        check(ok, f"{entry} {text[:20]!r}... -> {n} part(s), {parts[0].alphabet}, "
                  f"ref bits {bits.pop()}", joined)

    check.section("libgammu decodes our SMS-DELIVER")
    for sender, text in [("+32470100001", "ACK 1234"), ("Bank", "Saldo 12 EUR"),
                         ("+32470100002", "Ωμέγα ACK " * 10), ("0470100003", "y" * 300)]:
        parts = sms_pdu.encode_deliver(sender, text, "+32475161616", ref=5)
        decoded = [gammu.DecodePDU(p.pdu, SMSC=True) for p in parts]
        joined = "".join(d["Text"] for d in decoded)
        check(joined == text and all(d["Number"] == sender for d in decoded),
              f"{sender}: {text[:20]!r}... in {len(parts)} part(s)", (joined, decoded[0]))
    return check.result()


if __name__ == "__main__":
    sys.exit(main())
