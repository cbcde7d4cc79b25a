#!/usr/bin/env python3
"""Check a recovery made inside the appliance against the forge's ground truth.

    check_recovery.py IMAGE.truth.json GUEST_OUT [HOST_OUT]

GUEST_OUT is the `recover --to` folder copied off the target disk (debugfs rdump / mcopy).
Checks, as tests/integration/recover_scenarios.rs does:
  - every file report.json says was written exists and has the SHA-256 the report gives;
  - every written file's content is a file of the truth (nothing invented), under its own name
    unless it was carved (regenerated descriptors and .vmx files are ours, not the truth's);
  - every live file of the truth with content is recovered;
  - the guest found what the same binary finds on the host (HOST_OUT): the same set of
    (path, sha256), so a driver or block-device difference in the appliance shows up.
"""
import hashlib
import json
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def written(out):
    report = json.load(open(os.path.join(out, "report.json")))
    return [i for i in report["items"] if isinstance(i.get("sha256"), str)]


def main():
    truth = json.load(open(sys.argv[1]))
    guest = sys.argv[2]
    host = sys.argv[3] if len(sys.argv) > 3 else None
    errors = []
    files = list(truth["files"]) + [f for p in truth.get("previous") or [] for f in p.get("files", [])]
    by_sha = {}
    for f in files:
        if f.get("sha256"):
            by_sha.setdefault(f["sha256"], []).append(f)

    items = written(guest)
    for i in items:
        path = os.path.join(guest, i["output"])
        if not os.path.isfile(path):
            errors.append(f"{i['path']}: reported written, missing on the target")
            continue
        got = sha256(path)
        if got != i["sha256"]:
            errors.append(f"{i['path']}: content {got[:16]} differs from the report's {i['sha256'][:16]}")
        # Descriptors and .vmx files vmfs-rescue writes itself (marked in their first line) are
        # no file of the truth by design.
        if i["state"] == "regenerated":
            continue
        matches = by_sha.get(got, [])
        base = os.path.basename(i["path"])
        if not any(os.path.basename(f["path"]) == base or i["state"] == "carved" for f in matches):
            errors.append(f"{i['path']}: content {got[:16]} is no file of the truth named {base}")

    recovered = {i["sha256"] for i in items}
    for f in truth["files"]:
        if f.get("state") == "live" and f.get("sha256") and f.get("size", 0) > 0 and f["sha256"] not in recovered:
            errors.append(f"live file {f['path']} not recovered")
    deleted = [f for f in truth["files"] if f.get("state") == "deleted" and f.get("sha256") in recovered]
    print(f"{len(items)} files written and checked; {len(deleted)} of the truth's deleted files came back:")
    for f in deleted:
        print(f"  deleted {f['path']} ({f.get('size')} bytes) recovered")

    if host:
        h = {(i["path"], i["sha256"]) for i in written(host)}
        g = {(i["path"], i["sha256"]) for i in items}
        for p, s in sorted(h - g):
            errors.append(f"found on the host, not in the appliance: {p} {s[:16]}")
        for p, s in sorted(g - h):
            errors.append(f"found in the appliance, not on the host: {p} {s[:16]}")

    for e in errors:
        print("ERROR:", e)
    if not deleted:
        errors.append("no deleted file recovered")
        print("ERROR: no deleted file recovered")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
