//! One slot process: starting it with its pipes on fds 3 and 4, the lifeline on fd 5 and the
//! doorbell on fd 6, and watching it until it ends.
//!
//! `slots` calls [`spawn`] and, once it has recorded the new process, [`watch`]; everything a slot
//! says or does comes back to `slots` as an [`Event`], as does what its running task wrote so
//! far (the watcher looks at the slot's capture files every `live_output::LIVE_EVERY`, see
//! `live_output` for why the bytes it sends belong to the task the pool sees running). The
//! watcher reads the slot's frames when the slot rings its doorbell and shortly after (see
//! `doorbell`), not at every write. The child runs `PYTHON -c <slot.py>` (or
//! `PYTHON -m tatzelwurm.slot` under the Python package, see [`SlotProgram`]) in its own process
//! group (so killing the group takes every process its task started), with stdin on /dev/null and
//! stdout/stderr shared with workwurm.
//!
//! Two things make a slot die with workwurm. `PR_SET_PDEATHSIG` has the kernel SIGKILL the slot
//! process itself; it cannot reach the processes its task started. For those, slot.py starts a
//! guardian in the slot's process group that waits on the [`Lifeline`] (fd 5) and SIGKILLs the
//! whole group when workwurm is gone (see `lifeline` and slot.py). The guardian is not the slot's
//! child (slot.py forks it through an intermediate process that exits at once), so the watcher
//! below, which waits for the slot's pid only, and a task's own `os.wait()` never see it; it dies
//! with every kill of the group.
//!
//! A task that simply ends needs no kill: slot.py itself ends what the task left running in the
//! group (sparing the guardian) before it reports the task, unless the slot was started with
//! [`KEEP_CHILDREN_ARG`] (`workwurm --keep-children`); see "Processes a task leaves behind" in
//! slot.py.
//!
//! Processes are forked on one dedicated thread that lives as long as workwurm: the kernel sends
//! `PR_SET_PDEATHSIG` when the *thread* that forked a child exits, so forking from a runtime
//! thread that may be retired would kill healthy slots, and forking from a thread that outlives
//! workwurm is impossible.

use crate::captured::Captured;
use crate::doorbell::{self, BELL_FD, CHECK_AFTER};
use crate::lifeline::{dup_above, Lifeline, LIFELINE_FD};
use crate::live_output::{LiveCursor, LIVE_EVERY};
use crate::slot_channel::{FrameBuffer, FromSlot, SlotProtocolError};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::warn;

/// The slot loop, carried in the binary so that nothing has to be installed next to it. Its one
/// source is the Python package's `tatzelwurm/slot.py`, which the package runs with `-m`.
pub const SLOT_PY: &str = include_str!("../../python/tatzelwurm/slot.py");

/// The argument that tells slot.py to leave the processes a task started running when it ends.
pub const KEEP_CHILDREN_ARG: &str = "--keep-children";

/// The argument that tells slot.py not to import changed source files afresh (hot reload).
pub const NO_RELOAD_ARG: &str = "--no-reload";

/// The argument, followed by a number of bytes, that tells slot.py to measure its resident
/// memory after each task it runs in order and say `outgrown` past it (`--max-memory`).
pub const MAX_MEMORY_ARG: &str = "--max-memory";

/// The environment variable through which slot.py learns the `--path` dirs (joined with `:`).
pub const PATH_ENV: &str = "TATZELWURM_PATH";

/// The variables slot.py sets while a task runs; a slot starts without them even when workwurm
/// itself runs inside a task, so that a task never sees another task's id.
const TASK_ENV: [&str; 2] = ["TATZELWURM_TASK_ID", "TATZELWURM_ATTEMPT"];

