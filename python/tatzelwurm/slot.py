"""The tatzelwurm slot loop: runs tasks for workwurm inside the user's own Python.

workwurm starts one process per slot and supervises it: it kills the slot's process group to stop
a task (a kill, or a timeout), and starts a fresh slot when one dies. Modules a task imports stay
imported for the slot's later tasks. The cargo-built workwurm carries this file and runs it as
`PYTHON -c <this file>`, so nothing has to be installed; the workwurm of the Python package runs
it as `PYTHON -m tatzelwurm.slot`. Either way it is this one file, and it imports nothing but the
standard library (under -m, Python imports the package's __init__ first, and nothing more).

A slot started with the argument --keep-children leaves the processes a task started running
when the task ends (see Processes a task leaves behind); one started with --no-reload never
imports changed source files afresh (see Hot reload); one started with --max-memory BYTES
measures itself after each task (see Memory limit).

For tasks
---------
While a task runs, os.environ["TATZELWURM_TASK_ID"] and os.environ["TATZELWURM_ATTEMPT"] hold its
task id and attempt number, as strings (processes the task starts inherit them). The attempt grows
by one each time the coordinator hands the task out again (after a retry, or when a worker was
lost), so the pair makes an idempotency key: "task 12, attempt 3" names one run. While the slot
waits for work the two variables are not set (between tasks it runs back to back they change
from one task's values to the next's).

Async tasks
-----------
A task whose function is a coroutine function (`async def`, or any function whose call returns a
coroutine) runs on the slot's one asyncio event loop, which the slot creates when it first needs
it and keeps for its life (so an aiohttp session or a connection pool a module keeps stays on one
loop). The first time a call of a function returns a coroutine, the slot tells workwurm
("coroutines") before the coroutine runs; workwurm then hands that function's tasks "together":
the slot starts each at once on its loop, up to workwurm's --async-concurrency of them, and sends
each one's "done" when it ends, in any order. A task workwurm hands in order (it did not know yet)
runs to its end before the next, on the same loop. A kill or a timeout of a together task cancels
its asyncio task ("interrupt"); one that does not end soon after is killed with its slot by
workwurm. A sync function handed together (it was async before a hot reload) runs at once,
blocking the loop for as long as it runs.

What a together task writes through sys.stdout and sys.stderr (print, logging handlers made while
it runs, tracebacks it prints) is its own: while together tasks run, sys.stdout and sys.stderr are
routers that write to the buffer of the task whose context they run in (a context variable, so
asyncio tasks that a task creates write to its buffer too), and to the real streams otherwise.
What reaches fds 1 and 2 directly (os.write, child processes, C code, a handler that kept the
original sys.stderr object from before) cannot be split between tasks: it is reported with the
next together task of the slot that ends. TATZELWURM_TASK_ID and TATZELWURM_ATTEMPT name the
together task started last (one process has one environment), and the processes a together task
leaves behind are ended when the slot has no together task left, not when the task ends. asyncio
tasks that a task leaves running after it returned go on only while the loop runs (while other
async tasks run), and what they write is nobody's.

Memory limit
------------
Under workwurm's --max-memory the slot gets the argument --max-memory BYTES. After each task it
runs in order, it reads its own resident memory (RSS, from /proc/self/statm); past the limit it
sends that task's "done" followed by {"outgrown": RSS}, begins nothing more, and waits for
workwurm to kill it and start a fresh slot: the task's result stands, and the tasks the slot held
were not begun, so workwurm hands them out again. A task that passes the limit while it runs is
workwurm's to catch: it measures every slot ten times a second and kills one found past the
limit twice in a row during the same task, failing that task with MemoryLimit. Only the slot
process itself is measured, not processes a task starts.

Hot reload
----------
Unless started with --no-reload, the slot notices when a source file of your code changed and
imports your code afresh for its next task, so that a fixed bug takes effect without restarting
workwurm. "Your code" is every imported module whose file is a .py outside the standard library
and site-/dist-packages (your project, editable installs, `path/to/file.py` tasks). At most every
RELOAD_EVERY seconds, just before it begins a task, the slot compares each such file's mtime and
size with what it saw when the module was imported (never a stat per task); if any changed, it
drops all of your modules from sys.modules (and its own caches, and the stale __pycache__ entries
of the changed files), and the task imports them afresh: module-level code runs again, so
module-level state starts over. Not reloaded: installed packages, C extensions, references that
modules which were not reloaded (a library's registry, say) keep to your old functions and
classes, and tasks already running, which finish with the code they started with.

Dying with workwurm
-------------------
Every process a task starts stays in the slot's process group unless it leaves it on purpose.
When workwurm exits, however it exits (even `kill -9`), that whole group is SIGKILLed: the kernel
kills the slot itself (PR_SET_PDEATHSIG), and a guardian process kills the rest. workwurm holds
the only write end of a pipe, the lifeline, whose read end every slot gets as fd 5; nothing is
ever written to it. Before anything of the user's is imported, the slot forks the guardian (see
start_guardian), which blocks reading fd 5; when workwurm is gone the read returns end of file
and the guardian SIGKILLs the group, itself included. It is a separate process, so a task that
holds the GIL for hours in C code cannot delay it. It is not the slot's child (an intermediate
process forks it and exits at once), so os.wait() in a task never sees it, and it dies with the
group whenever workwurm kills a slot.

Processes a task leaves behind
------------------------------
When a task ends (it returned or raised), the processes it started and left running in the slot's
process group are SIGKILLed before its result is sent, as a kill or a timeout would: a task's
`subprocess.Popen(["sleep", "1000"])` does not outlive it. A process that left the group on
purpose (start_new_session=True, setsid, setpgid) is left alone, and so is the guardian. The slot
is a child subreaper (PR_SET_CHILD_SUBREAPER, set after the guardian runs): orphaned descendants
become its children, so a slot with no child at all has nothing to end, which one waitid() tells
without reading /proc. A task that ran for less than CHILD_FLOOR (20 us) is not even asked: no
process can be started that fast (see CHILD_FLOOR). workwurm's --keep-children turns this off (the
slot then gets the argument --keep-children): leftovers live until the slot dies, as before.

Protocol (keep in step with workwurm/src/slot_channel.rs)
---------------------------------------------------------
stdin and stdout belong to the tasks, so the slot talks to workwurm over inherited pipes: fd 3
carries frames from workwurm, fd 4 frames to workwurm, and fd 6 is the doorbell (below). A frame
is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON, one object with one key:

  workwurm -> slot  {"run": [[12, 1, "pkg.mod:fn", "<JSON text of an array>",
                               "<JSON text of an object>"], ...]}
      Tasks to run one after another, in order, after those the slot holds already, each an
      array [task, attempt, function, args, kwargs, needs, together] whose last two entries
      are there only when needed (an array, not an object: it is parsed once per task, and
      keys cost more than the task of a noop). workwurm hands a slot several at once when
      their functions are fast (one behind the one it runs when they are short), so that it
      never waits for its next task; they wait in the slot's own queue.
      A task whose "together" is true (of a coroutine function) is started on the event loop at
      once instead, beside the slot's other together tasks (see Async tasks).
  workwurm -> slot  {"cancel": [[12, 1], ...]}
      Tasks (task, attempt) the slot holds and must not begin: they were killed.
  workwurm -> slot  {"interrupt": [[12, 1], ...]}
      Together tasks to cancel (their asyncio tasks); each is answered by its "done" when it
      ended (a CancelledError, unless it ended otherwise first).
  slot -> workwurm  {"hello": {"python": "3.11.7", "executable": "/usr/bin/python3", "pid": 4711,
                                "capture": [7, 8]}}
      Once, when the slot is ready for tasks. "capture" holds the fds of the files that capture a
      task's stdout and stderr (see Output): workwurm opens them through /proc so that what a task
      wrote is still there when the slot dies under it (killed, timed out, crashed).
  slot -> workwurm  {"done": [[12, 1, true, "<JSON text of the result>", "stdout", "stderr"]]}
      [task, attempt, ok, result, stdout, stderr]; for a failure, ok is false and the result's
      place holds {"kind": "ValueError", "message": "...", "traceback": "..."}. Sent as soon as
      each task ends, and before the slot begins its next task: workwurm learns from it that the
      next one has begun (its timeout runs from then, and a kill of it kills the slot).
  slot -> workwurm  {"skipped": [[12, 1], ...]}
      The cancelled tasks the slot dropped from its queue. Before it begins a task, the slot
      reads whatever workwurm sent meanwhile, so a cancel that arrived in time is always
      honoured and said so ahead of the "done" after which the task would have begun; a task
      that began before its cancel arrived is killed by workwurm with the slot.
  slot -> workwurm  {"unmet": [[12, 1], ...]}
      A task handed with needs [[11, 1], ...] (a held task behind the attempts of the tasks it
      runs after) runs only if each of those completed in this slot (ok true); otherwise the
      slot skips it and says so in place of its `done` (the task after it begins next).
  slot -> workwurm  {"coroutines": ["pkg.mod:fn", ...]}
      Functions the slot found to be coroutine functions (a call returned a coroutine), once per
      function per slot process, before that coroutine runs.
  slot -> workwurm  {"outgrown": 123456789}
      Under --max-memory, right after a task's "done": the slot's resident memory in bytes, past
      the limit. The slot begins nothing more and waits to be killed (see Memory limit).

The doorbell: workwurm does not wait on fd 4 itself. A write to a pipe that a process waits on
wakes it, and at tens of thousands of tasks a second that wake-up (and the switch to workwurm it
sets off in the slot) cost more than a noop task. Instead the slot writes one byte to fd 6 after
the frames workwurm should read now, and workwurm then reads all that fd 4 holds. Every frame
rings at once except a "done", which rings when the slot has RING_LOW tasks left (workwurm tops
it up in time) or none (workwurm learns that it idles), when its next task is held or together,
when the frame is longer than RING_BYTES, or when RING_EVERY passed since the last ring. A "done"
that did not ring is in the pipe all the same, before the next task begins, so it survives the
slot's death (workwurm reads the pipe to its end when the slot exits); and workwurm looks at fd 4
again 2 ms after each ring, and after each such look that found frames. A "done" written more than
RING_EVERY after the last ring rings, so none waits unread longer than about 2 ms, even behind a
task that hangs: workwurm's idea of which task runs lags by at most that while fast tasks stream.

End of file on fd 3 means workwurm is gone: the slot exits. Anything else the slot does not
understand is a bug in one side; the slot reports it on workwurm's stderr and goes on. fd 5 is
the lifeline (above); the slot closes it once its guardian runs.

Output: once the slot is ready, fds 1 and 2 point at temporary files (so C code and child processes
are captured too, and a task that prints megabytes never blocks on a pipe), and stay so: after each
task the slot sends the last KEEP_BYTES of each and empties the files that were written to, with no
dup2 per task. Whether anything was written is told by an inotify watch on each file, watched
together with fd 3 by one epoll, which the slot asks once after each task (see Capture.watch): a
task that wrote nothing costs that one epoll_wait, which also tells whether workwurm sent
something; without inotify, each file costs one lseek and fd 3 a poll. The slot's own complaints go
to workwurm's stderr, kept aside at start. While a task runs, workwurm reads what it wrote so far
from the same files a few times a second (it opened them through /proc when the slot said hello)
and forwards it live; the slot does nothing for that, except that sys.stdout is line-buffered, so
each line a task prints reaches the file at once, and libc's stdout is unbuffered (see
unbuffer_c_stdout), so what C code prints with printf reaches it at once too.
"""

