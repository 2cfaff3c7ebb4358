"""The tatzelwurm slot loop: runs tasks for workwurm inside the user's own Python.

workwurm starts one process per slot and supervises it: it kills the slot's process group to stop
a task (a kill, or a timeout), and starts a fresh slot when one dies. Modules a task imports stay
imported for the slot's later tasks. The cargo-built workwurm carries this file and runs it as
`PYTHON -c <this file>`, so nothing has to be installed; the workwurm of the Python package runs
it as `PYTHON -m tatzelwurm.slot`. Either way it is this one file, and it imports nothing but the
standard library (under -m, Python imports the package's __init__ first, and nothing more).

A slot started with the argument --keep-children leaves the processes a task started running
when the task ends (see Processes a task leaves behind).

For tasks
---------
While a task runs, os.environ["TATZELWURM_TASK_ID"] and os.environ["TATZELWURM_ATTEMPT"] hold its
task id and attempt number, as strings (processes the task starts inherit them). The attempt grows
by one each time the coordinator hands the task out again (after a retry, or when a worker was
lost), so the pair makes an idempotency key: "task 12, attempt 3" names one run. Between tasks
the two variables are not set.

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
without reading /proc. workwurm's --keep-children turns this off (the slot then gets the argument
--keep-children): leftovers live until the slot dies, as before.

Protocol (keep in step with workwurm/src/slot_channel.rs)
---------------------------------------------------------
stdin and stdout belong to the tasks, so the slot talks to workwurm over two inherited pipes:
fd 3 carries frames from workwurm, fd 4 frames to workwurm. A frame is a 4-byte big-endian length
followed by that many bytes of UTF-8 JSON, one object with one key:

  workwurm -> slot  {"run": [{"task": 12, "attempt": 1, "function": "pkg.mod:fn",
                               "args": "<JSON text of an array>", "kwargs": "<JSON text of an object>"},
                              ...]}
      Tasks to run one after another, in order. (workwurm sends one at a time today; a list
      lets a later fast path send several in one frame.)
  slot -> workwurm  {"hello": {"python": "3.11.7", "executable": "/usr/bin/python3", "pid": 4711,
                                "capture": [7, 8]}}
      Once, when the slot is ready for tasks. "capture" holds the fds of the files that capture a
      task's stdout and stderr (see Output): workwurm opens them through /proc so that what a task
      wrote is still there when the slot dies under it (killed, timed out, crashed).
  slot -> workwurm  {"done": [{"task": 12, "attempt": 1, "ok": true, "result": "<JSON text>",
                               "stdout": "...", "stderr": "..."}]}
      or, for a failure, "ok": false and "error": {"kind": "ValueError", "message": "...",
      "traceback": "..."} instead of "result". Sent as soon as each task ends.

End of file on fd 3 means workwurm is gone: the slot exits. Anything else the slot does not
understand is a bug in one side; the slot reports it on stderr and goes on. fd 5 is the lifeline
(above); the slot closes it once its guardian runs.

Output: while a task runs, fds 1 and 2 point at temporary files (so C code and child processes are
captured too, and a task that prints megabytes never blocks on a pipe); afterwards the slot sends
the last KEEP_BYTES of each, empties the files for the next task, and points fds 1 and 2 back at
workwurm's own output.
"""

import importlib
import importlib.util
import json
import os
import signal
import struct
import sys
import tempfile
import time
import traceback

TASKS_FD = 3
RESULTS_FD = 4
LIFELINE_FD = 5
TASK_ID_ENV = "TATZELWURM_TASK_ID"
ATTEMPT_ENV = "TATZELWURM_ATTEMPT"
# How much of each output stream a task keeps: its tail, which usually explains what happened.
KEEP_BYTES = 256 * 1024
# Results travel in workwurm's frames to the coordinator (64 MiB at most); stay well below.
MAX_RESULT_BYTES = 16 * 1024 * 1024
# Bound the error texts for the same reason (str() of a huge object, a very deep traceback).
MAX_TEXT_CHARS = 64 * 1024
ALLOWED = "return lists, dicts, strings, numbers, booleans or None"


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


PR_SET_CHILD_SUBREAPER = 36
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
        try:
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
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
        # fds 3 and 4 become free for the task's own files.
        self.reader = os.fdopen(os.dup(TASKS_FD), "rb", buffering=1 << 16)
        self.out = os.dup(RESULTS_FD)
        os.close(TASKS_FD)
        os.close(RESULTS_FD)

    def receive(self):
        """The next message, or None when workwurm closed the pipe."""
        head = self.reader.read(4)
        if len(head) < 4:
            return None
        (length,) = struct.unpack(">I", head)
        body = self.reader.read(length)
        if len(body) < length:
            return None
        return json.loads(body.decode("utf-8"))

    def send(self, message):
        # "replace" turns lone surrogates (from odd bytes in a str) into "?" so the frame is UTF-8.
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "replace"
        )
        data = memoryview(struct.pack(">I", len(body)) + body)
        while data:
            written = os.write(self.out, data)
            data = data[written:]


