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
lost), so the pair makes an idempotency key: "task 12, attempt 3" names one run. While the slot
waits for work the two variables are not set (between tasks it runs back to back they change
from one task's values to the next's).

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
      Tasks to run one after another, in order, after those the slot holds already. workwurm
      hands a slot several at once when their functions are fast, so that it never waits for its
      next task; they wait in the slot's own queue.
  workwurm -> slot  {"cancel": [[12, 1], ...]}
      Tasks (task, attempt) the slot holds and must not begin: they were killed.
  slot -> workwurm  {"hello": {"python": "3.11.7", "executable": "/usr/bin/python3", "pid": 4711,
                                "capture": [7, 8]}}
      Once, when the slot is ready for tasks. "capture" holds the fds of the files that capture a
      task's stdout and stderr (see Output): workwurm opens them through /proc so that what a task
      wrote is still there when the slot dies under it (killed, timed out, crashed).
  slot -> workwurm  {"done": [{"task": 12, "attempt": 1, "ok": true, "result": "<JSON text>",
                               "stdout": "...", "stderr": "..."}]}
      or, for a failure, "ok": false and "error": {"kind": "ValueError", "message": "...",
      "traceback": "..."} instead of "result". Sent as soon as each task ends, and before the
      slot begins its next task: workwurm learns from it that the next one has begun (its
      timeout runs from then, and a kill of it kills the slot).
  slot -> workwurm  {"skipped": [[12, 1], ...]}
      The cancelled tasks the slot dropped from its queue. Before it begins a task, the slot
      reads whatever workwurm sent meanwhile, so a cancel that arrived in time is always
      honoured and said so ahead of the "done" after which the task would have begun; a task
      that began before its cancel arrived is killed by workwurm with the slot.

End of file on fd 3 means workwurm is gone: the slot exits. Anything else the slot does not
understand is a bug in one side; the slot reports it on workwurm's stderr and goes on. fd 5 is
the lifeline (above); the slot closes it once its guardian runs.

Output: once the slot is ready, fds 1 and 2 point at temporary files (so C code and child
processes are captured too, and a task that prints megabytes never blocks on a pipe), and stay so:
after each task the slot sends the last KEEP_BYTES of each and empties the files that were written
to, with no dup2 per task. A file that did not grow costs one lseek. The slot's own complaints go
to workwurm's stderr, kept aside at start.
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


_CHILD_FLAGS = os.WEXITED | os.WNOHANG | os.WNOWAIT
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
            return _waitid(os.P_ALL, 0, None, _CHILD_FLAGS) == 0
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
        # fds 3 and 4 become free for the task's own files.
        self.fd = os.dup(TASKS_FD)
        self.out = os.dup(RESULTS_FD)
        os.close(TASKS_FD)
        os.close(RESULTS_FD)
        self.buffer = b""
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

    def ready(self):
        """The messages that are complete now, without waiting (one poll when there are none);
        None when workwurm closed the pipe."""
        if not self.poller.poll(0):
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

    def write(self, *bodies):
        """Writes each JSON text as one frame, all in one write."""
        if len(bodies) == 1:
            data = bodies[0].encode("utf-8", "replace")
            data = _length.pack(len(data)) + data
            written = os.write(self.out, data)
            if written == len(data):
                return
            bodies = ()
            parts = [data[written:]]
        else:
            parts = []
        for body in bodies:
            data = body.encode("utf-8", "replace")
            parts.append(_length.pack(len(data)))
            parts.append(data)
        data = memoryview(b"".join(parts))
        while data:
            written = os.write(self.out, data)
            data = data[written:]


_length = struct.Struct(">I")
_decoder = json.JSONDecoder()
_decode = _decoder.decode
_raw_decode = _decoder.raw_decode
# JSON text of a string, non-ASCII kept (as ensure_ascii=False does).
_string = json.encoder.encode_basestring
READ_BYTES = 1 << 16

try:
    import ctypes

    # fflush(NULL) pushes out what C code left in libc's stdout buffer, so that it lands in the
    # output of the task that wrote it.
    _fflush = ctypes.CDLL(None).fflush
except Exception:  # ctypes is optional; without it, buffered C output may land one task late
    _fflush = None


