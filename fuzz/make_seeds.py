#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/TARGET/seed-*: inputs in
each harness's format (see fuzz/src/*.rs), built from the APDU traces in
tests/fixtures/traces/. Run from anywhere; it rewrites the seed-* files."""
import glob, os, struct

ROOT = os.path.dirname(os.path.abspath(__file__))
TRACES = os.path.join(ROOT, "..", "tests", "fixtures", "traces")


def trace(name):
    """(command, response) pairs of a trace file."""
    pairs, cmd = [], None
    for line in open(os.path.join(TRACES, name)):
        line = line.strip()
        if line.startswith(">"):
            cmd = bytes.fromhex(line[1:])
        elif line.startswith("<") and cmd is not None:
            pairs.append((cmd, bytes.fromhex(line[1:])))
            cmd = None
    return pairs


def u16(n):
    return struct.pack(">H", n)


def long(b):
    return u16(len(b)) + b


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def firmware():
    # start, seed, then ops (fuzz/src/firmware.rs `step`).
    SELECT, VERIFY, SO, POWER, RELOAD, FAIL = 3, 4, 6, 10, 11, 12
    keygen = lambda i: bytes([14, i])
    sign = lambda i: bytes([15, i, 0]) + bytes([32]) + bytes(range(32))
    login = lambda a, how=0: bytes([9, a, how])
    write("firmware_apdu", "pin-keygen-sign", bytes([1, 5, SELECT, VERIFY]) + keygen(1) + sign(1) + bytes([RELOAD]))
    write("firmware_apdu", "pka-pin-login", bytes([2, 7, SELECT]) + login(0) + bytes([VERIFY]) + keygen(2) + sign(2) + bytes([POWER, RELOAD]))
    write("firmware_apdu", "pka-only-2of2", bytes([3, 9, SELECT]) + login(0) + login(1) + keygen(1) + login(1, 8) + bytes([RELOAD]))
    init = bytes([7, 2, 0x08, 2, 1, 3])  # flags: PKA; options REPLACE_PKA; n=2 m=1; retries
    write("firmware_apdu", "init-register-replace", bytes([0, 3, SELECT]) + init + bytes([VERIFY, 8, 2, 0, 8, 1, 1, 1]) + login(2) + bytes([FAIL, VERIFY, RELOAD]))
    write("firmware_apdu", "wrong-pins", bytes([1, 4, SELECT, 5, 4]) + b"0000" + bytes([0, 5, 8]) + b"00000000" + bytes([1, SO, FAIL]) + keygen(3) + bytes([13, 8, RELOAD]))
    # Raw APDUs of a recorded PKA login (op 1: two-byte length).
    raw = b"".join(bytes([1]) + long(c) for c, _ in trace("pka_login.txt")[:20])
    write("firmware_apdu", "trace-pka-login", bytes([2, 2]) + raw)
    raw = b"".join(bytes([1]) + long(c) for c, _ in trace("kg.txt"))
    write("firmware_apdu", "trace-keygen", bytes([1, 3, VERIFY]) + raw)


def module():
    # flags, files, chunk selector, script (fuzz/src/module.rs `run`).
    for name in ["pka_login.txt", "kg.txt", "info.txt", "bad.txt", "provision.txt"]:
        answers = b"".join(long(r) for _, r in trace(name))
        write("module_card_data", "script-" + name[:-4], bytes([0x03, 0, 0]) + answers)
    # A card with files: the device chain, the device key's PrKD and
    # OpenSC's PrKD and request of key 1, answers split every 100 bytes.
    reads = {}
    for name in glob.glob(os.path.join(TRACES, "*.txt")):
        for c, r in trace(os.path.basename(name)):
            if c[:2] == b"\x00\xb1" and c[2:4] != b"\x00\x00" and c[9:11] == b"\x00\x00" and r[-2:] in (b"\x90\x00", b"\x62\x82"):
                reads.setdefault(c[2:4], r[:-2])
    files = b""
    n = 0
    for fid, content in sorted(reads.items()):
        if n == 11:
            break
        files += bytes([2, fid[0], fid[1]]) + long(content)
        n += 1
    write("module_card_data", "files", bytes([0x12, n]) + files + bytes([1, 99]) + long(bytes([1, 0, 1, 0, 0x90, 0])))


def wire():
    seen = set()
    out = []
    for name in ["pka_login.txt", "kg.txt", "kgrsa.txt", "dec.txt"]:
        for c, r in trace(name):
            out.append(bytes([2]) + c)
            if len(r) > 2:
                out.append(bytes([0]) + r[:-2])
                out.append(bytes([4]) + r[:-2])
    out += [bytes([5]) + bytes.fromhex("0100010090"), bytes([5]) + bytes.fromhex("00100000000606"),
            bytes([1, 1, 0x7F, 0x21, 0, 40]) + b"x", bytes([3, 0x80, 0x68, 1, 0x73, 3, 0x12, 0x34]) + bytes(300),
            bytes([6]) + bytes.fromhex("A02B30100C0761757468 6B6579030206C0040101300B040101030307308002 0101A10A30083002040002020100".replace(" ", ""))]
    keep = []
    for sel in range(8):
        for o in [o for o in out if o[0] == sel][:3]:
            if o not in seen:
                seen.add(o)
                keep.append(o)
    for i, o in enumerate(keep):
        write("wire_codecs", "%02d" % i, o)


if __name__ == "__main__":
    for f in glob.glob(os.path.join(ROOT, "corpus", "*", "seed-*")):
        os.remove(f)
    firmware()
    module()
    wire()
