//! A worker's life: spawn, handshake, serve frames, watch heartbeats, replace on failure.

use crate::reason;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

use super::{frames, set_state, Instance, Live, Outbox};
use crate::convert;
use crate::error::{Code, EngineError};
use crate::frame::{self, FrameReader};
use crate::notify::Completion;
use crate::pb::terminal as t;
use crate::pb::terminal::worker_frame::Body;
use crate::pb::v1::InstanceState as S;
use crate::private;
use crate::routing;
use crate::shared::Shared;

fn worker_error(reason: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::new(Code::Unavailable, reason, message)
}

/// Keeps an instance's worker running until it is stopped or gives up.
pub async fn supervise(shared: Arc<Shared>, instance: Arc<Instance>) {
    loop {
        let outcome = run_worker(&shared, &instance).await;
        let delay = after_exit(&shared, &instance, &mut instance.live.lock(), outcome);
        let Some(delay) = delay else { return };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = instance.wake.notified() => {}
        }
        let mut live = instance.live.lock();
        if !live.desired_running {
            finish_stopped(&shared, &instance, &mut live);
            return;
        }
    }
}

fn finish_stopped(shared: &Shared, instance: &Instance, live: &mut Live) {
    live.supervised = false;
    live.stopping = false;
    set_state(shared, instance, live, S::Stopped, "STOPPED");
    let stopped = worker_error(reason::INSTANCE_STOPPED, "the instance was stopped");
    end_supervision(shared, instance, live, &stopped);
}

/// The loop ends: waiters for READY get `error`, waiters for the stop get the instance,
/// and the instance's streams end.
fn end_supervision(shared: &Shared, instance: &Instance, live: &mut Live, error: &EngineError) {
    instance.answer_ready_waiters(shared, live, Some(error));
    let payload = instance.to_pb(live).encode_to_vec();
    for token in live.stop_waiters.drain(..) {
        shared
            .notifier
            .complete(Completion::ok(token, payload.clone()));
    }
    close_streams(shared, instance);
}

fn close_streams(shared: &Shared, instance: &Instance) {
    let gone = worker_error(
        reason::INSTANCE_STOPPED,
        format!("instance '{}' stopped", instance.spec.instance_id),
    );
    shared
        .hub
        .close_matching(&instance.spec.instance_id, &gone, &shared.notifier);
}

/// Decides what follows a worker's exit; `Some(delay)` restarts it after `delay`.
fn after_exit(
    shared: &Shared,
    instance: &Instance,
    live: &mut Live,
    outcome: Result<(), EngineError>,
) -> Option<Duration> {
    live.running = false;
    close_outbox(live);
    live.pid = 0;
    routing::on_worker_lost(shared, instance, live);
    crate::market::on_worker_lost(shared, instance, live);
    let stable = live
        .ready_at
        .take()
        .is_some_and(|t| t.elapsed() >= instance.spec.supervision.stable_after);
    if !live.desired_running {
        finish_stopped(shared, instance, live);
        return None;
    }
    if std::mem::take(&mut live.restart_requested) {
        live.consecutive_failures = 0;
        live.restarts += 1;
        set_state(shared, instance, live, S::Starting, "RESTART_REQUESTED");
        return Some(Duration::ZERO);
    }
    let cause = match &outcome {
        Ok(()) => worker_error(reason::WORKER_EXITED, "the worker exited"),
        Err(e) => e.clone(),
    };
    if stable {
        live.consecutive_failures = 0;
    }
    live.consecutive_failures += 1;
    let supervision = &instance.spec.supervision;
    // Wrong credentials do not get better by restarting: FAILED at once.
    let login_failed = cause.reason == reason::LOGIN_FAILED || live.reason == reason::LOGIN_FAILED;
    if login_failed {
        live.supervised = false;
        live.desired_running = false;
        set_state(shared, instance, live, S::Failed, reason::LOGIN_FAILED);
        let failed = EngineError::new(
            Code::FailedPrecondition,
            reason::LOGIN_FAILED,
            format!(
                "the terminal refused the login: {}; fix the credentials and start it again",
                cause.message
            ),
        );
        end_supervision(shared, instance, live, &failed);
        return None;
    }
    if live.consecutive_failures >= supervision.max_consecutive_failures {
        live.supervised = false;
        live.desired_running = false;
        let failures = live.consecutive_failures;
        let reason = format!("RESTART_LIMIT_REACHED: {}", cause.reason);
        set_state(shared, instance, live, S::Failed, &reason);
        let failed = EngineError::new(
            Code::Unavailable,
            reason::WORKER_FAILED,
            format!(
                "the worker failed {failures} times in a row (last: {}: {}); \
                 start the instance again with StartInstance or RestartInstance",
                cause.reason, cause.message
            ),
        );
        end_supervision(shared, instance, live, &failed);
        return None;
    }
    live.restarts += 1;
    let delay = supervision.backoff(live.consecutive_failures);
    let reason = format!(
        "RESTARTING: {} (attempt {} in {} ms)",
        cause.reason,
        live.consecutive_failures + 1,
        delay.as_millis()
    );
    set_state(shared, instance, live, S::Starting, &reason);
    Some(delay)
}

