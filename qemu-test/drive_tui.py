#!/usr/bin/env python3
"""Drive the appliance's TUI over its serial console, as an admin at a serial-over-LAN prompt.

    drive_tui.py SOCKET SCREENS_OUT FOLDER

Connects to QEMU's serial socket, keeps a VT100 screen (pyte) of what the TUI draws, and:
lists the controllers and disks (Hardware), runs the deep scan, opens the datastore, marks the
VM folder FOLDER (deleted on the forged datastore), picks the attached disk labelled RESCUEOUT as
destination (a source with nothing on it: the TUI asks, stops reading it and mounts it), writes, and waits for the report. Each screen reached is
appended to SCREENS_OUT. Exits non-zero with the screen when a step times out.
"""
import socket
import sys
import time

import pyte

COLS, ROWS = 80, 24
DOWN, HOME = "\x1b[B", "\x1b[H"


class Tui:
    def __init__(self, path, log):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(0.2)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.log = open(log, "w")

    def pump(self):
        try:
            data = self.sock.recv(65536)
            if data:
                self.stream.feed(data)
        except socket.timeout:
            pass

    def text(self):
        return "\n".join(self.screen.display)

    def wait(self, what, ok, timeout=240):
        end = time.time() + timeout
        while time.time() < end:
            self.pump()
            if ok(self.text()):
                # Let the rest of the frame arrive.
                for _ in range(3):
                    self.pump()
                self.log.write(f"==== {what}\n{self.text()}\n")
                self.log.flush()
                return
        sys.exit(f"timed out waiting for {what}; screen:\n{self.text()}")

    def send(self, keys):
        self.sock.sendall(keys.encode())
        end = time.time() + 0.4
        while time.time() < end:
            self.pump()

    def pick(self, name, then, header=("Name", "Modified")):
        """Put the cursor on the row holding `name` of the list under `header`, press `then`."""
        lines = self.screen.display
        top = next(i for i, l in enumerate(lines) if all(h in l for h in header))
        row = next(i for i, l in enumerate(lines[top + 1:]) if name in l)
        self.send(HOME)
        for _ in range(row):
            self.send(DOWN)
        self.send(then)


def main():
    sock, out, folder = sys.argv[1:4]
    t = Tui(sock, out)
    # The console may have been drawn before we connected: a resize-free redraw comes with any
    # key; '2' (Sources) is harmless.
    t.send("2")
    # Opening the disks and reading the volumes takes a while under emulation.
    t.wait("the forged volume on Sources", lambda s: "datastore" in s and "Enter browses" in s and "opening" not in s)
    t.send("1")
    t.wait("controllers and disks on Hardware", lambda s: "megaraid_sas" in s and "sd" in s)
    t.send("4")
    t.send("s")
    t.wait("the end of the deep scan", lambda s: "finished: the findings are in Browse" in s)
    t.send("3")
    t.wait("the rebuilt catalogue", lambda s: "volumes and scan" in s and "rebuilding" not in s and "volumes/" in s)
    t.pick("volumes/", "\r")
    t.wait("the volumes folder", lambda s: "datastore" in s)
    t.pick("datastore", "\r")
    t.wait(f"the folder {folder}", lambda s: f"{folder}/" in s)
    t.pick(f"{folder}/", " ")
    t.wait("the mark", lambda s: f"[x] {folder}/" in s)
    t.send("r")
    t.wait("the destinations", lambda s: "RESCUEOUT" in s)
    t.pick("RESCUEOUT", "\r", header=("Device", "File system"))
    # Every disk but the stick is read as a source; the empty target disk is taken out of the
    # sources when chosen, after a question.
    # The question wraps with the dialog's width: match its short tail, never a phrase.
    t.wait("the question or the mount", lambda s: "(y/n)" in s or "free)" in s)
    if "(y/n)" in t.text():
        t.send("y")
    t.wait("the mounted destination", lambda s: "free)" in s)
    t.send("s")
    t.wait("the end of the writing", lambda s: "report:" in s)


if __name__ == "__main__":
    main()
