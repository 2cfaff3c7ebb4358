//! `Client`: one actioner connection to the coordinator, with a typed method per request.
//!
//! Used by every command of the CLI, and meant to be wrapped later by the Python client
//! library, so it knows nothing of terminals: it never prints and never exits, and every failure
//! is a `ClientError`. It sends one request at a time and reads that request's answer; a request
//! whose future was dropped (a `task wait --timeout` that expired, say) leaves its late answer on
//! the connection, and the next request skips it by its older request id.

use crate::error::{io_reason, ClientError};
use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, FromActioner, Reply, Selection, ToActioner, WorkerInfo};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::task::{TaskInfo, TaskSpec, TaskState};
use tatzelwurm_proto::{Connection, ProtoError, RequestId, TaskId, MAX_FRAME_LEN, MAX_HELLO_LEN};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long connecting and the handshake may each take, so that a blackholed address or a
/// server that is not a coordinator fails within seconds instead of hanging.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a play or a kill did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Tasks that moved.
    pub changed: Vec<TaskId>,
    /// Tasks the command did not apply to, with the state that kept them.
    pub unchanged: Vec<(TaskId, TaskState)>,
}

/// A welcomed connection to the coordinator, speaking as an actioner.
pub struct Client {
    conn: Connection<ToActioner, FromActioner>,
    addr: String,
    next_request: u64,
}

impl Client {
    /// Connects to `addr` and introduces itself as the actioner `name` (shown in the
    /// coordinator's log), showing `token` if the coordinator wants one. Both the connect and
    /// the handshake are bounded by `CONNECT_TIMEOUT`.
    pub async fn connect(
        addr: &str,
        name: &str,
        token: Option<&str>,
    ) -> Result<Client, ClientError> {
        Client::connect_within(addr, name, token, CONNECT_TIMEOUT).await
    }

    /// `connect` with another bound on the connect and on the handshake, for callers (and tests)
    /// that need to fail faster or can afford to wait longer.
    pub async fn connect_within(
        addr: &str,
        name: &str,
        token: Option<&str>,
        limit: Duration,
    ) -> Result<Client, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: addr.into(),
            reason,
        };
        let stream = timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| unreachable(format!("no answer within {limit:?}")))?
            .map_err(|err| unreachable(io_reason(&err)))?;
        let conn = Connection::new(stream).map_err(|err| unreachable(io_reason(&err)))?;
        let conn = timeout(limit, handshake(conn, addr, name, token))
            .await
            .map_err(|_| ClientError::Silent { addr: addr.into() })??;
        Ok(Client {
            conn,
            addr: addr.into(),
            next_request: 1,
        })
    }

    /// The address this client talks to, for messages that name it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and returns its whole answer. A list answered in pages comes back as
    /// one `Reply::Tasks` holding every page; `Reply::Error` becomes `ClientError::Rejected`.
    pub async fn request(&mut self, command: Command) -> Result<Reply, ClientError> {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let message = FromActioner {
            request: id,
            command,
        };
        self.conn
            .send(&message)
            .await
            .map_err(|err| self.lost(err))?;
        match self.answer(id).await? {
            Reply::Tasks { tasks, more: true } => self.rest_of_pages(id, tasks).await,
            Reply::Error(failure) => Err(ClientError::Rejected(failure.message)),
            reply => Ok(reply),
        }
    }

    /// Adds tasks (started `ready` with `play`, else `created`) and returns their new ids in
    /// the order given, once the coordinator has made them durable.
    pub async fn add(
        &mut self,
        tasks: Vec<TaskSpec>,
        play: bool,
    ) -> Result<Vec<TaskId>, ClientError> {
        match self
            .request(Command::Add {
                tasks,
                play,
                key: None,
                watch: false,
            })
            .await?
        {
            Reply::Added(ids) => Ok(ids),
            other => Err(self.unexpected(&other, "Added")),
        }
    }

    /// Moves `created` tasks to `ready`.
    pub async fn play(&mut self, selection: Selection) -> Result<Changed, ClientError> {
        let reply = self.request(Command::Play(selection)).await?;
        self.changed(reply)
    }

    /// Ends unfinished tasks; a running one is stopped by its worker.
    pub async fn kill(&mut self, selection: Selection) -> Result<Changed, ClientError> {
        let reply = self.request(Command::Kill(selection)).await?;
        self.changed(reply)
    }

    /// Every task in one of `states` (all tasks when empty), in id order, without output.
    pub async fn list(&mut self, states: Vec<TaskState>) -> Result<Vec<TaskInfo>, ClientError> {
        match self.request(Command::List { states }).await? {
            Reply::Tasks { tasks, .. } => Ok(tasks),
            other => Err(self.unexpected(&other, "Tasks")),
        }
    }

    /// One task with its captured output.
    pub async fn show(&mut self, id: TaskId) -> Result<TaskInfo, ClientError> {
        match self.request(Command::Show(id)).await? {
            Reply::Task(info) => Ok(*info),
            other => Err(self.unexpected(&other, "Task")),
        }
    }

    /// Waits until every selected task is finished and returns them. Unbounded: a caller that
    /// wants a limit wraps this in `tokio::time::timeout`.
    pub async fn wait(&mut self, selection: Selection) -> Result<Vec<TaskInfo>, ClientError> {
        match self.request(Command::Wait(selection)).await? {
            Reply::Waited(tasks) => Ok(tasks),
            other => Err(self.unexpected(&other, "Waited")),
        }
    }

    /// The workers connected now.
    pub async fn workers(&mut self) -> Result<Vec<WorkerInfo>, ClientError> {
        match self.request(Command::Workers).await? {
            Reply::Workers(workers) => Ok(workers),
            other => Err(self.unexpected(&other, "Workers")),
        }
    }

    /// The next reply to request `id`, skipping late replies to earlier (abandoned) requests.
    async fn answer(&mut self, id: RequestId) -> Result<Reply, ClientError> {
        loop {
            let message = match self.conn.recv().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    return Err(ClientError::Closed {
                        addr: self.addr.clone(),
                    })
                }
                Err(err) => return Err(self.lost(err)),
            };
            if message.request == id {
                return Ok(message.reply);
            }
            if message.request > id {
                return Err(ClientError::Unexpected {
                    addr: self.addr.clone(),
                    detail: format!(
                        "answered request {} that was never sent (waiting for request {})",
                        message.request.0, id.0
                    ),
                });
            }
        }
    }

    /// Reads the remaining pages of a list after a first page that said `more`.
    async fn rest_of_pages(
        &mut self,
        id: RequestId,
        mut tasks: Vec<TaskInfo>,
    ) -> Result<Reply, ClientError> {
        loop {
            match self.answer(id).await? {
                Reply::Tasks { tasks: page, more } => {
                    tasks.extend(page);
                    if !more {
                        return Ok(Reply::Tasks { tasks, more: false });
                    }
                }
                Reply::Error(failure) => return Err(ClientError::Rejected(failure.message)),
                other => return Err(self.unexpected(&other, "Tasks")),
            }
        }
    }

    fn changed(&self, reply: Reply) -> Result<Changed, ClientError> {
        match reply {
            Reply::Changed { changed, unchanged } => Ok(Changed { changed, unchanged }),
            other => Err(self.unexpected(&other, "Changed")),
        }
    }

    fn lost(&self, err: ProtoError) -> ClientError {
        ClientError::from_proto(&self.addr, err)
    }

    fn unexpected(&self, reply: &Reply, expected: &str) -> ClientError {
        ClientError::Unexpected {
            addr: self.addr.clone(),
            detail: format!(
                "answered {} where {expected} was expected",
                reply_kind(reply)
            ),
        }
    }
}

