#!/usr/bin/env python3
"""BENCHMARKS.md and its chart from the benchmark results (issue 14).

Reads the CSV rows (part,module,keys,latency_ms,metric,value) that
benches/e2e.rs and benches/firmware.rs write, and writes a Markdown report
and an SVG line chart (APDUs and wall time at the modelled latency against
the number of keys, for both modules). Standard library only.

Usage: bench_report.py [--md FILE] [--svg FILE] [--svg-link PATH] CSV...
scripts/bench.sh runs it; do not edit BENCHMARKS.md by hand.
"""

import argparse
import csv
import datetime
import os
import subprocess
import sys

NAMES = {
    "picohsm": "libpicohsm_pkcs11.so",
    "opensc": "opensc-pkcs11.so",
    "raw-pcsc": "raw PC/SC loop (floor)",
    "firmware": "firmware SIGN APDU, in process",
    "p256-crate": "p256 crate",
    "rsa-crate": "rsa crate",
}
COLOURS = {"picohsm": "#1f77b4", "opensc": "#d62728"}


class Results:
    def __init__(self, paths):
        self.rows = []
        for p in paths:
            with open(p, newline="") as f:
                self.rows.extend(csv.DictReader(f))

    def get(self, part, module, metric, keys=0, latency=0):
        for r in self.rows:
            if (r["part"], r["module"], r["metric"]) == (part, module, metric) and int(
                r["keys"]
            ) == keys and int(r["latency_ms"]) == latency:
                return r["value"]
        return None

    def num(self, *a, **k):
        v = self.get(*a, **k)
        return float(v) if v is not None else None

    def values(self, field, part):
        return sorted({int(r[field]) for r in self.rows if r["part"] == part})


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# SVG


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(v):
    if v <= 0:
        return 1
    m = 10 ** len(str(int(v)))
    for step in (0.1, 0.2, 0.25, 0.5, 1):
        if v <= m * step:
            return m * step
    return m