import collections
import importlib
import importlib.util
import json
import os
import select
import signal
import struct
import sys
import tempfile
import time
import traceback

TASKS_FD = 3
RESULTS_FD = 4
LIFELINE_FD = 5
BELL_FD = 6
# The doorbell (see Protocol): a `done` is rung at once when the slot has this many tasks left (so
# that workwurm tops it up in time) or none (so that it knows the slot idles), ...
RING_LOW = 32
# ... when this many seconds passed since the last ring (so that workwurm's view of which task
# runs is never older than this when another task ends), ...
RING_EVERY = 0.001
# ... or when its frame is this long (so that the unread pipe never fills); longer frames are
# written in pieces of LONG_PIECE bytes, each rung.
RING_BYTES = 4096
LONG_PIECE = 32 * 1024
TASK_ID_ENV = "TATZELWURM_TASK_ID"
ATTEMPT_ENV = "TATZELWURM_ATTEMPT"
# How much of each output stream a task keeps: its tail, which usually explains what happened.
KEEP_BYTES = 256 * 1024
# Results travel in workwurm's frames to the coordinator (64 MiB at most); stay well below.
MAX_RESULT_BYTES = 16 * 1024 * 1024
# Bound the error texts for the same reason (str() of a huge object, a very deep traceback).
MAX_TEXT_CHARS = 64 * 1024
ALLOWED = "return lists, dicts, strings, numbers, booleans or None"
# Where a task's fields are in the array workwurm hands it (see Protocol): needs and together
# are there only when needed.
TASK, ATTEMPT, FUNCTION, ARGS, KWARGS, NEEDS, TOGETHER = range(7)


def start_guardian():
    """Start the process that kills this slot's group once workwurm is gone (see the top); returns
    its pid.

    Runs first, while the slot has no threads and nothing of the user's is imported (only what
    site and .pth files run at interpreter start came before). The slot is its process group's
    leader (workwurm made it so), and the guardian stays in that group.
    """
    try:
        os.fstat(LIFELINE_FD)
    except OSError:
        sys.exit(
            "tatzelwurm slot: fd %d (the lifeline) is not open; slots run only under workwurm"
            % LIFELINE_FD
        )
    group = os.getpgrp()
    # The intermediate tells the guardian's pid on this pipe: the guardian stays in the group,
    # and ending a task's leftovers must spare it.
    told, tell = os.pipe()
    middle = os.fork()
    if middle == 0:
        # The intermediate: fork the guardian and leave at once, so that the guardian is
        # re-parented away from the slot. os._exit everywhere: no atexit handlers, no flushing of
        # buffers inherited from the slot.
        try:
            guardian = os.fork()
            if guardian == 0:
                guard(group)
            os.write(tell, b"%d" % guardian)
        except BaseException:
            os._exit(1)
        os._exit(0)
    os.close(tell)
    _, status = os.waitpid(middle, 0)
    if status != 0:
        sys.exit("tatzelwurm slot: cannot start the guardian process (status %d)" % status)
    # Written before the intermediate exited, so it is in the pipe now.
    guardian = int(os.read(told, 32) or b"0")
    os.close(told)
    # The guardian has its copy; tasks and their children need none.
    os.close(LIFELINE_FD)
    return guardian


def guard(group):
    """The guardian: wait for end of file on the lifeline, then SIGKILL `group`. Never returns."""
    try:
        # Only the lifeline's end or SIGKILL may end it: a SIGINT or SIGTERM to the group (from a
        # task, say) must not take the slot's protection away while the slot lives on.
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        # Hold nothing but the lifeline: never the task pipes (workwurm must see their end when
        # the slot dies) nor workwurm's stdout and stderr (a reader of those waits for their end).
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = (0, 1, 2, LIFELINE_FD)
        try:
            open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:
            open_fds = range(256)
        for fd in open_fds:
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        while True:
            try:
                if not os.read(LIFELINE_FD, 1):
                    break  # end of file: workwurm is gone
            except InterruptedError:
                continue
            except OSError:
                break
    finally:
        # Also on an error above: a slot whose guardian failed must not run unguarded.
        try:
            os.killpg(group, signal.SIGKILL)
        finally:
            os._exit(1)