/// Sends our hello and reads the coordinator's answer, then re-types the connection for the
/// actioner's messages.
async fn handshake(
    mut conn: Connection<HelloReply, Hello>,
    addr: &str,
    name: &str,
    token: Option<&str>,
) -> Result<Connection<ToActioner, FromActioner>, ClientError> {
    // A hello reply is small; a server that announces more is not a coordinator.
    conn.set_max_frame_len(MAX_HELLO_LEN);
    let hello = Hello::new(Role::Actioner { name: name.into() }).with_token(token);
    conn.send(&hello)
        .await
        .map_err(|err| ClientError::from_proto(addr, err))?;
    match conn.recv().await {
        Ok(Some(HelloReply::Welcome(_))) => {
            conn.set_max_frame_len(MAX_FRAME_LEN);
            Ok(conn.retype())
        }
        Ok(Some(HelloReply::Refused { reason })) => Err(ClientError::Refused {
            addr: addr.into(),
            reason,
        }),
        Ok(None) => Err(ClientError::Closed { addr: addr.into() }),
        Err(ProtoError::Undecodable(detail)) => Err(ClientError::NotCoordinator {
            addr: addr.into(),
            detail,
        }),
        Err(ProtoError::FrameTooLarge) => Err(ClientError::NotCoordinator {
            addr: addr.into(),
            detail: "its first bytes are not a tatzelwurm frame".into(),
        }),
        Err(err) => Err(ClientError::from_proto(addr, err)),
    }
}

/// The name of a reply's variant, for a message about a reply we did not expect.
fn reply_kind(reply: &Reply) -> &'static str {
    match reply {
        Reply::Added(_) => "Added",
        Reply::Changed { .. } => "Changed",
        Reply::Tasks { .. } => "Tasks",
        Reply::Task(_) => "Task",
        Reply::Waited(_) => "Waited",
        Reply::Workers(_) => "Workers",
        Reply::Watching => "Watching",
        Reply::Finished(_) => "Finished",
        Reply::Error(_) => "Error",
    }
}

#[cfg(test)]
mod tests;