/// How long to wait, after the process exited, for the end of its doorbell before the pipe of
/// its frames is read a last time (it is read at the exit too). Only a process that inherited
/// the pipes against slot.py's wishes (a fork without exec in a task, in another process group)
/// can hold them open longer.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How long a new slot may take to say hello. Beyond it the interpreter is stuck (a
/// `sitecustomize` waiting for something, say) and is killed, and the pool restarts it.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// What a slot's watcher is waiting for, besides its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The first message of a new slot (until `HELLO_TIMEOUT`).
    Hello,
    /// The exit of a slot that closed its doorbell (until `LINGER_AFTER_END`, then it is killed).
    Exit,
    /// The end of the doorbell of a slot that exited (until `DRAIN_AFTER_EXIT`).
    LastFrames,
}

/// How long a slot may live on after closing its end of the doorbell before it is killed.
const LINGER_AFTER_END: Duration = Duration::from_secs(1);

/// How the slot loop reaches the interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotProgram {
    /// `PYTHON -c <slot.py>`: the source carried in this binary ([`SLOT_PY`]), for any Python.
    Carried,
    /// `PYTHON -m MODULE`: the slot loop installed with the Python package (`tatzelwurm.slot`),
    /// for the package's own interpreter.
    Module(String),
}

/// What every slot process runs; the same for all slots of a worker.
#[derive(Debug, Clone)]
pub struct SlotCommand {
    /// The user's interpreter, an absolute path (not resolved through symlinks, so a venv stays
    /// a venv).
    pub python: PathBuf,
    /// The slot loop it runs.
    pub program: SlotProgram,
    /// The `--path` dirs joined with `:`, handed to slot.py in `PATH_ENV`.
    pub extra_path: OsString,
    /// Leave the processes a task started running when the task ends (`--keep-children`).
    pub keep_children: bool,
    /// Import the user's modules afresh when their source files change (off: `--no-reload`).
    pub reload: bool,
    /// `--max-memory` in bytes: slot.py measures itself after each task it runs in order and
    /// says `outgrown` past it (see `slot_table::memory`); the pool measures it meanwhile.
    pub max_memory: Option<u64>,
    /// The one lifeline of this worker, whose read end every slot gets as fd 5.
    pub lifeline: Arc<Lifeline>,
}

impl SlotCommand {
    /// The carried slot loop for `python` with `extra_path`, ending each task's leftover
    /// processes, and a new lifeline.
    pub fn new(python: PathBuf, extra_path: OsString) -> io::Result<SlotCommand> {
        Ok(SlotCommand {
            python,
            program: SlotProgram::Carried,
            extra_path,
            keep_children: false,
            reload: true,
            max_memory: None,
            lifeline: Arc::new(Lifeline::new()?),
        })
    }

    /// The interpreter's arguments that start the slot loop.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = match &self.program {
            SlotProgram::Carried => vec!["-c".into(), SLOT_PY.into()],
            SlotProgram::Module(module) => vec!["-m".into(), module.clone()],
        };
        if self.keep_children {
            args.push(KEEP_CHILDREN_ARG.into());
        }
        if !self.reload {
            args.push(NO_RELOAD_ARG.into());
        }
        if let Some(limit) = self.max_memory {
            args.push(MAX_MEMORY_ARG.into());
            args.push(limit.to_string());
        }
        args
    }
}

/// A slot process that was just started, before anyone watches it.
pub struct Started {
    /// Its pid, which is also its process group id.
    pub pid: i32,
    /// Frames to the slot.
    pub to_slot: SlotWriter,
    /// Its frames, read by its watcher when it rings and by the pool before it acts on what the
    /// slot runs (see `doorbell`).
    pub frames: Arc<Mutex<SlotFrames>>,
    child: Child,
    /// The doorbell's read end.
    bell: pipe::Receiver,
}

/// What a slot wrote to workwurm, read by whoever needs it first: its watcher when the slot
/// rings, or the pool before a kill or a timeout (so that it acts on the task the slot really
/// runs; see `doorbell`). Whoever reads it turns the frames into messages in order, while
/// holding the lock, and hands them on before letting go of it.
pub struct SlotFrames {
    /// The slot's pid, for its capture files.
    pid: i32,
    /// The results pipe: non-blocking, in no epoll set.
    fd: OwnedFd,
    /// Bytes read and not yet cut into messages.
    buffer: FrameBuffer,
    /// The capture files, once the slot said hello, and how far they were forwarded (`live_output`).
    live: Option<(Captured, LiveCursor)>,
    /// The slot said hello (whoever read it).
    hello: bool,
}