/// The secret files (a password) written for one start of a worker, removed when dropped:
/// at the end of the start, also one whose worker never read them (it could not be spawned,
/// failed first, or crashed).
#[derive(Default)]
struct SecretFiles(Vec<PathBuf>);

impl Drop for SecretFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_secret(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())
}

/// Sends a signal to a worker's process group; a group already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }
}

/// Kills a worker left behind by an earlier server (e.g. one frozen when that server was
/// killed), recognised by its pid file and by its command line naming this instance's socket.
fn kill_leftover(pid_file: &Path, socket: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let needle = socket.as_os_str().as_encoded_bytes();
    if cmdline.windows(needle.len()).any(|w| w == needle) {
        signal_group(pid, Signal::SIGKILL);
    }
}

async fn run_worker(shared: &Arc<Shared>, instance: &Arc<Instance>) -> Result<(), EngineError> {
    let spec = &instance.spec;
    for dir in [&spec.dir, &spec.log_dir] {
        private::create_dir(dir).map_err(|e| {
            worker_error(
                reason::INSTANCE_DIR,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
    }
    let socket = spec.dir.join("worker.sock");
    let pid_file = spec.dir.join("worker.pid");
    kill_leftover(&pid_file, &socket);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| {
        worker_error(
            reason::WORKER_SOCKET,
            format!("cannot listen on {}: {e}", socket.display()),
        )
    })?;
    let log = private::append(&spec.log_dir.join("worker.log")).map_err(|e| {
        worker_error(
            reason::INSTANCE_DIR,
            format!("cannot open the worker log: {e}"),
        )
    })?;
    let log_err = log
        .try_clone()
        .map_err(|e| worker_error(reason::INSTANCE_DIR, e.to_string()))?;
    let secret_files = instance.secret_files.lock().clone();
    // Removed when this start is over, however it ends (the worker deletes a file it read).
    let mut written = SecretFiles::default();
    for (path, content) in &secret_files {
        written.0.push(path.clone());
        write_secret(path, &content.0).map_err(|e| {
            worker_error(
                reason::INSTANCE_DIR,
                format!("cannot write a secret file: {e}"),
            )
        })?;
    }
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(worker_error(reason::WORKER_COMMAND, "empty worker command"));
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .arg("--socket")
        .arg(&socket)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true);
    {
        let mut live = instance.live.lock();
        set_state(shared, instance, &mut live, S::Starting, "SPAWNING");
    }
    let mut child = command
        .spawn()
        .map_err(|e| worker_error(reason::WORKER_SPAWN, format!("cannot start {program}: {e}")))?;
    let pid = child.id().unwrap_or(0);
    if let Ok(mut file) = private::create(&pid_file) {
        let _ = std::io::Write::write_all(&mut file, format!("{pid}\n").as_bytes());
    }
    {
        let mut live = instance.live.lock();
        live.pid = pid;
        live.running = true;
        live.cpu_sample = None;
        set_state(shared, instance, &mut live, S::Connecting, "HANDSHAKE");
    }
    let result = serve(shared, instance, &listener, &mut child).await;
    // The connection is over: new requests are refused at once from here on, not written to
    // a dead socket while the worker's exit is awaited.
    close_outbox(&mut instance.live.lock());
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    // A worker that ended its connection exits by itself; one that stopped answering is
    // killed. Either way its whole process group goes.
    let grace = if result.is_ok() {
        shared.config.kill_grace
    } else {
        Duration::ZERO
    };
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    signal_group(pid, Signal::SIGKILL);
    let _ = std::fs::remove_file(&pid_file);
    drop(written);
    result
}

async fn serve(
    shared: &Arc<Shared>,
    instance: &Arc<Instance>,
    listener: &UnixListener,
    child: &mut tokio::process::Child,
) -> Result<(), EngineError> {
    let supervision = &instance.spec.supervision;
    let timeout = supervision.start_timeout;
    let stream = tokio::select! {
        accepted = tokio::time::timeout(timeout, listener.accept()) => match accepted {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => return Err(worker_error(reason::WORKER_SOCKET, e.to_string())),
            Err(_) => return Err(worker_error(reason::WORKER_START_TIMEOUT,
                format!("the worker did not connect within {timeout:?}"))),
        },
        status = child.wait() => return Err(worker_error(reason::WORKER_EXITED,
            format!("the worker exited before connecting: {}", describe(status)))),
    };
    // A second handle on the socket, for frames written by the thread that makes them.
    let (stream, direct) = stream
        .into_std()
        .and_then(|s| {
            let direct = s.try_clone()?;
            Ok((tokio::net::UnixStream::from_std(s)?, direct))
        })
        .map_err(|e| worker_error(reason::WORKER_SOCKET, e.to_string()))?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = FrameReader::new(reader);
    let hello = match tokio::time::timeout(timeout, reader.next()).await {
        Ok(Ok(Some(payload))) => match t::WorkerFrame::decode(payload) {
            Ok(t::WorkerFrame {
                body: Some(Body::Hello(hello)),
            }) => hello,
            // A worker that cannot log in may say so instead of Hello.
            Ok(t::WorkerFrame {
                body: Some(Body::Event(event)),
            }) if event.kind == reason::LOGIN_FAILED => {
                return Err(worker_error(reason::LOGIN_FAILED, event.message));
            }
            _ => {
                return Err(worker_error(
                    reason::PROTOCOL_ERROR,
                    "the first frame was not a Hello",
                ))
            }
        },
        Ok(Ok(None)) => {
            return Err(worker_error(
                reason::WORKER_EXITED,
                "the worker closed the connection",
            ))
        }
        Ok(Err(e)) => return Err(worker_error(reason::PROTOCOL_ERROR, e.to_string())),
        Err(_) => {
            return Err(worker_error(
                reason::WORKER_START_TIMEOUT,
                "no Hello from the worker",
            ))
        }
    };
    if hello.protocol_version != super::PROTOCOL_VERSION {
        return Err(worker_error(
            reason::PROTOCOL_MISMATCH,
            format!(
                "the worker speaks protocol {}, the engine {}",
                hello.protocol_version,
                super::PROTOCOL_VERSION
            ),
        ));
    }
    let heartbeat = supervision.heartbeat_interval;
    let welcome = frame::encode(&t::EngineFrame {
        body: Some(t::engine_frame::Body::Welcome(t::Welcome {
            protocol_version: super::PROTOCOL_VERSION,
            heartbeat_interval_ms: u32::try_from(heartbeat.as_millis()).unwrap_or(u32::MAX),
        })),
    });
    writer
        .write_all(&welcome)
        .await
        .map_err(|e| worker_error(reason::WORKER_EXITED, e.to_string()))?;
    let tx = Arc::new(Outbox::new(direct));
    tokio::spawn({
        let tx = Arc::clone(&tx);
        async move { tx.run(writer).await }
    });
    {
        let mut live = instance.live.lock();
        live.symbols.clear();
        live.symbol_order.clear();
        for s in hello.symbols {
            live.symbol_order.push(s.name.clone());
            live.symbols.insert(s.name.clone(), s);
        }
        if hello.account.is_some() {
            live.account = hello.account;
        }
        live.last_seen = Some(Instant::now());
        live.tx = Some(tx);
        live.positions_fresh = false;
    }
    // READY once the engine knows what is open: a worker sends its positions right after the
    // handshake, and until the first ones since the server started, none known is not none
    // open (after a worker's restart the ones it reported before stand until the new ones).
    let connected = Instant::now();
    let mut awaiting_positions = !instance.live.lock().positions_reported;
    if !awaiting_positions {
        become_ready(shared, instance);
    }
    let degraded_after = heartbeat.saturating_mul(supervision.missed_degraded.max(1));
    let restart_after = heartbeat.saturating_mul(supervision.missed_restart.max(1));
    let mut watchdog = tokio::time::interval((heartbeat / 2).max(Duration::from_millis(10)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Frames first: a worker's last answers are read before its exit is seen, and a
            // backlog of heartbeats after a stall of the engine before the watchdog looks.
            biased;
            // Cancel-safe: a watchdog tick in the middle of a frame loses none of it.
            read = reader.next() => match read {
                Ok(Some(payload)) => {
                    // The frames the worker wrote together (an order's deal, snapshots and
                    // result) are handled under one hold of the notifier: what they publish
                    // and complete wakes the event loop once, not once per frame.
                    let _hold = shared.notifier.hold();
                    let mut next = Some(payload);
                    while let Some(payload) = next {
                        handle_payload(shared, instance, &payload)?;
                        if awaiting_positions && instance.live.lock().positions_reported {
                            awaiting_positions = false;
                            become_ready(shared, instance);
                        }
                        next = reader
                            .buffered()
                            .map_err(|e| worker_error(reason::PROTOCOL_ERROR, e.to_string()))?;
                    }
                }
                // The worker closed the connection: if it is exiting, say how (a crash ends
                // its connection before its exit is seen).
                Ok(None) => {
                    return match tokio::time::timeout(EXIT_DRAIN, child.wait()).await {
                        Ok(Ok(status)) if status.success() => Ok(()),
                        Ok(status) => Err(exited(status)),
                        Err(_) => Ok(()),
                    };
                }
                Err(e) => return Err(worker_error(reason::PROTOCOL_ERROR, e.to_string())),
            },
            status = child.wait() => {
                // What it wrote before it exited (results of orders it executed) is still in
                // the socket: read it to the end before calling the worker gone.
                let _ = tokio::time::timeout(EXIT_DRAIN, async {
                    while let Ok(Some(payload)) = reader.next().await {
                        if handle_payload(shared, instance, &payload).is_err() {
                            break;
                        }
                    }
                })
                .await;
                return Err(exited(status));
            }
            _ = watchdog.tick() => {
                if awaiting_positions && connected.elapsed() >= supervision.start_timeout {
                    return Err(worker_error(reason::WORKER_START_TIMEOUT, format!(
                        "the worker did not report its positions within {:?}",
                        supervision.start_timeout)));
                }
                let mut live = instance.live.lock();
                let age = live.last_seen.map_or(Duration::ZERO, |t| t.elapsed());
                if age >= restart_after {
                    return Err(worker_error(reason::HEARTBEAT_LOST, format!(
                        "no frame from the worker for {} ms", age.as_millis())));
                }
                if age >= degraded_after && live.state == S::Ready {
                    set_state(shared, instance, &mut live, S::Degraded, "HEARTBEAT_LATE");
                }
            }
        }
    }
}

/// The worker is connected and the engine knows its positions: READY (answering those who
/// wait for it, and asking the terminal about orders whose outcome is unknown), or, when a
/// stop was asked for during start-up, the shutdown delivered now.
fn become_ready(shared: &Arc<Shared>, instance: &Instance) {
    let mut live = instance.live.lock();
    if live.desired_running {
        live.ready_at = Some(Instant::now());
        live.started = Some(convert::now());
        set_state(shared, instance, &mut live, S::Ready, "");
        instance.answer_ready_waiters(shared, &mut live, None);
        routing::reconcile_unknown(shared, &mut live);
        let close = crate::killswitch::take_deferred_closes(&mut live);
        drop(live);
        crate::killswitch::close_deferred(shared, instance, close);
        crate::copier::recovery::on_ready(shared, &instance.spec.instance_id);
    } else if let Some(tx) = &live.tx {
        let _ = tx.send(frame::encode(&shutdown_frame("stop requested")));
    }
}

/// Refuses new frames to the worker (the writer task ends once it wrote what was queued).
fn close_outbox(live: &mut Live) {
    if let Some(tx) = live.tx.take() {
        tx.close();
    }
}

/// How long the frames a worker wrote before it exited are read after its exit.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

fn handle_payload(
    shared: &Arc<Shared>,
    instance: &Arc<Instance>,
    payload: &[u8],
) -> Result<(), EngineError> {
    match t::WorkerFrame::decode(payload) {
        Ok(frame) => {
            frames::handle(shared, instance, frame);
            Ok(())
        }
        Err(e) => Err(worker_error(reason::PROTOCOL_ERROR, e.to_string())),
    }
}

/// The Shutdown frame.
pub fn shutdown_frame(reason: &str) -> t::EngineFrame {
    t::EngineFrame {
        body: Some(t::engine_frame::Body::Shutdown(t::Shutdown {
            reason: reason.to_owned(),
        })),
    }
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> EngineError {
    worker_error(
        reason::WORKER_EXITED,
        format!("the worker exited: {}", describe(status)),
    )
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// After `grace`, SIGTERM the worker's group; after `kill_grace`, SIGKILL it.
pub async fn escalate_stop(shared: Arc<Shared>, instance: Arc<Instance>, grace: Duration) {
    let pid = instance.live.lock().pid;
    for (wait, signal) in [
        (grace, Signal::SIGTERM),
        (shared.config.kill_grace, Signal::SIGKILL),
    ] {
        tokio::time::sleep(wait).await;
        let live = instance.live.lock();
        if !live.running || live.pid != pid {
            return;
        }
        signal_group(pid, signal);
    }
}
