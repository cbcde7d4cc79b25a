#!/usr/bin/env python3
"""Check `vmfs-rescue devices --json` from the hba-matrix boot.

    check_devices.py DEVICES.json < ROWS     (ROWS: "qemu-device size-MiB disk-driver pci-driver")

Every disk must be listed, read-only, under a controller with the expected driver, and the
mptsas HBA (no disk behind it in QEMU 7.2) must be listed.
"""
import json
import sys

inv = json.load(open(sys.argv[1]))
bad = []
if "mptsas" not in {c.get("driver") for c in inv["controllers"]}:
    bad.append("no mptsas controller")
for row in sys.stdin.read().splitlines():
    if not row.strip():
        continue
    hba, mib, _, cdrv = row.split()
    hits = [(c, d) for c in inv["controllers"] for d in c.get("disks", []) if d["size"] == int(mib) << 20]
    if not any(c.get("driver") == cdrv and d.get("read_only") for c, d in hits):
        seen = [(c.get("driver"), d["name"], d.get("read_only")) for c, d in hits]
        bad.append(f"{hba}: no read-only {mib} MiB disk under a {cdrv} controller (seen: {seen})")
print("; ".join(bad) if bad else "every disk under its controller, read-only; mptsas listed")
sys.exit(1 if bad else 0)