impl SlotFrames {
    /// Reads what the pipe holds now and cuts it into messages, in order; an error means the
    /// slot spoke no protocol we know (the caller kills it), after the messages before it.
    pub fn read(&mut self) -> (doorbell::Read, Vec<FromSlot>, Option<SlotProtocolError>) {
        let read = doorbell::read_available(self.fd.as_raw_fd(), &mut self.buffer);
        let mut messages = Vec::new();
        loop {
            match self.buffer.next_message() {
                Ok(Some(message)) => {
                    self.hello = true;
                    match &message {
                        FromSlot::Hello(hello) if self.live.is_none() => {
                            // Without the files there is no live output; the report still
                            // carries what the task wrote.
                            self.live = hello
                                .capture
                                .and_then(|fds| Captured::open(self.pid, fds).ok())
                                .map(|captured| (captured, LiveCursor::default()));
                        }
                        FromSlot::Done(_) => {
                            if let Some((_, cursor)) = &mut self.live {
                                cursor.task_ended();
                            }
                        }
                        _ => {}
                    }
                    messages.push(message);
                }
                Ok(None) => return (read, messages, None),
                Err(err) => return (read, messages, Some(err)),
            }
        }
    }

    /// One look at the capture files for live output, if no frame of the slot is unread (see
    /// `look_at_output`).
    fn look_at_output(&mut self) -> Option<[Option<String>; 2]> {
        let (captured, cursor) = self.live.as_mut()?;
        let pipe = self.fd.as_raw_fd();
        let buffer = &self.buffer;
        look_at_output(captured, cursor, || {
            buffer.is_empty() && pipe_is_empty(pipe)
        })
    }
}

/// What a slot process did, tagged by the slot index and the generation of its process so that
/// news from a replaced process is recognised as stale.
#[derive(Debug)]
pub struct Event {
    /// Which slot.
    pub slot: usize,
    /// Which of that slot's processes (it counts up with each start).
    pub generation: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The news a slot process sends or a watcher notices.
#[derive(Debug)]
pub enum EventKind {
    /// A start finished (after its back-off): the process, or why it could not be started.
    Started(io::Result<StartedBox>),
    /// A message from the slot.
    Message(FromSlot),
    /// The process is gone and its pipe read to the end.
    Exited(ExitStatus),
    /// What the task the slot runs wrote to stdout and stderr since the last such event (see
    /// `live_output`); sent only when no frame of the slot was unread.
    Output([Option<String>; 2]),
}

/// `Started` in a box with a Debug that does not print the pipes.
pub struct StartedBox(pub Box<Started>);

impl std::fmt::Debug for StartedBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Started(pid {})", self.0.pid)
    }
}

/// Says how a slot process ended, for log lines and for the error of a task it was running.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