class TaskEnviron:
    """Sets TATZELWURM_TASK_ID and TATZELWURM_ATTEMPT for each task (see For tasks).

    os.environ[...] = ... calls glibc's setenv, which scans the C environment and allocates the
    new "NAME=VALUE" string, and keeps every string it ever allocated (so that a pointer a caller
    kept stays valid): ~1.2 us and ~80 bytes that are never freed per task, 80 MB after a million
    tasks of one slot. Instead the task id lives in one buffer of the slot's own, handed to libc
    once with putenv (which keeps the pointer, not a copy) and rewritten in place per task; the
    C environment (getenv in C code, the environment child processes inherit) reads it from
    there, and os.environ's own dict gets the same bytes, so that Python code reads the same
    value. If the variable was changed or removed through os.environ meanwhile (by a task, or
    between tasks, see `clear`), the dict no longer holds the bytes set last, and the buffer is
    handed to putenv again. The attempt is usually the same from task to task ("1"), so it is set
    through os.environ only when it changes (setenv reuses a string it allocated before), and
    not even formatted while the dict still holds the object it held when it was set.
    Without ctypes, both go through os.environ.
    """

    def __init__(self):
        self.data = None
        try:
            # os.environ's dict of encoded names and values (POSIX: bytes), which
            # os.environ[...] reads.
            data = os.environ._data
            key = os.environ.encodekey(TASK_ID_ENV)
            if type(key) is not bytes or type(data) is not dict:
                return
            import ctypes

            putenv = ctypes.CDLL(None, use_errno=True).putenv
            putenv.argtypes = [ctypes.c_char_p]
            prefix = key + b"="
            # Room for any u64 (20 digits) and the closing NUL; never freed (libc points at it).
            self.buffer = ctypes.create_string_buffer(prefix + b"0", len(prefix) + 21)
            self.value = (ctypes.c_char * 21).from_buffer(self.buffer, len(prefix))
            self.putenv = putenv
            self.key = key
            self.attempt_key = os.environ.encodekey(ATTEMPT_ENV)
            self.data = data
        except Exception:
            self.data = None
        # The bytes of the task id set last, as os.environ's dict holds them.
        self.current = None
        # The attempt set last, and the object os.environ's dict held for it then.
        self.attempt = None
        self.attempt_value = None

    def set(self, task, attempt):
        """The variables of the task `task`, attempt `attempt` (integers), from now on."""
        data = self.data
        if data is None:
            os.environ[TASK_ID_ENV] = str(task)
            os.environ[ATTEMPT_ENV] = str(attempt)
            return
        if attempt != self.attempt or data.get(self.attempt_key) is not self.attempt_value:
            # The attempt changed, or a task changed the variable (the dict holds another
            # object then): compared as text, set only if it differs.
            text = b"%d" % attempt
            if data.get(self.attempt_key) != text:
                os.environ[ATTEMPT_ENV] = text.decode()
            self.attempt = attempt
            self.attempt_value = data.get(self.attempt_key)
        value = b"%d" % task
        # Writes the digits and the NUL after them: C readers see the new value at once.
        self.value.value = value
        if self.current is None or data.get(self.key) is not self.current:
            if self.putenv(self.buffer) != 0:
                # No memory for the environment's array: the slow way (which raises if it fails
                # too), and the buffer is handed over again for the next task.
                os.environ[TASK_ID_ENV] = value.decode()
                self.current = None
                return
        data[self.key] = value
        self.current = value

    def clear(self):
        """Unsets both variables (between tasks); `set` hands the buffer to libc again."""
        os.environ.pop(TASK_ID_ENV, None)
        os.environ.pop(ATTEMPT_ENV, None)
        self.current = None


_task_environ = TaskEnviron()


PR_SET_CHILD_SUBREAPER = 36
# A task that ran for less than this many seconds (from before it was set up to after it
# returned) cannot have started a process, so its end does not look for leftovers (the waitid
# through ctypes was a tenth of a noop's instructions in the slot, with its system call). A
# process takes longer than this to make: fork() copies the caller's page tables and exec()
# loads a program (measured here: ~220 us for os.fork() of a small Python, ~110 us for
# subprocess.Popen(["true"]) and posix_spawn), and clone() with CLONE_VFORK returns only once
# the child has exec'd or exited. Only a raw clone() with CLONE_VM and no CLONE_VFORK is about
# as fast as starting a thread; a process started that way by a task shorter than this is
# ended after the next task that runs longer, or with the slot.
CHILD_FLOOR = 20e-6
# How long ending a task's leftovers may take before the slot gives up on the stragglers (a
# process stuck in the kernel, in state D, dies only when the kernel lets it).
LEFTOVERS_PATIENCE = 2.0