class Capture:
    """Points fds 1 and 2 at temporary files for as long as the slot runs tasks, and reads what
    each task wrote."""

    def __init__(self):
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        self.fds = [f.fileno() for f in self.files]
        # workwurm's own stdout and stderr, for the slot's own complaints.
        self.saved = [os.dup(1), os.dup(2)]

    def start(self):
        """From now on fds 1 and 2 are the capture files. They stay so between tasks: the files
        are emptied after each task that wrote something, and no dup2 is needed per task."""
        flush_python_streams()
        os.dup2(self.fds[0], 1)
        os.dup2(self.fds[1], 2)

    def take_output(self):
        """(stdout, stderr) of the task that just ran; empties the files it wrote to."""
        flush_python_streams()
        if _fflush is not None:
            _fflush(None)
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


_stdout = sys.__stdout__
_stderr = sys.__stderr__


def flush_python_streams():
    out, err = sys.stdout, sys.stderr
    if out is _stdout and err is _stderr and out is not None and err is not None:
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
    args = task.get("args")
    args = parse_json(args) if args else []
    kwargs = task.get("kwargs")
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


def run_one(task, capture, leftovers):
    """Runs one task; returns the JSON text of its `done` entry."""
    environ = os.environ
    environ[TASK_ID_ENV] = str(task["task"])
    attempt = str(task["attempt"])
    # Usually "1" task after task; each setting costs a scan of the C environment.
    if environ.get(ATTEMPT_ENV) != attempt:
        environ[ATTEMPT_ENV] = attempt
    try:
        try:
            function = resolve(task["function"])
            args, kwargs = parse_arguments(task)
            value = function(*args, **kwargs)
            result, error = encode_result(value)
        except BaseException as exc:
            result, error = None, describe(exc)
    finally:
        # Before the output is read: what the leftovers wrote until now belongs to this task,
        # and nothing of theirs lands in the next task's output.
        if leftovers is not None:
            leftovers.end()
        stdout, stderr = capture.take_output()
    if error is None:
        # The common case, written by hand: json.dumps of the whole entry costs more than the
        # task of a noop.
        return '{"task":%d,"attempt":%d,"ok":true,"result":%s,"stdout":%s,"stderr":%s}' % (
            task["task"],
            task["attempt"],
            _string(result),
            _string(stdout) if stdout else '""',
            _string(stderr) if stderr else '""',
        )
    done = {"task": task["task"], "attempt": task["attempt"], "ok": False, "error": error}
    done["stdout"], done["stderr"] = stdout, stderr
    return json.dumps(done, ensure_ascii=False, separators=(",", ":"))


class Queue:
    """The tasks workwurm handed this slot and it has not begun, oldest first, and those of them
    workwurm took back (`cancel`) that it has not yet been told were skipped."""

    def __init__(self, capture):
        self.tasks = collections.deque()
        self.skipped = []
        self.capture = capture

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
            self.capture.complain("ignoring a message it does not understand")

    def cancel(self, attempts):
        keep = []
        for task in self.tasks:
            key = (task["task"], task["attempt"])
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
    capture.start()
    queue = Queue(capture)
    tasks = queue.tasks
    while True:
        if not queue.tasks:
            skipped = queue.skipped_frame()
            if skipped is not None:
                channel.write(skipped)
            # Between tasks the task's variables are not set (see For tasks).
            os.environ.pop(TASK_ID_ENV, None)
            os.environ.pop(ATTEMPT_ENV, None)
            messages = channel.wait()
            if messages is None:
                os._exit(0)
            queue.take(messages)
            continue
        tasks = queue.tasks
        done = run_one(tasks.popleft(), capture, leftovers)
        # Before the next task begins, what workwurm sent meanwhile: more tasks, or a cancel of
        # one not begun, which must be skipped and said so ahead of this `done`.
        messages = channel.ready()
        if messages is None:
            os._exit(0)
        if messages:
            queue.take(messages)
        skipped = queue.skipped_frame()
        if skipped is None:
            channel.write('{"done":[%s]}' % done)
        else:
            channel.write(skipped, '{"done":[%s]}' % done)


if __name__ == "__main__":
    main()