/// Sends SIGKILL to a slot's whole process group: the slot and every process its task started.
pub fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group and touches no memory.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Starts one slot process.
pub async fn spawn(command: &SlotCommand) -> io::Result<Started> {
    let (task_read, task_write) = pipe_cloexec()?;
    let (result_read, result_write) = pipe_cloexec()?;
    let (bell_read, bell_write) = pipe_cloexec()?;
    set_nonblocking(&result_read)?;
    // Moved above fd 10 so that dup2 onto 3, 4 and 6 in the child can never overwrite another.
    let child_in = dup_above(&task_read, 10)?;
    let child_out = dup_above(&result_write, 10)?;
    let child_bell = dup_above(&bell_write, 10)?;
    drop((task_read, result_write, bell_write));

    let mut std_command = std::process::Command::new(&command.python);
    std_command
        .args(command.args())
        .env(PATH_ENV, &command.extra_path)
        .stdin(Stdio::null());
    for name in TASK_ENV {
        std_command.env_remove(name);
    }
    let fds = ChildFds {
        tasks: child_in.as_raw_fd(),
        results: child_out.as_raw_fd(),
        lifeline: command.lifeline.read_fd(),
        bell: child_bell.as_raw_fd(),
    };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe {
        std_command.pre_exec(move || prepare_child(fds, parent));
    }
    let child = fork_on_spawner_thread(std_command).await?;
    // The child has its copies now; ours would keep the pipes open after it dies.
    drop((child_in, child_out, child_bell));
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the slot process ended before it could be watched"))?
        as i32;
    let pipes = pipe::Sender::from_owned_fd(task_write)
        .and_then(|to| Ok((to, pipe::Receiver::from_owned_fd(bell_read)?)));
    match pipes {
        Ok((to_slot, bell)) => Ok(Started {
            pid,
            to_slot: SlotWriter::new(to_slot),
            frames: Arc::new(Mutex::new(SlotFrames {
                pid,
                fd: result_read,
                buffer: FrameBuffer::default(),
                live: None,
                hello: false,
            })),
            child,
            bell,
        }),
        Err(err) => {
            // Nobody could talk to it or watch it: it must not live on.
            kill_group(pid);
            Err(err)
        }
    }
}

/// The fds (all numbered 10 or higher) that a new slot gets as 3, 4, 5 and 6.
#[derive(Clone, Copy)]
struct ChildFds {
    tasks: RawFd,
    results: RawFd,
    lifeline: RawFd,
    bell: RawFd,
}

/// Runs in the child between fork and exec: pipes onto 3 and 4, the lifeline onto 5 and the
/// doorbell onto 6, own process group, die with us.
fn prepare_child(fds: ChildFds, parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain syscalls on fds and the calling process; all async-signal-safe.
    unsafe {
        // dup2 leaves the new descriptors without close-on-exec, so the slot inherits them. The
        // sources are all above 10, so no dup2 overwrites another's source.
        if libc::dup2(fds.tasks, 3) < 0
            || libc::dup2(fds.results, 4) < 0
            || libc::dup2(fds.lifeline, LIFELINE_FD) < 0
            || libc::dup2(fds.bell, BELL_FD) < 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::setpgid(0, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
            return Err(io::Error::last_os_error());
        }
        // workwurm may have died between the fork and the prctl; then nobody would kill us.
        if libc::getppid() != parent {
            return Err(io::Error::other("workwurm exited while starting a slot"));
        }
    }
    Ok(())
}

/// Makes reads of `fd` return at once when there is nothing to read.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL read and set the flags of an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// The long-lived thread that forks every slot (see the module comment for why). It runs for
/// the rest of the process; jobs are short (one fork and exec each).
fn spawner() -> io::Result<&'static std_mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Result<std_mpsc::Sender<SpawnJob>, String>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (sender, jobs) = std_mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("slot-spawner".into())
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                })
                .map(|_| sender)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| io::Error::other(format!("cannot start the slot spawner thread: {e}")))
}