def become_subreaper():
    """Make orphaned descendants of this slot its children; False if that is not possible."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


_CHILD_FLAGS = os.WEXITED | os.WNOHANG | os.WNOWAIT
_P_ALL = os.P_ALL
try:
    import ctypes

    _waitid = ctypes.CDLL(None, use_errno=True).waitid
except Exception:  # ctypes is optional; os.waitid does the same, a little slower
    _waitid = None


class Leftovers:
    """Ends the processes a finished task left in the slot's process group (see the top)."""

    def __init__(self, guardian, subreaper):
        self.spared = (os.getpid(), guardian)
        # Without it, an orphaned grandchild is init's child, and only /proc can find it.
        self.subreaper = subreaper
        self.group = os.getpgrp()

    def end(self):
        """SIGKILL the task's leftovers, wait until they are gone, and reap them. Never raises."""
        try:
            if self.subreaper and not self.has_children():
                return  # the common case: no descendant at all, nothing read from /proc
            deadline = time.monotonic() + LEFTOVERS_PATIENCE
            while True:
                living = [pid for pid in self.members() if pid not in self.spared]
                for pid in living:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.reap()
                if not living:
                    return
                if time.monotonic() > deadline:
                    sys.__stderr__.write(
                        "tatzelwurm slot: processes %s of a finished task did not die within %.0f s\n"
                        % (living, LEFTOVERS_PATIENCE)
                    )
                    return
                time.sleep(0.001)
        except BaseException as exc:
            try:
                sys.__stderr__.write("tatzelwurm slot: cannot end a task's processes: %r\n" % (exc,))
            except BaseException:
                pass

    @staticmethod
    def has_children():
        if _waitid is not None:
            # waitid(2) with no info struct: -1 (ECHILD) when there is no child at all. Called
            # after every task, so without the cost of os.waitid's ChildProcessError.
            return _waitid(_P_ALL, 0, None, _CHILD_FLAGS) == 0
        try:
            os.waitid(os.P_ALL, 0, _CHILD_FLAGS)
        except ChildProcessError:
            return False
        return True

    @staticmethod
    def reap():
        """Reap every child that has ended (the task's zombies, and those just killed)."""
        while True:
            try:
                if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG) is None:
                    return
            except ChildProcessError:
                return

    def members(self):
        """The pids of the living (not zombie) processes in the slot's process group."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                fd = os.open("/proc/%s/stat" % name, os.O_RDONLY)
                try:
                    stat = os.read(fd, 1024)
                finally:
                    os.close(fd)
            except OSError:
                continue  # gone meanwhile
            # After the command name (in parentheses, which it may contain): state, ppid, pgrp.
            fields = stat[stat.rfind(b")") + 1 :].split()
            if len(fields) > 2 and fields[0] not in (b"Z", b"X") and int(fields[2]) == self.group:
                found.append(int(name))
        return found


class Channel:
    """The framed pipes to workwurm."""

    def __init__(self):
        # Private, non-inheritable copies: a task's child processes must not hold our pipes, and
        # fds 3, 4 and 6 become free for the task's own files.
        self.fd = os.dup(TASKS_FD)
        self.out = os.dup(RESULTS_FD)
        self.bell = os.dup(BELL_FD)
        os.close(TASKS_FD)
        os.close(RESULTS_FD)
        os.close(BELL_FD)
        self.buffer = b""
        # time.monotonic() of the last ring, and whether frames were written since.
        self.rung = 0.0
        self.unrung = False
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)

    def wait(self):
        """The messages that are complete once at least one is; None when workwurm closed the
        pipe."""
        while True:
            data = os.read(self.fd, READ_BYTES)
            if not data:
                return None
            messages = self.cut(data)
            if messages:
                return messages

    def ready(self, readable=False):
        """The messages that are complete now, without waiting (one poll when there are none,
        none when the caller's poll saw the pipe `readable`); None when workwurm closed the
        pipe."""
        if not readable and not self.poller.poll(0):
            return ()
        data = os.read(self.fd, READ_BYTES)
        if not data:
            return None
        return self.cut(data)

    def cut(self, data):
        buffer = self.buffer + data if self.buffer else data
        messages = []
        at = 0
        while len(buffer) - at >= 4:
            (length,) = _length.unpack_from(buffer, at)
            if len(buffer) - at - 4 < length:
                break
            messages.append(_decode(buffer[at + 4 : at + 4 + length].decode("utf-8")))
            at += 4 + length
        self.buffer = buffer[at:]
        return messages

    def send(self, message):
        # "replace" turns lone surrogates (from odd bytes in a str) into "?" so the frame is UTF-8.
        self.write(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    def write(self, *bodies, ring=True):
        """Writes each JSON text as one frame, all in one write (in rung pieces when long, see
        write_long), and rings the doorbell unless told not to (only the main loop's `done` may
        wait for a later ring, see Protocol)."""
        if len(bodies) == 1:
            data = bodies[0].encode("utf-8", "replace")
            data = _length.pack(len(data)) + data
        else:
            parts = []
            for body in bodies:
                data = body.encode("utf-8", "replace")
                parts.append(_length.pack(len(data)))
                parts.append(data)
            data = b"".join(parts)
        if len(data) > RING_BYTES:
            self.write_long(data)
            return
        # At most PIPE_BUF bytes: one write, whole.
        os.write(self.out, data)
        if ring:
            self.ring()
        else:
            self.unrung = True

    def write_long(self, data):
        """Writes more than RING_BYTES, ringing after each piece: the pipe holds 64 KiB, and
        workwurm reads it only when rung, so a piece it was not told of could block the slot
        until workwurm's next look."""
        data = memoryview(data)
        while data:
            piece = data[:LONG_PIECE]
            data = data[LONG_PIECE:]
            while piece:
                written = os.write(self.out, piece)
                piece = piece[written:]
            self.ring()

    def ring(self):
        """Tells workwurm to read the frames written so far (see Protocol)."""
        self.rung = time.monotonic()
        self.unrung = False
        os.write(self.bell, b"!")


_length = struct.Struct(">I")
_monotonic = time.monotonic
_decoder = json.JSONDecoder()
_decode = _decoder.decode
_raw_decode = _decoder.raw_decode
# raw_decode without its Python frame: (value, end), or StopIteration where no value begins.
_scan_once = _decoder.scan_once
# JSON text of a string, non-ASCII kept (as ensure_ascii=False does).
_string = json.encoder.encode_basestring
READ_BYTES = 1 << 16

try:
    import ctypes

    # fflush(NULL) pushes out what C code left in libc's stdout buffer, so that it lands in the
    # output of the task that wrote it; not needed once `unbuffer_c_stdout` succeeded.
    _fflush = ctypes.CDLL(None).fflush
except Exception:  # ctypes is optional; without it, buffered C output may land one task late
    _fflush = None

# setvbuf(3)'s mode "unbuffered" (the same value in glibc and musl).
_IONBF = 2


def unbuffer_c_stdout():
    """Makes libc's stdout unbuffered, so that what C code prints through it (printf) reaches
    fd 1, the capture file, at once (see Output), and no task ends with a flush: a ctypes
    fflush(NULL) after every task was a twentieth of a noop's instructions in the slot. A C
    extension that prints many small pieces pays a write per piece instead. Called first in
    main, before anything could have used the stream (setvbuf must come before that); without
    ctypes, or where it fails, every task ends with fflush(NULL) as before."""
    global _fflush
    if _fflush is None:
        return
    try:
        libc = ctypes.CDLL(None)
        stream = ctypes.c_void_p.in_dll(libc, "stdout")
        if libc.setvbuf(stream, None, _IONBF, 0) == 0:
            _fflush = None
    except Exception:
        pass


# inotify(7): the event of a write (or truncate) to a watched file, and a read's worth of events.
_IN_MODIFY = 0x2
_NOTIFY_BYTES = 4096


class Capture:
    """Points fds 1 and 2 at temporary files for as long as the slot runs tasks, and reads what
    each task wrote."""

    def __init__(self):
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        self.fds = [f.fileno() for f in self.files]
        # workwurm's own stdout and stderr, for the slot's own complaints.
        self.saved = [os.dup(1), os.dup(2)]
        # See `watch`: the inotify fd that tells whether the files were written to, and the epoll
        # that watches it and workwurm's pipe; None without inotify.
        self.notify = None
        self.poller = None
        # What the epoll after the last task (run_one's, or take_output(look=True)'s) saw of
        # workwurm's pipe: True (something to read, or its end), False (nothing), None (not
        # looked).
        self.channel_ready = None

    def watch(self, channel_fd):
        """Sets up the one epoll_wait per task that tells both whether a task wrote to fd 1 or 2
        and whether workwurm sent something: an inotify watch (IN_MODIFY) on each capture file, and
        an epoll of the inotify fd together with `channel_fd`. The kernel queues the event within
        the write (or truncate) itself, whoever writes (C code, child processes, another open of
        the file), so a task that wrote nothing costs one epoll_wait instead of a poll and two
        lseeks (epoll_wait reads a ready list, where poll asks each fd: 0.25 us against 0.45).
        Checked once here by writing a byte; without inotify (no ctypes, no instances left, a file
        system that does not report) each task costs the lseeks and a poll, as before."""
        try:
            import ctypes
            import fcntl

            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            # Both fds are kept above the low fds that a task's own files usually get, and moved
            # there before anything is registered: epoll would keep watching a closed fd's file.
            try:
                notify = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            finally:
                os.close(fd)
            try:
                for capture in self.fds:
                    # The files have no name (unlinked at once); their /proc link finds the inode.
                    if libc.inotify_add_watch(notify, b"/proc/self/fd/%d" % capture, _IN_MODIFY) < 0:
                        raise OSError(ctypes.get_errno(), "inotify_add_watch")
                first = select.epoll()
                try:
                    high = fcntl.fcntl(first.fileno(), fcntl.F_DUPFD_CLOEXEC, 10)
                finally:
                    first.close()
                poller = select.epoll.fromfd(high)
                try:
                    poller.register(notify, select.EPOLLIN)
                    for capture in self.fds:
                        os.write(capture, b"-")
                        os.ftruncate(capture, 0)
                        os.lseek(capture, 0, os.SEEK_SET)
                        if not poller.poll(0):
                            raise OSError("no inotify event for a write to a capture file")
                        os.read(notify, _NOTIFY_BYTES)
                    poller.register(channel_fd, select.EPOLLIN)
                except BaseException:
                    poller.close()
                    raise
            except BaseException:
                os.close(notify)
                raise
            self.notify = notify
            self.poller = poller
        except Exception:
            # Silently: the lseeks are as exact, only slower, and a slot is started afresh after
            # every kill (a line per start would be noise, say with more slots than the
            # 128 inotify instances a user gets by default).
            self.notify = self.poller = None

    def start(self):
        """From now on fds 1 and 2 are the capture files. They stay so between tasks: the files
        are emptied after each task that wrote something, and no dup2 is needed per task.

        sys.stdout is made line-buffered (as on a terminal; sys.stderr is already), so that a
        line a task prints reaches the file at once, where workwurm reads it while the task runs
        (see Output); a task that prints nothing pays nothing for it."""
        flush_python_streams()
        os.dup2(self.fds[0], 1)
        os.dup2(self.fds[1], 2)
        try:
            sys.stdout.reconfigure(line_buffering=True)
        except Exception:  # replaced by sitecustomize with something that cannot
            pass

    def take_output(self, look=False):
        """(stdout, stderr) of the task that just ran; empties the files it wrote to.

        With `look` and a `watch`, one epoll_wait says whether the files can hold anything (and sets
        `channel_ready`); without, two lseeks say it. Events are drained before the sizes are read:
        a write after that leaves an event for the next look. A file emptied here (or by a
        `take_output` without `look`) leaves an event too, which costs the next look its lseeks and
        nothing else."""
        flush_python_streams()
        if _fflush is not None:
            _fflush(None)
        if look and self.poller is not None:
            return self.take_polled(self.poller.poll(0))
        return self.take_files()

    def take_polled(self, ready):
        """take_output(look=True) after its flushes and its epoll_wait, which found `ready`
        ((fd, events) pairs; run_one asks the epoll itself, and comes here only when it found
        something)."""
        written = False
        self.channel_ready = False
        for fd, _ in ready:
            if fd == self.notify:
                written = True
            else:
                self.channel_ready = True
        if not written:
            return "", ""
        try:
            # The events of a watched file carry no name (16 bytes each): a read that does not
            # fill the buffer took them all.
            while len(os.read(self.notify, _NOTIFY_BYTES)) == _NOTIFY_BYTES:
                pass
        except BlockingIOError:
            pass
        return self.take_files()

    def take_files(self):
        """(stdout, stderr) as the files hold them; empties those that hold something."""
        out, err = self.fds
        # The size, as fstat would say, for less: the offset it leaves at the end is where the
        # next write goes anyway, and `take` rewinds a file it empties.
        size = os.lseek(out, 0, os.SEEK_END)
        stdout = self.take(out, size) if size else ""
        size = os.lseek(err, 0, os.SEEK_END)
        stderr = self.take(err, size) if size else ""
        return stdout, stderr

    @staticmethod
    def take(fd, size):
        start = max(0, size - KEEP_BYTES)
        chunks = []
        offset = start
        while offset < size:
            chunk = os.pread(fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        # fd 1 (or 2) shares this file's offset, so the next task writes from the start again.
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        text = b"".join(chunks).decode("utf-8", "replace")
        if start:
            text = "[tatzelwurm: %d earlier bytes not kept]\n%s" % (start, text)
        return text

    def complain(self, text):
        """Writes the slot's own message to workwurm's stderr, not into a task's output."""
        try:
            os.write(self.saved[1], ("tatzelwurm slot: %s\n" % text).encode("utf-8", "replace"))
        except OSError:
            pass


# What sys.stdout and sys.stderr should be between tasks: the real streams, or while together
# tasks run, the routers that split their output (see Together).
_streams = [sys.__stdout__, sys.__stderr__]


def flush_python_streams():
    out, err = sys.stdout, sys.stderr
    if out is _streams[0] and err is _streams[1] and out is not None and err is not None:
        # The common case: one flush each, usually of an empty buffer.
        try:
            out.flush()
        except Exception:
            pass
        try:
            err.flush()
        except Exception:
            pass
        return
    # A task may have replaced or closed sys.stdout; put the real ones back for the next task.
    for name, original in zip(("stdout", "stderr"), _streams):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except Exception:
            pass
        if stream is not original and original is not None:
            try:
                original.flush()
            except Exception:
                pass
            setattr(sys, name, original)


_file_modules = {}


def load_file(target):
    """The module of a `path/to/file.py`, loaded once per absolute path and kept."""
    path = os.path.abspath(target)
    module = _file_modules.get(path)
    if module is not None:
        return module
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "no such file: %s (relative paths resolve against the worker's directory %s)"
            % (path, os.getcwd())
        )
    stem = os.path.splitext(os.path.basename(path))[0]
    name = "tatzelwurm_file_%d_%s" % (len(_file_modules), "".join(c if c.isalnum() else "_" for c in stem))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _file_modules[path] = module
    return module


def resolve(function):
    """The callable named by `package.module:function` or `path/to/file.py:function`.

    The coordinator checked the name when the task was added (the rule lives in proto); this only
    splits it. The module found for a name is remembered (an import costs microseconds even when
    the module is loaded), unless the name is a relative path, which the working directory
    decides; the attribute is looked up on every call, so a module that rebinds it is followed.
    """
    known = _modules.get(function)
    if known is not None:
        module, name = known
        if module.__name__ in _file_module_names or sys.modules.get(module.__name__) is module:
            obj = getattr(module, name)
            if not callable(obj):
                raise TypeError("%s is a %s, not a function" % (function, type(obj).__name__))
            return obj
    target, _, name = function.rpartition(":")
    if target.endswith(".py"):
        module = load_file(target)
        if os.path.isabs(target):
            _file_module_names.add(module.__name__)
            _modules[function] = (module, name)
    else:
        module = importlib.import_module(target)
        _modules[function] = (module, name)
    if _reloader is not None:
        # Right after the import: what it imported is what a later change is compared with.
        _reloader.notice()
    obj = getattr(module, name)
    if not callable(obj):
        raise TypeError("%s is a %s, not a function" % (function, type(obj).__name__))
    return obj


# Function name -> (its module, the attribute's name), for `resolve`.
_modules = {}
# The names of modules loaded from files that `_modules` holds (not found in sys.modules by
# import, so not checked there).
_file_module_names = set()


def parse_json(text):
    """The value of a JSON text: without the two whitespace matches of json.loads when there is
    no whitespace around it (the coordinator's texts), with json.loads's errors when wrong."""
    try:
        value, end = _raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return _decode(text)


def parse_arguments(task):
    args = task[ARGS]
    if args:
        # parse_json, inlined for the common case (the coordinator's texts have no whitespace),
        # with the decoder's C scanner called directly (raw_decode is a Python function around
        # it); anything unusual goes through parse_json, for json.loads's errors.
        try:
            value, end = _scan_once(args, 0)
            args = value if end == len(args) else parse_json(args)
        except (StopIteration, ValueError):
            args = parse_json(args)
    else:
        args = []
    kwargs = task[KWARGS]
    kwargs = parse_json(kwargs) if kwargs and kwargs != "{}" else {}
    if type(args) is not list:
        raise TypeError("args must be a JSON array, got %s" % type(args).__name__)
    if type(kwargs) is not dict:
        raise TypeError("kwargs must be a JSON object, got %s" % type(kwargs).__name__)
    return args, kwargs


def failure(kind, message, trace=""):
    return {"kind": kind, "message": clip(message), "traceback": clip(trace, keep_tail=True)}


def clip(text, keep_tail=False):
    if len(text) <= MAX_TEXT_CHARS:
        return text
    cut = len(text) - MAX_TEXT_CHARS
    note = "[tatzelwurm: %d characters not kept]" % cut
    if keep_tail:
        return note + "\n" + text[cut:]
    return text[:MAX_TEXT_CHARS] + " " + note


def _refuse(obj):
    _offending.append(type(obj).__name__)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


# The types `_refuse` met, for the message of a result JSON cannot carry.
_offending = []
# One encoder for every result: json.dumps with options builds a new one per call.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_refuse)
# Integers below this need no JSON encoder (and stay far from the int-to-str digit limit).
_SMALL_INT = 1 << 62


def encode_result(value):
    """(result text, None) or (None, error) for a value a task returned."""
    if value is None:
        return "null", None
    kind = type(value)
    if kind is int and -_SMALL_INT < value < _SMALL_INT:
        return int.__repr__(value), None
    if kind is bool:
        return ("true" if value else "false"), None
    if kind is float and value - value == 0.0:
        # Finite (infinity and NaN give NaN here): JSON's text of a float is its repr, and the
        # encoder costs ~40 us more per task right after a sleep (cold caches, measured in W2).
        return float.__repr__(value), None
    offending = _offending
    offending.clear()
    top = type(value).__name__
    try:
        text = _encoder.encode(value)
    except TypeError as exc:
        if offending and offending[0] != top:
            what = "of type %s containing a value of type %s" % (top, offending[0])
        elif offending:
            what = "of type %s" % top
        else:
            what = "of type %s (%s)" % (top, exc)
        return None, failure(
            "TypeError", "the task returned a value %s, which is not JSON-serialisable; %s" % (what, ALLOWED)
        )
    except ValueError as exc:
        return None, failure(
            "ValueError",
            "the task returned a value JSON cannot carry (%s): NaN and infinity and circular "
            "references are not allowed; %s" % (exc, ALLOWED),
        )
    except RecursionError:
        return None, failure("RecursionError", "the task returned a value nested too deeply for JSON")
    # Counted in bytes of UTF-8, as the frame carries it (Channel.send encodes the same way).
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    if size > MAX_RESULT_BYTES:
        return None, failure(
            "ResultTooLarge",
            "the task returned %d bytes of JSON (UTF-8), more than the limit of %d bytes; store "
            "large results elsewhere and return where to find them" % (size, MAX_RESULT_BYTES),
        )
    return text, None


def describe(exc):
    """The error of a task that raised `exc` (any BaseException: the slot must outlive them all)."""
    try:
        # Leave out the slot's own frames: the user's code starts below them, and an error in
        # naming the function needs no frames at all.
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_globals is globals():
            tb = tb.tb_next
        trace = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        trace = ""
    if isinstance(exc, SystemExit):
        return failure(
            "SystemExit",
            "the task called sys.exit(%r); a task ends by returning a value or raising an exception"
            % (exc.code,),
            trace,
        )
    try:
        message = str(exc)
    except BaseException:
        message = "<the exception's str() failed>"
    if isinstance(exc, KeyboardInterrupt) and not message:
        message = "the task was interrupted (KeyboardInterrupt)"
    return failure(type(exc).__name__, message, trace)


def run_one(task, capture, leftovers, together, began):
    """Runs one task to its end (a coroutine function's on the event loop, see Async tasks);
    returns the JSON text of its `done` frame, whether it completed (no error), and the
    time.monotonic() of its end. `began` is the time.monotonic() of its beginning, taken
    before it was set up (see CHILD_FLOOR).

    The path of a fast task is written out here rather than through resolve, parse_arguments,
    encode_result, Leftovers.end, Capture.take_output and done_frame: each Python call costs
    about 0.1 us, and at 50,000 noops a second per slot they were a fifth of the slot's time.
    What is written out is each function's first, common case (a function named before, an
    argument array without whitespace and no kwargs, a result of None or a small integer, no
    child process, sys.stdout and sys.stderr as they were, no output); anything else goes through
    the function itself, with the same outcome."""
    task_id = task[TASK]
    attempt = task[ATTEMPT]
    _task_environ.set(task_id, attempt)
    error = None
    try:
        try:
            name = task[FUNCTION]
            # resolve(), its known function.
            function = None
            known = _modules.get(name)
            if known is not None:
                module = known[0]
                if module.__name__ in _file_module_names or sys.modules.get(module.__name__) is module:
                    function = getattr(module, known[1])
            if function is None or not callable(function):
                function = resolve(name)
            # parse_arguments(), an array and no kwargs.
            args = task[ARGS]
            kwargs = task[KWARGS]
            value = end = None
            if args and (kwargs == "{}" or not kwargs):
                try:
                    value, end = _scan_once(args, 0)
                except (StopIteration, ValueError):
                    pass
            if end == len(args) and type(value) is list:
                value = function(*value)
            else:
                args, kwargs = parse_arguments(task)
                value = function(*args, **kwargs)
            if type(value) is _CoroutineType:
                # An `async def` (or a function that returns a coroutine): nothing of it ran yet.
                together.announce(name)
                value = together.run_to_end(value)
            # encode_result(), None and small integers: text that needs no escaping in JSON.
            if value is None:
                result = "null"
            elif type(value) is int and -_SMALL_INT < value < _SMALL_INT:
                result = int.__repr__(value)
            else:
                result, error = encode_result(value)
        except BaseException as exc:
            result, error = None, describe(exc)
    finally:
        ended = _monotonic()
        # Before the output is read: what the leftovers wrote until now belongs to this task,
        # and nothing of theirs lands in the next task's output. Leftovers.end() begins with
        # this waitid (no child at all: nothing to end). A task that ran less than CHILD_FLOOR
        # cannot have started a process, so it is not asked.
        if leftovers is not None and not together.running and ended - began >= CHILD_FLOOR:
            if _waitid is None or not leftovers.subreaper:
                leftovers.end()
            elif _waitid(_P_ALL, 0, None, _CHILD_FLAGS) == 0:
                leftovers.end()
        # Capture.take_output(look=True), a task that wrote nothing: one epoll_wait says so.
        poller = capture.poller
        if poller is None:
            stdout, stderr = capture.take_output(look=True)
        else:
            out, err = sys.stdout, sys.stderr
            if out is _streams[0] and err is _streams[1] and out is not None and err is not None:
                # flush_python_streams(), its common case.
                try:
                    out.flush()
                except Exception:
                    pass
                try:
                    err.flush()
                except Exception:
                    pass
            else:
                flush_python_streams()
            if _fflush is not None:
                _fflush(None)
            ready = poller.poll(0)
            if ready:
                stdout, stderr = capture.take_polled(ready)
            else:
                stdout = stderr = ""
                capture.channel_ready = False
    if _reloader is not None and len(sys.modules) != _reloader.seen:
        # The task imported modules: note their files as they are now.
        _reloader.notice()
    if error is None:
        if not stdout and not stderr and (result == "null" or type(value) is int):
            # done_frame(), with the result's text known to need no escaping.
            return '{"done":[[%d,%d,true,"%s","",""]]}' % (task_id, attempt, result), True, ended
        return done_frame(task, result, None, stdout, stderr), True, ended
    return done_frame(task, None, error, stdout, stderr), False, ended


def done_frame(task, result, error, stdout, stderr):
    """The JSON text of the `done` frame of one task (see Protocol)."""
    if error is None:
        # The common case, written by hand: json.dumps of the whole frame costs more than the
        # task of a noop.
        return '{"done":[[%d,%d,true,%s,%s,%s]]}' % (
            task[TASK],
            task[ATTEMPT],
            _string(result),
            _string(stdout) if stdout else '""',
            _string(stderr) if stderr else '""',
        )
    done = [task[TASK], task[ATTEMPT], False, error, stdout, stderr]
    return '{"done":[%s]}' % json.dumps(done, ensure_ascii=False, separators=(",", ":"))


# The type of a coroutine object: a task whose call returns one is an async task.
async def _probe():
    pass


_probe_coroutine = _probe()
_CoroutineType = type(_probe_coroutine)
_probe_coroutine.close()
del _probe_coroutine


class TaskOutput:
    """What one together task wrote through sys.stdout and sys.stderr, its tail kept."""

    __slots__ = ("parts", "sizes", "dropped")

    def __init__(self):
        self.parts = ([], [])
        self.sizes = [0, 0]
        self.dropped = [0, 0]

    def write(self, which, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        parts = self.parts[which]
        parts.append(text)
        self.sizes[which] += len(text)
        if self.sizes[which] > 2 * KEEP_BYTES:
            joined = "".join(parts)
            self.dropped[which] += len(joined) - KEEP_BYTES
            parts[:] = [joined[-KEEP_BYTES:]]
            self.sizes[which] = KEEP_BYTES
        return len(text)

    def text(self, which):
        text = "".join(self.parts[which])
        data = text.encode("utf-8", "replace")
        dropped = self.dropped[which]
        if len(data) > KEEP_BYTES:
            data = data[-KEEP_BYTES:]
            text = data.decode("utf-8", "replace")
            dropped += 1
        if dropped:
            text = "[tatzelwurm: earlier output not kept]\n" + text
        return text


class Router:
    """sys.stdout or sys.stderr while together tasks run: a write goes to the buffer of the task
    whose context it runs in, any other to the real stream (see Async tasks)."""

    def __init__(self, real, which):
        self._real = real
        self._which = which

    def write(self, text):
        output = _task_output.get(None)
        if output is None:
            return self._real.write(text)
        return output.write(self._which, text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if _task_output.get(None) is None:
            self._real.flush()

    def __getattr__(self, name):
        return getattr(self._real, name)


_task_output = None  # a contextvars.ContextVar once the first together task starts


async def _guarded(coroutine, output=None):
    """Awaits a task's coroutine in its own context; (True, value), or (False, exception) for a
    SystemExit or KeyboardInterrupt, which asyncio would let out of the event loop."""
    if output is not None:
        _task_output.set(output)
    try:
        return True, await coroutine
    except (SystemExit, KeyboardInterrupt) as exc:
        return False, exc


class Together:
    """The slot's event loop and the together tasks running on it (see Async tasks)."""

    def __init__(self, channel, capture, leftovers):
        self.channel = channel
        self.capture = capture
        self.leftovers = leftovers
        self.queue = None
        self.loop = None
        # (task, attempt) -> (the task's message, its asyncio task, its output)
        self.running = {}
        self.announced = set()
        self.wake = None
        self.eof = False
        self.routers = None

    def announce(self, function):
        """Tells workwurm, once per function, that `function` is a coroutine function."""
        if function not in self.announced:
            self.announced.add(function)
            self.channel.send({"coroutines": [function]})

    def event_loop(self):
        if self.loop is None:
            global _task_output
            import asyncio
            import contextvars

            _task_output = contextvars.ContextVar("tatzelwurm_task_output")
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            # While the loop runs, workwurm's frames are read by it.
            self.loop.add_reader(self.channel.fd, self.readable)
        return self.loop

    def run_to_end(self, coroutine):
        """Runs a coroutine of a task handed in order to its end; its value, or raises."""
        ok, value = self.event_loop().run_until_complete(_guarded(coroutine))
        if not ok:
            raise value
        return value

    def start(self, task):
        """Starts a together task on the loop (a sync function's runs here and now)."""
        key = (task[TASK], task[ATTEMPT])
        _task_environ.set(task[TASK], task[ATTEMPT])
        output = None
        try:
            function = resolve(task[FUNCTION])
            args, kwargs = parse_arguments(task)
            value = function(*args, **kwargs)
            if type(value) is _CoroutineType:
                self.announce(task[FUNCTION])
                loop = self.event_loop()
                self.route()
                output = TaskOutput()
                handle = loop.create_task(_guarded(value, output))
                self.running[key] = (task, handle, output)
                handle.add_done_callback(lambda handle, key=key: self.finished(key, handle))
                return
            # A sync function (it was async before a hot reload): it ran, here and now.
            result, error = encode_result(value)
        except BaseException as exc:
            result, error = None, describe(exc)
        self.report(task, result, error, output)
        if not self.running:
            self.unroute()

    def interrupt(self, keys):
        """Cancels these together tasks; one not started yet ends at once as cancelled."""
        for key in keys:
            running = self.running.get(key)
            if running is not None:
                running[1].cancel()
                continue
            for task in list(self.queue.tasks):
                if (task[TASK], task[ATTEMPT]) == key:
                    self.queue.tasks.remove(task)
                    self.report(task, None, failure("CancelledError", "the task was cancelled"), None)

    def finished(self, key, handle):
        """A together task's asyncio task is done: report it."""
        try:
            task, _, output = self.running.pop(key)
            if handle.cancelled():
                result, error = None, failure("CancelledError", "the task was cancelled")
            elif handle.exception() is not None:
                result, error = None, describe(handle.exception())
            else:
                ok, value = handle.result()
                if ok:
                    result, error = encode_result(value)
                else:
                    result, error = None, describe(value)
            self.report(task, result, error, output)
            if not self.running:
                self.unroute()
                if self.leftovers is not None:
                    self.leftovers.end()
                _task_environ.clear()
                self.wake_up()
        except BaseException as exc:
            self.capture.complain("cannot report a finished async task: %r" % (exc,))

    def report(self, task, result, error, output):
        """Sends the `done` of a together task: its own output first, then what reached fds 1
        and 2 since the last report (which cannot be split, see Async tasks)."""
        stdout, stderr = self.capture.take_output()
        if output is not None:
            stdout, stderr = output.text(0) + stdout, output.text(1) + stderr
        self.channel.write(done_frame(task, result, error, stdout, stderr))
        if _reloader is not None:
            _reloader.notice()

    def route(self):
        """Splits the output of together tasks from now on (see Router)."""
        if self.routers is None:
            flush_python_streams()
            self.routers = [Router(sys.stdout, 0), Router(sys.stderr, 1)]
            sys.stdout, sys.stderr = self.routers
            _streams[:] = self.routers

    def unroute(self):
        if self.routers is not None:
            flush_python_streams()
            _streams[:] = [sys.__stdout__, sys.__stderr__]
            sys.stdout, sys.stderr = self.routers[0]._real, self.routers[1]._real
            self.routers = None

    def readable(self):
        """workwurm sent something while the loop runs."""
        try:
            data = os.read(self.channel.fd, READ_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
            self.loop.remove_reader(self.channel.fd)
            self.wake_up()
            return
        messages = self.channel.cut(data)
        if messages:
            self.queue.take(messages)
            if self.queue.tasks:
                self.wake_up()

    def wake_up(self):
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def serve(self):
        """Runs the loop until a task is to be started, every together task ended, or workwurm
        is gone (then False)."""
        self.wake = self.loop.create_future()
        try:
            self.loop.run_until_complete(self.wake)
        finally:
            self.wake = None
        return not self.eof


class Queue:
    """The tasks workwurm handed this slot and it has not begun, oldest first, and those of them
    workwurm took back (`cancel`) that it has not yet been told were skipped."""

    def __init__(self, capture, together):
        self.tasks = collections.deque()
        self.skipped = []
        self.capture = capture
        self.together = together
        together.queue = self

    def take(self, messages):
        for message in messages:
            if isinstance(message, dict):
                tasks = message.get("run")
                if tasks is not None:
                    self.tasks.extend(tasks)
                    continue
                cancel = message.get("cancel")
                if cancel is not None:
                    self.cancel({(task, attempt) for task, attempt in cancel})
                    continue
                interrupt = message.get("interrupt")
                if interrupt is not None:
                    self.together.interrupt([(task, attempt) for task, attempt in interrupt])
                    continue
            self.capture.complain("ignoring a message it does not understand")

    def cancel(self, attempts):
        keep = []
        for task in self.tasks:
            key = (task[TASK], task[ATTEMPT])
            if key in attempts:
                self.skipped.append(key)
            else:
                keep.append(task)
        self.tasks = collections.deque(keep)

    def skipped_frame(self):
        """The frame telling workwurm which tasks were skipped, or None; it must reach workwurm
        before the slot's next `done`, which says the next task has begun."""
        if not self.skipped:
            return None
        frame = json.dumps({"skipped": self.skipped}, separators=(",", ":"))
        self.skipped = []
        return frame


class Completed:
    """The (task, attempt) pairs of the last tasks that completed in this slot, for the `needs`
    of held tasks: a held task is handed only behind the tasks it needs, in the same hand of at
    most 32 tasks, so the last KEEP completions always cover them."""

    KEEP = 256

    def __init__(self):
        # Oldest first (a dict keeps the order of insertion); between KEEP and 2 * KEEP of them,
        # cut back to the last KEEP once every KEEP tasks rather than trimmed per task.
        self.ids = {}

    # Added to by main's loop itself (a call per task costs more than the dict's insert):
    # `ids[(task, attempt)] = None`, then `trim` once there are more than 2 * KEEP.

    def trim(self):
        """Keeps the last KEEP."""
        self.ids = dict.fromkeys(list(self.ids)[-self.KEEP :])

    def all(self, needs):
        ids = self.ids
        for task, attempt in needs:
            if (task, attempt) not in ids:
                return False
        return True


# How often at most the slot looks whether a source file of your code changed (see Hot reload).
RELOAD_EVERY = 0.5


class Reloader:
    """Hot reload: notices changed source files of your modules and drops those modules so that
    the next task imports them afresh (see Hot reload)."""

    def __init__(self, capture):
        self.capture = capture
        self.installed = installed_dirs()
        # Your modules' source files: path -> (mtime_ns, size) when the module was imported.
        self.files = {}
        # Module name -> (module, its file), for the modules the files belong to.
        self.modules = {}
        # len(sys.modules) when last looked through, so that `notice` costs one len() when no
        # module was imported.
        self.seen = 0
        # time.monotonic() when the files are looked at next.
        self.next = 0.0

    def notice(self):
        """Takes note of your modules imported since the last call, with their files' stamps."""
        modules = sys.modules
        if len(modules) == self.seen:
            return
        self.seen = len(modules)
        for name, module in list(modules.items()):
            if name in self.modules:
                continue
            path = self.source(name, module)
            if path is None:
                continue
            try:
                info = os.stat(path)
            except OSError:
                continue
            self.modules[name] = (module, path)
            self.files.setdefault(path, (info.st_mtime_ns, info.st_size))

    def source(self, name, module):
        """The absolute path of `module`'s source file if it is your code, else None."""
        if name == "__main__" or name == "tatzelwurm" or name.startswith("tatzelwurm."):
            return None
        path = getattr(module, "__file__", None)
        if type(path) is not str or not path.endswith(".py"):
            return None
        path = os.path.abspath(path)
        if path.startswith(self.installed):
            return None
        return path

    def look(self):
        """If a source file of your code changed, drops your modules; at most every
        RELOAD_EVERY seconds (the caller checks `next`)."""
        self.next = time.monotonic() + RELOAD_EVERY
        changed = []
        for path, stamp in self.files.items():
            try:
                info = os.stat(path)
                now = (info.st_mtime_ns, info.st_size)
            except OSError:
                now = None
            if now != stamp:
                changed.append(path)
        if changed:
            self.drop(changed)

    def drop(self, changed):
        shown = ", ".join(changed[:3]) + (" and %d more" % (len(changed) - 3) if len(changed) > 3 else "")
        self.capture.complain("%s changed; importing your code afresh for the next task" % shown)
        for name, (module, _) in self.modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        for path in changed:
            # Its bytecode cache could be taken for the new source (it records the mtime in
            # whole seconds, and the size).
            try:
                os.unlink(importlib.util.cache_from_source(path))
            except (OSError, ValueError, NotImplementedError):
                pass
        _modules.clear()
        _file_modules.clear()
        _file_module_names.clear()
        importlib.invalidate_caches()
        self.modules.clear()
        self.files.clear()
        self.seen = 0


def installed_dirs():
    """The directories of the standard library and of installed packages, each ending in a
    separator: modules there are not your code."""
    dirs = {os.path.dirname(os.__file__)}
    try:
        import site

        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except Exception:
        pass
    for entry in sys.path:
        if os.path.basename(entry.rstrip(os.sep)) in ("site-packages", "dist-packages"):
            dirs.add(entry)
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs if d)


# The slot's Reloader, None under --no-reload.
_reloader = None


class Memory:
    """--max-memory (see Memory limit): the slot's resident memory, read after each task it runs
    in order (one pread of /proc/self/statm, ~3 us; only under a limit)."""

    def __init__(self, limit):
        self.limit = limit
        # Kept open (not inherited by a task's processes): /proc files are produced afresh by
        # every read from their start.
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.page = os.sysconf("SC_PAGE_SIZE")

    def resident(self):
        return int(os.pread(self.fd, 128, 0).split()[1]) * self.page


def memory_limit(arguments):
    """The Memory of --max-memory BYTES among the arguments, or None."""
    try:
        at = arguments.index("--max-memory")
        return Memory(int(arguments[at + 1]))
    except (ValueError, IndexError):
        return None
    except OSError as exc:
        sys.__stderr__.write("tatzelwurm slot: cannot measure its memory (%s); no limit\n" % (exc,))
        return None


def wait_to_be_replaced(channel):
    """Past --max-memory: begin nothing more (the tasks held were not begun, workwurm hands them
    out again) and wait for workwurm to kill this slot; exit if workwurm is gone."""
    while channel.wait() is not None:
        pass
    os._exit(0)


def main():
    global _reloader
    arguments = sys.argv[1:]
    keep_children = "--keep-children" in arguments
    memory = memory_limit(arguments)
    unbuffer_c_stdout()
    guardian = start_guardian()
    # After the guardian: it must not become this slot's child (a task's os.wait() would see it).
    leftovers = None if keep_children else Leftovers(guardian, become_subreaper())
    channel = Channel()
    extra = [p for p in os.environ.get("TATZELWURM_PATH", "").split(":") if p]
    # `-c` put the working directory ('') first, `-m` its absolute path; the --path dirs come
    # right after it.
    sys.path[1:1] = extra
    capture = Capture()
    capture.watch(channel.fd)
    if "--no-reload" not in arguments:
        _reloader = Reloader(capture)
        # What was imported at start (sitecustomize, .pth hooks) counts as it is now.
        _reloader.notice()
    reloader = _reloader
    channel.send(
        {
            "hello": {
                "python": sys.version.split()[0],
                "executable": sys.executable,
                "pid": os.getpid(),
                "capture": capture.fds,
            }
        }
    )
    capture.start()
    together = Together(channel, capture, leftovers)
    queue = Queue(capture, together)
    monotonic = time.monotonic
    completed = Completed()
    out = channel.out
    while True:
        if not queue.tasks:
            if together.running:
                # The event loop runs the together tasks and reads workwurm's frames.
                if not together.serve():
                    os._exit(0)
                continue
            skipped = queue.skipped_frame()
            if skipped is not None:
                channel.write(skipped)
            # Between tasks the task's variables are not set (see For tasks).
            _task_environ.clear()
            if channel.unrung:
                # Idle: workwurm must see every `done` now (the last one rang already unless a
                # cancel emptied the queue behind it).
                channel.ring()
            messages = channel.wait()
            if messages is None:
                os._exit(0)
            queue.take(messages)
            continue
        task = queue.tasks.popleft()
        extra = len(task) > NEEDS
        if extra and task[NEEDS] is not None and not completed.all(task[NEEDS]):
            # A held task whose dependency did not complete here: skipped, and said so in place
            # of its `done`, after what workwurm sent meanwhile (as below).
            messages = channel.ready()
            if messages is None:
                os._exit(0)
            if messages:
                queue.take(messages)
            unmet = '{"unmet":[[%d,%d]]}' % (task[TASK], task[ATTEMPT])
            skipped = queue.skipped_frame()
            if skipped is None:
                channel.write(unmet)
            else:
                channel.write(skipped, unmet)
            continue
        began = monotonic()
        if reloader is not None and began >= reloader.next:
            reloader.look()
        if extra and len(task) > TOGETHER and task[TOGETHER]:
            together.start(task)
            continue
        done, ok, ended = run_one(task, capture, leftovers, together, began)
        if ok:
            # completed.add((task[TASK], task[ATTEMPT])), written out (see run_one).
            completed.ids[(task[TASK], task[ATTEMPT])] = None
            if len(completed.ids) > 2 * Completed.KEEP:
                completed.trim()
        if together.eof:
            os._exit(0)
        # Before the next task begins, what workwurm sent meanwhile: more tasks, or a cancel of
        # one not begun, which must be skipped and said so ahead of this `done`. The epoll in
        # run_one looked already, after the task ended (as a poll here would); without it,
        # a slot that holds nothing polls not at all: nothing can be cancelled, and
        # channel.wait reads what came right after the `done`.
        readable = capture.channel_ready
        capture.channel_ready = None
        if readable:
            messages = channel.ready(readable=True)
        elif readable is None and queue.tasks:
            messages = channel.ready()
        else:
            messages = ()
        if messages is None:
            os._exit(0)
        if messages:
            queue.take(messages)
        skipped = queue.skipped_frame() if queue.skipped else None
        if memory is not None:
            rss = memory.resident()
            if rss > memory.limit:
                # The result stands; this slot is done (see Memory limit).
                frames = [done, '{"outgrown":%d}' % rss]
                channel.write(*(frames if skipped is None else [skipped] + frames))
                wait_to_be_replaced(channel)
        # The doorbell (see Protocol): rung unless the slot goes on with a plain task of a deep
        # queue within RING_EVERY of the last ring, where workwurm reads the frame in time anyway.
        tasks = queue.tasks
        ring = (
            skipped is not None
            or not tasks
            or len(tasks) == RING_LOW
            or len(tasks[0]) > NEEDS
            or len(done) > RING_BYTES
            or ended - channel.rung >= RING_EVERY
        )
        if skipped is not None:
            channel.write(skipped, done, ring=ring)
            continue
        # channel.write(done, ring=ring), written out for the common short frame (see run_one).
        data = done.encode("utf-8", "replace")
        if len(data) > RING_BYTES:
            channel.write(done, ring=ring)
            continue
        os.write(out, _length.pack(len(data)) + data)
        if ring:
            channel.ring()
        else:
            channel.unrung = True


if __name__ == "__main__":
    main()