try:
    import ctypes

    # fflush(NULL) pushes out what C code left in libc's stdout buffer, so that it lands in the
    # output of the task that wrote it.
    _fflush = ctypes.CDLL(None).fflush
except Exception:  # ctypes is optional; without it, buffered C output may land one task late
    _fflush = None


class Capture:
    """Points fds 1 and 2 at temporary files while a task runs and reads them back."""

    def __init__(self):
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        self.fds = [f.fileno() for f in self.files]
        self.saved = [os.dup(1), os.dup(2)]

    def start(self):
        flush_python_streams()
        os.dup2(self.fds[0], 1)
        os.dup2(self.fds[1], 2)

    def stop(self):
        """Restores fds 1 and 2 and returns (stdout, stderr) of the task that just ran."""
        flush_python_streams()
        if _fflush is not None:
            _fflush(None)
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        return self.take(self.fds[0]), self.take(self.fds[1])

    @staticmethod
    def take(fd):
        size = os.fstat(fd).st_size
        if size == 0:
            return ""
        start = max(0, size - KEEP_BYTES)
        chunks = []
        offset = start
        while offset < size:
            chunk = os.pread(fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        text = b"".join(chunks).decode("utf-8", "replace")
        if start:
            text = "[tatzelwurm: %d earlier bytes not kept]\n%s" % (start, text)
        return text


def flush_python_streams():
    # A task may have replaced or closed sys.stdout; put the real ones back for the next task.
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        original = getattr(sys, "__%s__" % name)
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
    splits it.
    """
    target, _, name = function.rpartition(":")
    obj = load_file(target) if target.endswith(".py") else importlib.import_module(target)
    obj = getattr(obj, name)
    if not callable(obj):
        raise TypeError("%s is a %s, not a function" % (function, type(obj).__name__))
    return obj


def parse_arguments(task):
    args = json.loads(task.get("args") or "[]")
    kwargs = json.loads(task.get("kwargs") or "{}")
    if not isinstance(args, list):
        raise TypeError("args must be a JSON array, got %s" % type(args).__name__)
    if not isinstance(kwargs, dict):
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


def encode_result(value):
    """(result text, None) or (None, error) for a value a task returned."""
    offending = []

    def refuse(obj):
        offending.append(type(obj).__name__)
        raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)

    top = type(value).__name__
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=refuse
        )
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


def run_one(task, capture, leftovers):
    done = {"task": task["task"], "attempt": task["attempt"]}
    saved = {name: os.environ.get(name) for name in (TASK_ID_ENV, ATTEMPT_ENV)}
    os.environ[TASK_ID_ENV] = str(task["task"])
    os.environ[ATTEMPT_ENV] = str(task["attempt"])
    capture.start()
    try:
        try:
            function = resolve(task["function"])
            args, kwargs = parse_arguments(task)
            value = function(*args, **kwargs)
            result, error = encode_result(value)
        except BaseException as exc:
            result, error = None, describe(exc)
    finally:
        # Before the capture stops: what the leftovers wrote until now belongs to this task, and
        # nothing of theirs lands in the next task's output.
        if leftovers is not None:
            leftovers.end()
        done["stdout"], done["stderr"] = capture.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if error is None:
        done["ok"] = True
        done["result"] = result
    else:
        done["ok"] = False
        done["error"] = error
    return done


def main():
    keep_children = "--keep-children" in sys.argv[1:]
    guardian = start_guardian()
    # After the guardian: it must not become this slot's child (a task's os.wait() would see it).
    leftovers = None if keep_children else Leftovers(guardian, become_subreaper())
    channel = Channel()
    extra = [p for p in os.environ.get("TATZELWURM_PATH", "").split(":") if p]
    # `-c` put the working directory ('') first, `-m` its absolute path; the --path dirs come
    # right after it.
    sys.path[1:1] = extra
    capture = Capture()
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
    while True:
        message = channel.receive()
        if message is None:
            os._exit(0)
        tasks = message.get("run") if isinstance(message, dict) else None
        if tasks is None:
            sys.stderr.write("tatzelwurm slot: ignoring a message it does not understand\n")
            continue
        for task in tasks:
            channel.send({"done": [run_one(task, capture, leftovers)]})


if __name__ == "__main__":
    main()