def panel(x0, y0, w, h, title, ylabel, series, keys):
    """One line chart; series: {module: [(keys, value)]}."""
    out = []
    left, bottom, top, right = 60, 40, 30, 15
    pw, ph = w - left - right, h - top - bottom
    ox, oy = x0 + left, y0 + top + ph
    ymax = nice_max(max((v for s in series.values() for _, v in s), default=1))
    kmax = max(keys)
    kmin = min(keys)

    def px(k):
        return ox + (k - kmin) / ((kmax - kmin) or 1) * pw

    def py(v):
        return oy - v / ymax * ph

    out.append(
        f'<text x="{x0 + w / 2}" y="{y0 + 18}" text-anchor="middle" '
        f'font-weight="bold">{esc(title)}</text>'
    )
    for i in range(5):
        v = ymax * i / 4
        y = py(v)
        out.append(
            f'<line x1="{ox}" y1="{y:.1f}" x2="{ox + pw}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        label = f"{v:,.0f}" if ymax >= 10 else f"{v:.1f}"
        out.append(
            f'<text x="{ox - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>'
        )
    for k in keys:
        out.append(
            f'<text x="{px(k):.1f}" y="{oy + 16}" text-anchor="middle" font-size="11">{k}</text>'
        )
    out.append(f'<line x1="{ox}" y1="{oy}" x2="{ox + pw}" y2="{oy}" stroke="#000"/>')
    out.append(f'<line x1="{ox}" y1="{oy}" x2="{ox}" y2="{oy - ph}" stroke="#000"/>')
    out.append(
        f'<text x="{ox + pw / 2}" y="{oy + 34}" text-anchor="middle" font-size="12">'
        "keys on the token (each with a certificate)</text>"
    )
    out.append(
        f'<text transform="translate({x0 + 14},{oy - ph / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="12">{esc(ylabel)}</text>'
    )
    for module, pts in series.items():
        if not pts:
            continue
        c = COLOURS.get(module, "#000")
        path = " ".join(f"{px(k):.1f},{py(v):.1f}" for k, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for k, v in pts:
            out.append(f'<circle cx="{px(k):.1f}" cy="{py(v):.1f}" r="3" fill="{c}"/>')
            out.append(
                f'<text x="{px(k) + 5:.1f}" y="{py(v) - 5:.1f}" font-size="10" fill="{c}">'
                f"{v:,.0f}</text>"
            )
    return out


def svg_chart(res, latency):
    keys = res.values("keys", "first")
    w, h = 460, 300
    parts = []
    apdus = {
        m: [(k, res.num("first", m, "apdus", k, 0)) for k in keys if res.num("first", m, "apdus", k, 0) is not None]
        for m in ("picohsm", "opensc")
    }
    walls = {
        m: [
            (k, res.num("first", m, "wall_ms", k, latency))
            for k in keys
            if res.num("first", m, "wall_ms", k, latency) is not None
        ]
        for m in ("picohsm", "opensc")
    }
    parts += panel(0, 0, w, h, "APDUs from C_Initialize to the first signature", "APDUs", apdus, keys)
    parts += panel(
        w, 0, w, h, f"Wall time to the first signature at {latency} ms per APDU", "milliseconds", walls, keys
    )
    ly = h + 10
    lx = 80
    for m in ("picohsm", "opensc"):
        parts.append(f'<rect x="{lx}" y="{ly}" width="14" height="4" fill="{COLOURS[m]}"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly + 6}" font-size="12">{esc(NAMES[m])}</text>')
        lx += 220
    total_h = h + 24
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{total_h}" '
        f'viewBox="0 0 {2 * w} {total_h}" font-family="sans-serif">\n'
        f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(parts) + "\n</svg>\n"
    )


# ---------------------------------------------------------------------------
# Markdown


def git_head():
    try:
        return subprocess.run(
            ["git", "log", "-1", "--format=%h (%cs)"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(res, svg_link):
    lat = int(res.num("meta", "", "modelled_latency_ms") or 0)
    quick = res.get("meta", "", "quick") == "true"
    keys = res.values("keys", "first")
    lats = res.values("latency_ms", "first")
    md = []
    md.append("# Benchmarks")
    md.append("")
    md.append(
        "Generated by `scripts/bench.sh` (benches/e2e.rs, benches/firmware.rs, "
        "scripts/bench_report.py); do not edit by hand. "
        f"Run of {datetime.date.today().isoformat()} on `{esc(git_head())}`, "
        f"{os.cpu_count()} CPUs, {fmt(res.num('meta', '', 'runs'))} runs per figure"
        f"{' (QUICK smoke run: figures not meaningful)' if quick else ''}, "
        f"{fmt(res.num('meta', '', 'seconds_total'))} s for the end-to-end part."
    )
    md.append("")
    md.append(
        "Everything runs on virtual cards (`picohsm-vcard`) behind the real pcscd and "
        "vsmartcard's vpcd, with OpenSC's `opensc-pkcs11.so` on the same cards as this "
        "project's `libpicohsm_pkcs11.so`. Each measurement is a fresh child process, so "
        "loading the module and C_Initialize cost what they cost a program. APDUs are "
        "counted from the card's APDU log (the fewest of the runs: other programs that "
        "load OpenSC's module talk to every card); times and rates are medians of runs "
        "that alternate between the modules."
    )
    md.append("")
    if lat:
        prof = res.get("meta", "", "modelled_profile") or ""
        md.append(
            f"**Modelled device** (the columns and rows marked {lat} ms): {lat} ms per APDU "
            f"plus an RP2040's compute time for SIGN (`picohsm-vcard --latency-ms {lat}"
            f"{' --profile ' + prof if prof else ''}`: ECDSA 250 ms, RSA-2048 3 s), what a Pico "
            "HSM on USB takes: see *Latency model* below. 0 ms is the bare virtual card."
        )
    else:
        md.append(
            "**Modelled latency:** not measured in this run (this `picohsm-vcard` has no "
            "`--latency-ms`); wall times are at 0 ms per APDU only."
        )
    md.append("")

    # 1
    md.append("## 1. From C_Initialize to the first signature")
    md.append("")
    md.append(
        "dlopen, C_Initialize, C_GetSlotList, C_OpenSession, C_Login (PIN), "
        "C_FindObjects (private key by CKA_ID), C_Sign (ECDSA P-256) on a token with N EC "
        "P-256 keys, each with an X.509 certificate of its public key."
    )
    md.append("")
    header = ["keys", "APDUs ours", "APDUs OpenSC"]
    for l in lats:
        header += [f"ms ours @{l} ms", f"ms OpenSC @{l} ms"]
    # The modelled latency without the device's SIGN compute, where measured.
    bare = [l for l in lats if l and any(res.num("first", m, "wall_ms_transport_only", k, l) is not None for m in ("picohsm", "opensc") for k in keys)]
    for l in bare:
        header += [f"ms ours @{l} ms, no SIGN compute", f"ms OpenSC @{l} ms, no SIGN compute"]
    rows = []
    failures = []
    for k in keys:

        def cell(m, metric, l=0, digits=0):
            v = res.num("first", m, metric, k, l)
            if v is None and res.get("first", m, "failed", k, l) is not None:
                failures.append(f"{NAMES[m]}, {k} keys, {l} ms: `{res.get('first', m, 'failed', k, l)}`")
                before = res.num("first", m, "apdus_before_failure", k, l)
                if metric == "apdus" and before is not None:
                    return f"failed¹ (after {fmt(before)})"
                return "failed¹"
            return fmt(v, digits)

        r = [k, cell("picohsm", "apdus"), cell("opensc", "apdus")]
        for l in lats:
            r += [cell("picohsm", "wall_ms", l, 1), cell("opensc", "wall_ms", l, 1)]
        for l in bare:
            r += [cell("picohsm", "wall_ms_transport_only", l, 1), cell("opensc", "wall_ms_transport_only", l, 1)]
        rows.append(r)
    if len(keys) >= 2:

        def growth(m, metric, l=0):
            """Per added key between the two largest sizes measured."""
            have = [k for k in keys if res.num("first", m, metric, k, l) is not None]
            if len(have) < 2:
                return "–"
            a, b = have[-2], have[-1]
            x, y = res.num("first", m, metric, a, l), res.num("first", m, metric, b, l)
            return f"{fmt((y - x) / (b - a), 2)} ({a}→{b})"

        r = ["per added key", growth("picohsm", "apdus"), growth("opensc", "apdus")]
        for l in lats:
            r += [growth("picohsm", "wall_ms", l), growth("opensc", "wall_ms", l)]
        for l in bare:
            r += [growth("picohsm", "wall_ms_transport_only", l), growth("opensc", "wall_ms_transport_only", l)]
        rows.append(r)
    md.append(table(header, rows))
    md.append("")
    ratios = []
    for k in keys:
        for l in lats:
            for metric, what in (("wall_ms", ""), ("wall_ms_transport_only", ", no SIGN compute")):
                a, b = res.num("first", "picohsm", metric, k, l), res.num("first", "opensc", metric, k, l)
                if a is not None and b:
                    ratios.append(f"{k} keys @{l} ms{what}: {fmt(a / b, 3)}")
    if ratios:
        md.append(
            "Our wall time ÷ OpenSC's: " + "; ".join(ratios) + ". At the modelled device "
            "both modules wait for the same SIGN on the chip (250 ms for ECDSA P-256), which "
            "no module can shorten; the *no SIGN compute* columns hold the card at the same "
            "per-APDU latency without it: the part of the wall time the module's round trips decide."
        )
        md.append("")
    if failures:
        md.append("¹ The child process failed: " + "; ".join(sorted(set(failures))) + ".")
        md.append("")
    md.append(f"![APDUs and wall time against the number of keys]({svg_link})")
    md.append("")

    # 2
    md.append("## 2. Signatures per second")
    md.append("")
    md.append(
        f"One token ({fmt(res.num('meta', '', 'rate_token_keys'))} EC keys with certificates, plus an RSA-2048 key), one session, after one "
        "warm-up signature, at 0 ms per APDU. The floor is a PC/SC loop (the `pcsc` crate, "
        "one transaction) replaying the exact SIGN APDU our module sends for that key. "
        "Each run measures the three ways in turn, in an order that rotates from run to run; "
        "× floor is the median over the runs of a way's rate divided by the floor's in the same run."
    )
    md.append("")
    rows = []
    for m in ("picohsm", "opensc", "raw-pcsc"):
        r = [NAMES[m]]
        for alg in ("ecdsa-p256", "rsa-2048"):
            r += [
                fmt(res.num("rate", m, f"{alg}_per_s"), 1),
                fmt(res.num("rate", m, f"{alg}_ratio_to_raw"), 3),
                fmt(res.num("rate", m, f"{alg}_apdus_per_signature"), 2),
            ]
        rows.append(r)
    md.append(table(
            ["path", "ECDSA P-256 /s", "× floor", "APDUs/sig", "RSA-2048 /s", "× floor", "APDUs/sig"], rows
        ))
    md.append("")

    # 3
    md.append("## 3. PKA login")
    md.append("")
    if res.get("pka", "picohsm", "first_apdus_primary", 1) is None:
        md.append("Not measured in this run.")
    else:
        md.append(
            "Through this module only (OpenSC's module has no PKA login). C_Login(CKU_USER, "
            "secret) as an unmodified application calls it: 1-of-1 on a PKA-only token "
            "(`login = \"pka\"`, the secret is the authenticator's PIN); 2-of-3 on a token "
            "that also has a PIN (`login = \"pka+pin\"`, secret `PIN:authenticator PIN`), "
            "two authenticator cards; authenticators named in the settings. The first login "
            "of the process, and another after C_Logout. APDUs on each card during C_Login "
            "(authenticators in order)."
        )
        md.append("")
        rows = []
        for q in res.values("keys", "pka"):
            name = "1-of-1" if q == 1 else "2-of-3 + PIN"
            for l in res.values("latency_ms", "pka"):
                for tag in ("first", "again"):
                    auth = []
                    i = 1
                    while res.num("pka", "picohsm", f"{tag}_apdus_authenticator{i}", q, l) is not None:
                        auth.append(fmt(res.num("pka", "picohsm", f"{tag}_apdus_authenticator{i}", q, l)))
                        i += 1
                    rows.append(
                        [
                            name,
                            "first" if tag == "first" else "after C_Logout",
                            l,
                            fmt(res.num("pka", "picohsm", f"{tag}_apdus_primary", q, l)),
                            " + ".join(auth),
                            fmt(res.num("pka", "picohsm", f"{tag}_login_ms", q, l), 1),
                        ]
                    )
        md.append(
            table(["login", "which", "ms per APDU", "APDUs primary", "APDUs authenticators", "ms"], rows)
        )
    md.append("")

    # 4
    md.append("## 4. Two tokens from two threads")
    md.append("")
    md.append(
        "One process, one module: ECDSA signatures per second on one token from one "
        "thread, then on two tokens from two threads at once (both counted)."
    )
    md.append("")
    rows = []
    for l in res.values("latency_ms", "threads"):
        for pairing, label in (("same_instance", "one vpcd instance"), ("separate_instances", "two vpcd instances")):
            for m in ("picohsm", "opensc"):
                one = res.num("threads", m, f"{pairing}_one_token_one_thread_per_s", 0, l)
                if one is None:
                    continue
                rows.append(
                    [
                        NAMES[m],
                        l,
                        label,
                        fmt(one, 1),
                        fmt(res.num("threads", m, f"{pairing}_two_tokens_two_threads_per_s", 0, l), 1),
                        fmt(res.num("threads", m, f"{pairing}_speedup", 0, l), 2),
                    ]
                )
    md.append(
        table(
            ["module", "ms per APDU", "readers", "1 token, 1 thread /s", "2 tokens, 2 threads /s", "speed-up"],
            rows,
        )
    )
    md.append("")
    md.append(
        "vsmartcard's vpcd serves two readers per driver instance (`Virtual PCD 00 00` and "
        "`Virtual PCD 00 01`, …); the two pairings separate what pcscd and the driver do "
        "from what the module does."
    )
    md.append("")
    ours = [
        res.num("threads", "picohsm", f"{p}_speedup", 0, l)
        for p in ("same_instance", "separate_instances")
        for l in res.values("latency_ms", "threads")
    ]
    theirs = [
        res.num("threads", "opensc", f"{p}_speedup", 0, l)
        for p in ("same_instance", "separate_instances")
        for l in res.values("latency_ms", "threads")
    ]
    ours = [v for v in ours if v is not None]
    theirs = [v for v in theirs if v is not None]
    if ours and theirs:
        md.append(
            f"Two tokens from two threads: {fmt(min(ours), 2)}–{fmt(max(ours), 2)} times one "
            f"token's rate through this module, {fmt(min(theirs), 2)}–{fmt(max(theirs), 2)} "
            "through OpenSC's. pcsc-lite's client serves the calls of one PC/SC context one at a "
            "time (one socket to pcscd, one pcscd thread): this module connects each token "
            "through a context of its own, OpenSC's keeps one context for all its readers, so "
            "its two tokens take turns."
        )
        md.append("")

    # 5
    md.append("## 5. The firmware beside the raw RustCrypto crates")
    md.append("")
    md.append(
        "In process (`cargo bench --bench firmware`): SIGN APDUs into the firmware's "
        "`Card::transmit` (APDU parsing, key unsealing, DER encoding included) against the "
        "crate call alone. On a real device the RP2040/RP2350 is the limit instead: see below."
    )
    md.append("")
    rows = []
    for alg, crate in (("ecdsa-p256", "p256-crate"), ("rsa-2048", "rsa-crate")):
        rows.append(
            [
                alg,
                fmt(res.num("firmware", "firmware", f"{alg}_per_s"), 1),
                fmt(res.num("firmware", crate, f"{alg}_per_s"), 1),
                fmt(res.num("firmware", "firmware", f"{alg}_ratio_to_crate"), 2),
            ]
        )
    md.append(table(["algorithm", "firmware /s", "crate /s", "firmware ÷ crate"], rows))
    md.append("")

    # 6
    md.append("## 6. Resident memory")
    md.append("")
    md.append(
        "VmRSS of the child process: before loading the module, after dlopen + "
        "C_Initialize, and after the first signature and listing every object "
        "(C_FindObjects with an empty template, then CKA_CLASS, CKA_ID and CKA_LABEL of each)."
    )
    md.append("")
    rows = []
    for k in keys:
        for m in ("picohsm", "opensc"):
            rows.append(
                [
                    k,
                    NAMES[m],
                    fmt(res.num("first", m, "objects", k)),
                    fmt(res.num("first", m, "rss_before_kib", k)),
                    fmt(res.num("first", m, "rss_loaded_kib", k)),
                    fmt(res.num("first", m, "rss_listed_kib", k)),
                ]
            )
    md.append(table(["keys", "module", "objects listed", "KiB before", "KiB loaded", "KiB after listing"], rows))
    md.append("")
    short = [
        (k, res.num("first", "opensc", "objects", k), res.num("first", "picohsm", "objects", k))
        for k in keys
        if None not in (res.num("first", "opensc", "objects", k), res.num("first", "picohsm", "objects", k))
    ]
    short = [(k, o, p) for k, o, p in short if o < p]
    if short:
        md.append(
            "opensc-pkcs11.so lists fewer objects than the token holds: "
            + ", ".join(f"{fmt(o)} of {fmt(p)} at {k} keys" for k, o, p in short)
            + " (it stops at 128 objects): measured here, not a limit of the card."
        )
        md.append("")

    # Set-up
    md.append("## Token set-up")
    md.append("")
    md.append(
        "One card grows from the smallest token to the largest; after each size its flash "
        "image is copied and every measurement starts a card on a copy. Keys are generated "
        "on the card through this module (C_GenerateKeyPair; the SmartCard-HSM layout "
        "OpenSC reads), each certificate is made by `openssl x509 -req -force_pubkey` from "
        "the key's CKA_EC_POINT and written with C_CreateObject. Not through OpenSC's "
        "module: its C_GenerateKeyPair fails with CKR_GENERAL_ERROR once a token holds 42 "
        "keys with certificates (OpenSC 0.23, no APDU refused by the card)."
    )
    md.append("")
    rows = []
    for k in res.values("keys", "setup"):
        s = res.num("setup", "picohsm", "seconds_to_add_keys", k)
        if s is not None:
            rows.append([k, fmt(res.num("setup", "picohsm", "keys_added", k)), fmt(s, 2)])
    md.append(table(["token size", "keys added", "seconds"], rows))
    rsa = res.num("setup", "picohsm", "seconds_rsa2048_keygen")
    if rsa is not None:
        md.append("")
        md.append(f"RSA-2048 key generation on the virtual card: {rsa:.2f} s.")
    md.append("")

    md.append("## Latency model")
    md.append("")
    md.append(
        "A real Pico HSM answers over USB full speed (64-byte bulk endpoints) and runs each "
        "APDU on its second core while the first polls for completion once per millisecond, "
        "so every APDU costs milliseconds where the virtual card takes tens of microseconds. "
        "Published figures (confidence in brackets):"
    )
    md.append("")
    md.append(
        "- a pcscd debug log of a real Pico HSM (RP2040, firmware 5.0; "
        "github.com/polhenarejos/pico-hsm/issues/68): a short object listing 0.5 ms, a "
        "~450-byte response 2.7 ms from USB send to status word (measured; medium as a "
        "per-APDU figure) → **2 ms per APDU** is the model;\n"
        "- RSA-2048 sign about 3 s on the RP2040 (upstream README, 2022; measured by "
        "upstream);\n"
        "- ECDSA P-256 sign about 250 ms on the RP2040 (no published figure: estimated from "
        "pkcs11-tool timings in pico-hsm issue 23 and a scalar-multiplication timing; weak);\n"
        "- for comparison, Nitrokey HSM 2: RSA-2048 about 600 ms, ECDSA P-256 about 167 ms "
        "per signature (Nitrokey documentation, HSM FAQ)."
    )
    md.append("")
    md.append(
        "So on a device, signatures per second are bounded by the chip, and what the module "
        "decides is the number of round trips before the first one: section 1."
    )
    md.append("")
    return "\n".join(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--md", default="BENCHMARKS.md")
    ap.add_argument("--svg", default="docs/benchmarks.svg")
    ap.add_argument("--svg-link", default="docs/benchmarks.svg")
    a = ap.parse_args()
    res = Results([p for p in a.csv if os.path.exists(p)])
    if not res.rows:
        sys.exit("no results")
    lat = int(res.num("meta", "", "modelled_latency_ms") or 0)
    os.makedirs(os.path.dirname(a.svg) or ".", exist_ok=True)
    with open(a.svg, "w") as f:
        f.write(svg_chart(res, lat))
    with open(a.md, "w") as f:
        f.write(report(res, a.svg_link))
    print(f"wrote {a.md} and {a.svg}")


if __name__ == "__main__":
    main()