async fn fork_on_spawner_thread(command: std::process::Command) -> io::Result<Child> {
    let handle = Handle::current();
    let (reply, answer) = oneshot::channel();
    let job: SpawnJob = Box::new(move || {
        // tokio's child reaping needs the runtime that will await the child.
        let _runtime = handle.enter();
        let result = tokio::process::Command::from(command).spawn();
        if let Err(Ok(child)) = reply.send(result) {
            // Whoever asked is gone (shutting down): do not leave the process behind.
            if let Some(pid) = child.id() {
                kill_group(pid as i32);
            }
        }
    });
    spawner()?
        .send(job)
        .map_err(|_| io::Error::other("the slot spawner thread is gone"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the slot spawner thread dropped a request"))?
}

/// Frames to one slot process.
///
/// A frame goes into the pipe with one write, right here, without a hop to another task, while
/// the pipe has room. Several frames may be on their way at once (run frames for the tasks a
/// slot holds, cancels), so what does not fit waits in a backlog that one task of its own
/// writes as the slot reads; while it is not empty every later frame joins it, so frames never
/// interleave.
#[derive(Clone)]
pub struct SlotWriter {
    pipe: Arc<pipe::Sender>,
    /// Bytes not yet written, in order; `Some` while a task is writing them.
    backlog: Arc<Mutex<Option<VecDeque<u8>>>>,
}

impl SlotWriter {
    fn new(pipe: pipe::Sender) -> SlotWriter {
        SlotWriter {
            pipe: Arc::new(pipe),
            backlog: Arc::new(Mutex::new(None)),
        }
    }

    /// Writes `frame` to the slot. Returns false when the slot's end of the pipe is closed: the
    /// process is gone and certainly did not get the frame (its watcher reports the exit). A
    /// failure after the first write is left to the watcher too.
    #[must_use]
    pub fn send(&self, frame: Vec<u8>) -> bool {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = backlog.as_mut() {
            waiting.extend(frame);
            return true;
        }
        let written = match self.pipe.try_write(&frame) {
            Ok(written) => written,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return false,
        };
        if written == frame.len() {
            return true;
        }
        *backlog = Some(frame[written..].iter().copied().collect());
        drop(backlog);
        let (pipe, backlog) = (Arc::clone(&self.pipe), Arc::clone(&self.backlog));
        tokio::spawn(async move {
            loop {
                let writable = pipe.writable().await;
                let mut guard = backlog.lock().unwrap_or_else(|e| e.into_inner());
                let Some(waiting) = guard.as_mut() else {
                    return;
                };
                if writable.is_err() {
                    *guard = None;
                    return;
                }
                match pipe.try_write(waiting.make_contiguous()) {
                    Ok(written) => {
                        waiting.drain(..written);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        // The slot is gone; its watcher reports the exit.
                        *guard = None;
                        return;
                    }
                }
                if waiting.is_empty() {
                    *guard = None;
                    return;
                }
            }
        });
        true
    }
}

/// Watches a started slot until it is gone: forwards its messages and then its exit to `events`.
///
/// Waits for the doorbell, the look after a ring (see `doorbell`), the exit and the live-output
/// tick in one `select!` (all cancel-safe), and reads the slot's frames when the slot rang or at
/// that look, so a process that dies while some other process still holds its pipes is noticed,
/// and every frame written before a crash, rung or not, is still delivered before the exit.
/// After the exit the whole process group is killed, so nothing a crashed task started lives on.
pub fn watch(started: Started, slot: usize, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let Started {
        pid,
        mut child,
        frames,
        bell,
        ..
    } = started;
    tokio::spawn(async move {
        let send = |kind| {
            let _ = events.send(Event {
                slot,
                generation,
                kind,
            });
        };
        let mut look = tokio::time::interval_at(Instant::now() + LIVE_EVERY, LIVE_EVERY);
        look.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut status: Option<ExitStatus> = None;
        let mut at_end = false;
        // One timer, for whichever of three waits is on (see `Waiting`).
        let timer = tokio::time::sleep(HELLO_TIMEOUT);
        tokio::pin!(timer);
        let mut waiting = Some(Waiting::Hello);
        // When the results pipe is looked at again although the slot did not ring (`doorbell`).
        let check = tokio::time::sleep(CHECK_AFTER);
        tokio::pin!(check);
        let mut checking = false;
        let mut scratch = [0u8; 256];
        while !(at_end && status.is_some()) {
            // Whether to read the pipe now (after a ring, at the look after one, after the exit),
            // and whether the slot rang.
            let mut read_now = false;
            let mut rang = false;
            tokio::select! {
                ready = bell.readable(), if !at_end => {
                    // Every byte is one ring; they are all answered by one read of the pipe.
                    let closed = ready.is_err() || loop {
                        match bell.try_read(&mut scratch) {
                            Ok(0) => break true,
                            Ok(_) => continue,
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break false,
                            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => break true,
                        }
                    };
                    read_now = true;
                    rang = !closed;
                    if closed {
                        // The slot is gone (or closed its fds): what its pipe holds is all.
                        at_end = true;
                        if status.is_none() {
                            timer.as_mut().reset(Instant::now() + LINGER_AFTER_END);
                            waiting = Some(Waiting::Exit);
                        }
                    }
                },
                () = &mut check, if checking && !at_end => read_now = true,
                exit = child.wait(), if status.is_none() => {
                    status = Some(exit.unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL)));
                    kill_group(pid);
                    read_now = true;
                    if !at_end {
                        timer.as_mut().reset(Instant::now() + DRAIN_AFTER_EXIT);
                        waiting = Some(Waiting::LastFrames);
                    }
                },
                _ = look.tick(), if !at_end && status.is_none() => {
                    let mut frames = frames.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(texts) = frames.look_at_output() {
                        send(EventKind::Output(texts));
                    }
                }
                () = &mut timer, if waiting.is_some() => match waiting.take() {
                    // The pool may have read the hello (`SlotFrames`).
                    Some(Waiting::Hello) if frames.lock().unwrap_or_else(|e| e.into_inner()).hello => {}
                    Some(Waiting::Hello) => {
                        warn!(slot, "slot {slot} did not start within {} s; killing it", HELLO_TIMEOUT.as_secs());
                        kill_group(pid);
                    }
                    Some(Waiting::Exit) => kill_group(pid),
                    Some(Waiting::LastFrames) | None => {
                        read_now = true;
                        at_end = true;
                    }
                },
            }
            if !read_now {
                continue;
            }
            // The messages are sent while the lock is held, so that the pool, which reads under
            // the same lock, finds every message read before its own in its channel.
            let mut shared = frames.lock().unwrap_or_else(|e| e.into_inner());
            let (read, messages, error) = shared.read();
            // Looked at again shortly after a ring, and after a look that found frames: a `done`
            // the slot wrote meanwhile without ringing is read then (see `doorbell`).
            checking = (rang || read.some) && !at_end && status.is_none();
            if checking {
                check.as_mut().reset(Instant::now() + CHECK_AFTER);
            }
            for message in messages {
                if waiting == Some(Waiting::Hello) {
                    waiting = None;
                }
                send(EventKind::Message(message));
            }
            drop(shared);
            if let Some(err) = error {
                warn!(slot, "replacing slot {slot}: {err}");
                kill_group(pid);
                at_end = true;
            }
            if read.at_end && !at_end && status.is_some() {
                at_end = true;
            }
        }
        if let Some(status) = status {
            send(EventKind::Exited(status));
        }
    });
}

/// One look at a slot's capture files (see `live_output`): what grew since the last look, if
/// `quiet()` says, after reading, that no frame of the slot is unread (else it is read again at
/// the next look, once those frames went their way).
fn look_at_output(
    captured: &Captured,
    cursor: &mut LiveCursor,
    quiet: impl FnOnce() -> bool,
) -> Option<[Option<String>; 2]> {
    let sizes = captured.sizes();
    let reads = [0, 1].map(|which| {
        cursor
            .plan(which, sizes[which])
            .map(|read| (read, captured.read(which, read.from, read.len)))
    });
    if reads.iter().all(Option::is_none) || !quiet() {
        return None;
    }
    let mut which = 0;
    let texts = reads.map(|read| {
        let text = read.and_then(|(read, bytes)| cursor.accept(which, read, &bytes));
        which += 1;
        text
    });
    texts.iter().any(Option::is_some).then_some(texts)
}

/// Whether nothing waits to be read in the pipe `fd` (`FIONREAD` asks the kernel itself, not
/// the runtime's idea of readiness).
fn pipe_is_empty(fd: RawFd) -> bool {
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the variable we pass.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) };
    rc == 0 && unread == 0
}

#[cfg(test)]
mod tests;
