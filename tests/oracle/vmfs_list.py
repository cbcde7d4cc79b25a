#!/usr/bin/env python3
"""List a VMFS volume with dissect.vmfs: the independent reader vmfs-rescue is compared against.

Usage:
    vmfs_list.py IMAGE... [--hash]               one JSON object per line, sorted by path
    vmfs_list.py IMAGE... --cat PATH             a file's content to stdout
    vmfs_list.py IMAGE... --locate PATH          where PATH's first byte lies: one JSON object
                                                 {"path","size","image","offset"} (image: index
                                                 into IMAGE...; offset: bytes into that image,
                                                 inside the file descriptor for resident data;
                                                 both null when the first block is unallocated)
    vmfs_list.py IMAGE... [--hash] --compare OURS.jsonl [--ours-cat BIN]
                                                 diff OURS (same schema) against the oracle; with
                                                 --ours-cat, also hash `BIN cat IMAGE... --path P`
                                                 for every regular file the oracle hashed
    vmfs_list.py IMAGE... [--hash] --manifest MANIFEST.json --manifest-image REL
                                                 check the oracle against the corpus manifest
    vmfs_list.py IMAGE... --hash --truth TRUTH.json
                                                 check a forged datastore against its ground truth


IMAGE... are the LVM devices (partitions) of one volume, in any order, or one raw
logical-volume image (FS descriptor at +0x200000, no LVM header). An IMAGE may be
PATH@OFFSET: the partition at byte OFFSET of a whole-disk image (what the forge writes).

Each listed object is {"path", "type", "size", "mode", "mtime", "sha256"}:
  path    absolute, "/"-separated; the root itself is not listed
  type    file | dir | symlink | rdm | sysfile (| other:N for an unknown descriptor type)
  size    the descriptor's file length in bytes
  mode    st_mode as an integer, with the file-type bits dissect.vmfs adds (S_IFREG, S_IFDIR,
          S_IFLNK, S_IFBLK for RDM) when the on-disk mode has none
  mtime   seconds since the Unix epoch, as stored
  sha256  hex digest of the content of regular files and non-directory system files of at
          most 256 MiB when --hash is given; null otherwise

Exit status: 0 on success, 1 when a comparison finds differences or an entry could not be
read (the entry is still printed, with an extra "error" key), 2 on usage errors or when no
VMFS volume could be opened.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from typing import BinaryIO, Iterator, NoReturn

from dissect.vmfs.c_vmfs import FS3_DescriptorType
from dissect.vmfs.exception import InvalidHeader
from dissect.vmfs.lvm import LVM
from dissect.vmfs.vmfs import VMFS

HASH_LIMIT = 256 * 1024 * 1024


def _vmfs3_fixup() -> None:
    """VMFS3 FDs leave blockOffsetShift (meta+0x89) at 0 (seen on the 2009 VMFS3 sample of the
    format reference). dissect.vmfs derives it from blockSize for system files only
    (resource.py, "Fix up metadata for older VMFS versions") and fails on VMFS3 regular files.
    Apply dissect's own rule to every FD of a volume older than VMFS5, so the oracle can read
    VMFS3 content; nothing changes for VMFS5/6."""
    from functools import cached_property

    from dissect.vmfs.descriptor import FileDescriptor

    original = FileDescriptor.metadata.func

    def metadata(self):  # noqa: ANN001, ANN202
        m = original(self)
        if self.vmfs.major_version <= 19 and m.blockOffsetShift == 0 and m.blockSize:
            m.blockOffsetShift = (m.blockSize & -m.blockSize).bit_length() - 1
        return m

    prop = cached_property(metadata)
    prop.__set_name__(FileDescriptor, "metadata")
    FileDescriptor.metadata = prop


_vmfs3_fixup()
CHUNK = 1024 * 1024

TYPE_NAMES = {
    FS3_DescriptorType.REGFILE: "file",
    FS3_DescriptorType.DIRECTORY: "dir",
    FS3_DescriptorType.SYMLINK: "symlink",
    FS3_DescriptorType.RDM: "rdm",
    FS3_DescriptorType.SYSFILE: "sysfile",
}

FIELDS = ("type", "size", "mode", "mtime", "sha256")


def fail(msg: str) -> NoReturn:
    print(f"vmfs_list: {msg}", file=sys.stderr)
    sys.exit(2)


class OffsetFile(io.RawIOBase):
    """A read-only view of `fh` from byte `base` on: a partition inside a whole-disk image."""

    def __init__(self, fh: BinaryIO, base: int) -> None:
        self.fh, self.base, self.pos = fh, base, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, off: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = off
        elif whence == 1:
            self.pos += off
        else:
            self.pos = self.fh.seek(0, 2) - self.base + off
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:  # noqa: ANN001 (buffer protocol)
        self.fh.seek(self.base + self.pos)
        n = self.fh.readinto(b)
        self.pos += n or 0
        return n or 0


def open_image(spec: str) -> BinaryIO:
    """`PATH` or `PATH@OFFSET` (the partition's byte offset in a whole-disk image)."""
    path, _, off = spec.rpartition("@") if "@" in spec else (spec, "", "")
    fh = open(path, "rb")  # noqa: SIM115 (open for the run)
    if not off:
        return fh
    return io.BufferedReader(OffsetFile(fh, int(off, 0)), buffer_size=1 << 20)


def open_volume(images: list[str]) -> VMFS:
    """Open the VMFS on the LVM made of `images`, or on one raw logical-volume image. An
    image may be `PATH@OFFSET` for a partition inside a whole-disk image."""
    try:
        fhs: list[BinaryIO] = [open_image(p) for p in images]
    except (OSError, ValueError) as e:
        fail(str(e))
    try:
        lvm = LVM(fhs)
    except (InvalidHeader, EOFError) as e:
        if len(fhs) != 1:
            fail(f"{images}: not all are LVM devices ({type(e).__name__}); a raw LV image goes alone")
        try:
            return VMFS(fhs[0])
        except (InvalidHeader, EOFError) as e2:
            fail(f"{images[0]}: neither an LVM device nor a VMFS volume ({type(e2).__name__}: {e2})")

    found = []
    for vol in lvm.volumes:
        if not vol.is_valid():
            print(f"vmfs_list: volume {vol.uuid} is incomplete (missing device?), skipped", file=sys.stderr)
            continue
        try:
            found.append(VMFS(vol.open()))
        except (InvalidHeader, EOFError) as e:
            print(f"vmfs_list: volume {vol.uuid} holds no VMFS ({type(e).__name__}: {e})", file=sys.stderr)
    if not found:
        fail(f"no VMFS volume in {images}")
    if len(found) > 1:
        print(f"vmfs_list: {len(found)} VMFS volumes found, listing the first", file=sys.stderr)
    return found[0]


def type_name(fd) -> str:
    try:
        return TYPE_NAMES[FS3_DescriptorType(fd.type)]
    except (ValueError, KeyError):
        return f"other:{int(fd.type)}"


def sha256_of(fd, offset: int = 0, length: int | None = None) -> str:
    """SHA-256 of `length` bytes of a file from `offset` (default: all of it)."""
    h = hashlib.sha256()
    remaining = fd.size - offset if length is None else length
    with fd.open() as stream:
        stream.seek(offset)
        while remaining > 0:
            buf = stream.read(min(CHUNK, remaining))
            if not buf:
                raise OSError(f"short read: {remaining} bytes missing")
            h.update(buf)
            remaining -= len(buf)
    return h.hexdigest()


def entry(path: str, fd, want_hash: bool) -> dict:
    kind = type_name(fd)
    obj = {
        "path": path,
        "type": kind,
        "size": int(fd.size),
        "mode": int(fd.mode),
        "mtime": int(fd.metadata.mtime),
        "sha256": None,
    }
    hashable = kind == "file" or (kind == "sysfile" and not fd.is_dir())
    if want_hash and hashable and fd.size <= HASH_LIMIT:
        try:
            obj["sha256"] = sha256_of(fd)
        except Exception as e:  # noqa: BLE001 (an oracle reports, it does not stop)
            obj["error"] = f"{type(e).__name__}: {e}"
    return obj


def walk(vmfs: VMFS, want_hash: bool) -> Iterator[dict]:
    """Every entry under the root, depth first; directories are entered once."""
    seen = {vmfs.root.address}
    stack = [("", vmfs.root)]
    while stack:
        prefix, directory = stack.pop()
        try:
            children = sorted(directory.iterdir(), key=lambda d: d.name)
        except Exception as e:  # noqa: BLE001
            yield {"path": prefix or "/", "type": "dir", "error": f"listing: {type(e).__name__}: {e}"}
            continue
        for de in children:
            if de.name in (".", ".."):
                continue
            path = f"{prefix}/{de.name}"
            try:
                fd = de.file_descriptor
                obj = entry(path, fd, want_hash)
            except Exception as e:  # noqa: BLE001
                yield {"path": path, "type": None, "error": f"{type(e).__name__}: {e}"}
                continue
            yield obj
            if fd.is_dir() and fd.address not in seen:
                seen.add(fd.address)
                stack.append((path, fd))


def listing(vmfs: VMFS, want_hash: bool) -> list[dict]:
    return sorted(walk(vmfs, want_hash), key=lambda o: o["path"])


def cat(vmfs: VMFS, path: str) -> int:
    try:
        fd = vmfs.get(path)
        return _cat(fd, path)
    except BrokenPipeError:
        raise
    except Exception as e:  # noqa: BLE001 (missing path, RDM, damaged map)
        print(f"vmfs_list: {path}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def _cat(fd, path: str) -> int:
    if fd.is_dir():
        print(f"vmfs_list: {path} is a directory", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    remaining = fd.size
    with fd.open() as stream:
        while remaining > 0:
            buf = stream.read(min(CHUNK, remaining))
            if not buf:
                print(f"vmfs_list: short read of {path}, {remaining} bytes missing", file=sys.stderr)
                return 1
            out.write(buf)
            remaining -= len(buf)
    out.flush()
    return 0


def locate(vmfs: VMFS, images: list[str], path: str) -> int:
    try:
        fd = vmfs.get(path)
        vol_off, tbz = fd._resolve_offset(0)  # dissect's own resolver; (offset, to-be-zeroed)
    except Exception as e:  # noqa: BLE001
        print(f"vmfs_list: {path}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    image, offset = None, None
    if not tbz:
        runs = getattr(vmfs.fh, "runs", None)
        if runs is None:  # a raw logical-volume image
            image, offset = 0, vol_off
        else:
            for logical, physical, length, device in runs:
                if logical <= vol_off < logical + length:
                    name = getattr(device.fh, "name", None)
                    image = images.index(name) if name in images else None
                    offset = physical + (vol_off - logical)
                    break
    print(json.dumps({"path": path, "size": int(fd.size), "image": image, "offset": offset}))
    return 0


def diff(theirs: dict[str, dict], ours: dict[str, dict], label: str) -> list[str]:
    """Differences between the oracle's entries and `label`'s, by path. A null sha256 on
    either side is not compared."""
    problems = []
    for path in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(path), ours.get(path)
        if a is None:
            problems.append(f"{path}: only in {label}")
            continue
        if b is None:
            problems.append(f"{path}: missing from {label}")
            continue
        for k in FIELDS:
            if k not in a or k not in b:
                continue
            if k == "sha256" and (a[k] is None or b[k] is None):
                continue
            if a[k] != b[k]:
                problems.append(f"{path}: {k}: oracle {a[k]!r}, {label} {b[k]!r}")
    return problems


def diff_content(theirs: dict[str, dict], images: list[str], binary: str) -> list[str]:
    """Hash what `binary cat` gives for every regular file the oracle hashed."""
    import subprocess

    problems = []
    for path, a in sorted(theirs.items()):
        if a.get("type") != "file" or not a.get("sha256"):
            continue
        h = hashlib.sha256()
        n = 0
        with subprocess.Popen(
            [binary, "cat", *images, "--path", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            while buf := proc.stdout.read(CHUNK):
                h.update(buf)
                n += len(buf)
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if proc.returncode != 0:
            problems.append(f"{path}: `cat` exited {proc.returncode}: {err[:200]}")
        elif h.hexdigest() != a["sha256"]:
            problems.append(f"{path}: content: oracle sha256 {a['sha256']}, `cat` gave {n} bytes, {h.hexdigest()}")
    return problems


def load_jsonl(path: str) -> dict[str, dict]:
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"vmfs_list: {path}:{n}: not JSON: {e}") from None
            out[obj["path"]] = obj
    return out


def load_manifest(path: str, image: str) -> dict[str, dict]:
    """The manifest's files of `image` (its path relative to the manifest's folder) in our schema."""
    with open(path) as f:
        manifest = json.load(f)
    for item in manifest:
        if image in [i["path"] for i in item.get("image_files", [])]:
            files = item.get("fs_files") or []
            break
    else:
        raise SystemExit(f"vmfs_list: {image} is not in {path}")
    out = {}
    for m in files:
        kind = TYPE_NAMES.get(FS3_DescriptorType(m["type"]), f"other:{m['type']}")
        out[m["path"]] = {
            "path": m["path"],
            "type": kind,
            "size": m["size"],
            "mode": int(m["mode"], 8) if isinstance(m["mode"], str) else m["mode"],
            "mtime": m["mtime"],
            "sha256": m.get("sha256"),
        }
    return out


def diff_truth(vmfs: VMFS, entries: list[dict], truth_path: str) -> list[str]:
    """Compare the oracle with a forge ground truth: the live tree, types, sizes, symlink
    targets, and content (whole-file SHA-256 at any size, or the per-block hashes of huge sparse
    files, read through dissect.vmfs)."""
    with open(truth_path) as f:
        truth = json.load(f)
    ours = {e["path"]: e for e in entries if e.get("type") != "sysfile"}
    live = {t["path"]: t for t in truth["files"] if t["state"] == "live"}
    problems = [f"missing in dissect.vmfs: {p}" for p in sorted(set(live) - set(ours))]
    problems += [f"not in the ground truth: {p}" for p in sorted(set(ours) - set(live))]
    for path, t in sorted(live.items()):
        o = ours.get(path)
        if o is None:
            continue
        if o.get("type") != t["kind"]:
            problems.append(f"{path}: type {o.get('type')} != {t['kind']}")
        if t["kind"] == "dir":
            continue
        if o.get("size") != t["size"]:
            problems.append(f"{path}: size {o.get('size')} != {t['size']}")
        try:
            if t["kind"] == "symlink":
                with vmfs.get(path).open() as stream:
                    target = stream.read(t["size"]).decode()
                if target != t["symlink_target"]:
                    problems.append(f"{path}: target {target!r} != {t['symlink_target']!r}")
            elif t.get("sha256"):
                got = o.get("sha256") or sha256_of(vmfs.get(path))
                if got != t["sha256"]:
                    problems.append(f"{path}: sha256 {got} != {t['sha256']}")
            for b in t.get("block_hashes") or []:
                got = sha256_of(vmfs.get(path), b["offset"], b["len"])
                if got != b["sha256"]:
                    problems.append(f"{path}: block at {b['offset']}: sha256 {got} != {b['sha256']}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"{path}: {type(e).__name__}: {e}")
    checked = sum(1 for t in live.values() if t.get("sha256") or t.get("block_hashes"))
    print(f"truth: {len(live)} live entries, {checked} checked by content", file=sys.stderr)
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", metavar="IMAGE")
    ap.add_argument("--hash", action="store_true", help="hash regular files up to 256 MiB")
    ap.add_argument("--cat", metavar="PATH", help="write the content of PATH to stdout")
    ap.add_argument("--locate", metavar="PATH", help="print where the first byte of PATH lies")
    ap.add_argument("--compare", metavar="JSONL", help="compare with another lister's output")
    ap.add_argument("--ours-cat", metavar="BIN", help="with --compare: check `BIN cat` against the hashes")
    ap.add_argument("--manifest", metavar="JSON", help="compare with the corpus manifest")
    ap.add_argument("--manifest-image", metavar="REL", help="the image's path in the manifest")
    ap.add_argument("--truth", metavar="JSON", help="compare with a forge ground truth (vmfs-rescue forge)")
    args = ap.parse_args(argv)

    vmfs = open_volume(args.images)
    if args.cat is not None:
        return cat(vmfs, args.cat)
    if args.locate is not None:
        return locate(vmfs, args.images, args.locate)

    entries = listing(vmfs, args.hash)
    errors = [e for e in entries if "error" in e]
    for e in errors:
        print(f"vmfs_list: {e['path']}: {e['error']}", file=sys.stderr)

    if args.truth:
        problems = diff_truth(vmfs, entries, args.truth)
        for p in problems:
            print(p)
        print(f"{len(entries)} entries, {len(problems)} differences from the ground truth", file=sys.stderr)
        return 1 if problems or errors else 0

    if args.compare or args.manifest:
        oracle = {e["path"]: e for e in entries}
        problems = []
        if args.compare:
            problems += diff(oracle, load_jsonl(args.compare), args.compare)
            if args.ours_cat:
                problems += diff_content(oracle, args.images, args.ours_cat)
        if args.manifest:
            if not args.manifest_image:
                ap.error("--manifest needs --manifest-image")
            problems += diff(oracle, load_manifest(args.manifest, args.manifest_image), "manifest")
        for p in problems:
            print(p)
        hashed = sum(1 for e in entries if e.get("sha256"))
        print(f"{len(entries)} entries ({hashed} hashed), {len(problems)} differences", file=sys.stderr)
        return 1 if problems or errors else 0

    out = sys.stdout
    for e in entries:
        out.write(json.dumps(e, sort_keys=False) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
