"""One slot process driven the way workwurm drives it, without workwurm: its CPU per task.

    python3 bench/scripts/slot_cpu.py [SLOT_PY] [TASKS]

Starts `python3 -c SLOT_PY` (default: python/tatzelwurm/slot.py) with the pipes workwurm gives a
slot (fd 3 tasks, fd 4 results, fd 5 the lifeline, fd 6 the doorbell; see slot.py's Protocol),
waits for its hello, warms it up with 200 noops, then hands it TASKS noops (default 30,000) of
examples/tasks.py in `run` frames of 64, keeping at most 128 handed and not done, and reads its
frames when it rings, as workwurm does. Prints the slot process's CPU (user + system, from
/proc/PID/schedstat) and the wall time per task. Only the slot runs besides this script, so
the figure moves less than W1's; compare two slot.py files by alternating runs of each.

With VG set, the slot runs under that command: VG="valgrind --tool=callgrind" counts its
instructions, which are the same from run to run (the time-based parts of the loop aside:
under valgrind every task is slower than slot.py's CHILD_FLOOR).
"""

import fcntl
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = str(ROOT / "examples" / "tasks.py") + ":noop"
BATCH = 64
DEPTH = 128


def pipe():
    """A pipe whose ends are above fd 20 (so that the dup2s onto 3-6 overwrite none of them)."""
    r, w = os.pipe()
    high = (fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 20), fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 20))
    os.close(r)
    os.close(w)
    return high


class Slot:
    def __init__(self, source):
        tasks_r, self.tasks = pipe()
        self.results, results_w = pipe()
        lifeline_r, self.lifeline = pipe()
        self.bell, bell_w = pipe()

        def child():
            # dup2 clears close-on-exec: the slot inherits exactly these four.
            for fd, to in ((tasks_r, 3), (results_w, 4), (lifeline_r, 5), (bell_w, 6)):
                os.dup2(fd, to)
            os.setpgid(0, 0)

        wrapper = os.environ.get("VG", "").split()
        self.proc = subprocess.Popen(
            wrapper + [sys.executable, "-c", source], preexec_fn=child, close_fds=False, cwd="/tmp"
        )
        for fd in (tasks_r, results_w, lifeline_r, bell_w):
            os.close(fd)
        flags = fcntl.fcntl(self.results, fcntl.F_GETFL)
        fcntl.fcntl(self.results, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.buffer = b""
        self.next_id = 1

    def frames(self):
        """Waits for a ring, then returns the frames the results pipe holds."""
        os.read(self.bell, 4096)
        while True:
            try:
                data = os.read(self.results, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            self.buffer += data
        frames, at = [], 0
        while len(self.buffer) - at >= 4:
            (length,) = struct.unpack_from(">I", self.buffer, at)
            if len(self.buffer) - at - 4 < length:
                break
            frames.append(json.loads(self.buffer[at + 4 : at + 4 + length]))
            at += 4 + length
        self.buffer = self.buffer[at:]
        return frames

    def hand(self, count):
        first = self.next_id
        self.next_id += count
        run = [[i, 1, FUNCTION, "[%d]" % i, "{}"] for i in range(first, first + count)]
        body = json.dumps({"run": run}, separators=(",", ":")).encode()
        os.write(self.tasks, struct.pack(">I", len(body)) + body)

    def run(self, n):
        """Hands `n` noops, at most DEPTH outstanding, and waits until all are done."""
        handed = done = 0
        while done < n:
            while handed < n and handed - done < DEPTH:
                count = min(BATCH, n - handed)
                self.hand(count)
                handed += count
            for frame in self.frames():
                done += len(frame.get("done", ()))

    def cpu_ns(self):
        with open(f"/proc/{self.proc.pid}/schedstat") as f:
            return int(f.read().split()[0])

    def close(self):
        os.close(self.tasks)  # end of file on fd 3: the slot exits
        self.proc.wait(timeout=60)
        os.close(self.lifeline)


def main():
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "python" / "tatzelwurm" / "slot.py")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30_000
    slot = Slot(source.read_text())
    try:
        while not any("hello" in frame for frame in slot.frames()):
            pass
        slot.run(200)
        cpu, started = slot.cpu_ns(), time.perf_counter()
        slot.run(n)
        wall, cpu = time.perf_counter() - started, slot.cpu_ns() - cpu
    finally:
        slot.close()
    print(f"slot CPU {cpu / 1e3 / n:.2f} us/task, wall {wall / n * 1e6:.2f} us/task ({source.name}, {n} noops)")


if __name__ == "__main__":
    main()
