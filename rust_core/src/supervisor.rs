//! One worker process per instance: spawn, handshake, frame handling, stop.
//!
//! Workers are started with exec (never a fork of the server) in their own
//! process group and directory, and connect back to a Unix socket the engine
//! listens on in that directory. The connection is the lifeline: when it
//! closes the worker exits, so a worker never trades unsupervised.

use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::convert;
use crate::engine::Shared;
use crate::error::{Code, EngineError};
use crate::fanout::{piece, Topic};
use crate::frame;
use crate::notify::Completion;
use crate::pb::terminal as t;
use crate::pb::terminal::worker_frame::Body;
use crate::pb::v1;
use crate::retcode;

/// Highest protocol version this engine speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// What an instance is created from.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique id (validated by the API layer: safe as a path component).
    pub instance_id: String,
    /// Owner (user or tenant).
    pub owner: String,
    /// Worker backend.
    pub backend: v1::Backend,
    /// The instance's own directory.
    pub dir: PathBuf,
    /// Worker command line; the engine appends `--socket PATH`.
    pub argv: Vec<String>,
    /// Extra environment for the worker.
    pub env: Vec<(String, String)>,
    /// The configuration the instance was created with.
    pub config: v1::InstanceConfig,
}

/// An order sent to a worker and not answered yet.
#[derive(Debug, Clone)]
pub struct PendingOrder {
    /// The order as it will be reported.
    pub order: v1::Order,
    /// Price the slippage is measured against.
    pub reference_price: f64,
    /// The symbol's point.
    pub point: f64,
}

/// Mutable state of an instance.
#[derive(Debug)]
pub struct Live {
    /// Lifecycle state.
    pub state: v1::InstanceState,
    /// Why.
    pub reason: String,
    /// Worker pid (0 when none).
    pub pid: u32,
    /// A worker process exists.
    pub running: bool,
    /// A stop was requested.
    pub stopping: bool,
    /// When the worker became READY.
    pub started: Option<prost_types::Timestamp>,
    /// Symbols the worker trades, by name.
    pub symbols: HashMap<String, t::SymbolInfo>,
    /// Symbol names in the worker's order.
    pub symbol_order: Vec<String>,
    /// Latest tick per symbol.
    pub last_ticks: HashMap<String, t::Tick>,
    /// Latest account snapshot.
    pub account: Option<t::AccountSnapshot>,
    /// Open positions.
    pub positions: Vec<t::Position>,
    /// Frames to the worker.
    pub tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Orders in flight, by request id (= token).
    pub pending: HashMap<u64, PendingOrder>,
    /// Tokens completed when READY (or failed).
    pub ready_waiters: Vec<u64>,
    /// Tokens completed when the worker is gone.
    pub stop_waiters: Vec<u64>,
    /// Last heartbeat from the worker.
    pub last_heartbeat: Option<Instant>,
}

/// An instance: its spec and its live state.
#[derive(Debug)]
pub struct Instance {
    /// How it was created.
    pub spec: InstanceSpec,
    /// Creation time.
    pub created: prost_types::Timestamp,
    /// Live state.
    pub live: Mutex<Live>,
    exec_seq: AtomicU64,
}

impl Instance {
    /// A new, not yet started instance.
    pub fn new(spec: InstanceSpec) -> Self {
        Self {
            spec,
            created: convert::now(),
            live: Mutex::new(Live {
                state: v1::InstanceState::Pending,
                reason: String::new(),
                pid: 0,
                running: false,
                stopping: false,
                started: None,
                symbols: HashMap::new(),
                symbol_order: Vec::new(),
                last_ticks: HashMap::new(),
                account: None,
                positions: Vec::new(),
                tx: None,
                pending: HashMap::new(),
                ready_waiters: Vec::new(),
                stop_waiters: Vec::new(),
                last_heartbeat: None,
            }),
            exec_seq: AtomicU64::new(0),
        }
    }

    /// The public view.
    pub fn to_pb(&self, live: &Live) -> v1::Instance {
        v1::Instance {
            instance_id: self.spec.instance_id.clone(),
            owner: self.spec.owner.clone(),
            backend: self.spec.backend as i32,
            state: live.state as i32,
            state_reason: live.reason.clone(),
            config: Some(self.spec.config.clone()),
            worker_pid: live.pid,
            restarts: 0,
            created_time: Some(self.created),
            started_time: live.started,
            symbols: live
                .symbol_order
                .iter()
                .filter_map(|s| live.symbols.get(s))
                .map(convert::symbol)
                .collect(),
            trading_state: v1::TradingState::Active as i32,
        }
    }

    fn next_sequence(&self) -> u64 {
        self.exec_seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Changes the state and publishes an instance event.
pub fn set_state(
    shared: &Shared,
    instance: &Instance,
    live: &mut Live,
    state: v1::InstanceState,
    reason: &str,
) {
    let previous = live.state;
    live.state = state;
    reason.clone_into(&mut live.reason);
    let event = v1::InstanceEvent {
        instance_id: instance.spec.instance_id.clone(),
        state: state as i32,
        previous_state: previous as i32,
        reason: reason.to_owned(),
        time: Some(convert::now()),
    };
    shared.hub.publish(
        Topic::InstanceEvents,
        &instance.spec.instance_id,
        &[("", piece(&event))],
        &shared.notifier,
    );
}

fn start_error(reason: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::new(Code::Unavailable, reason, message)
}

/// Runs an instance's worker from spawn to exit.
pub async fn run(shared: Arc<Shared>, instance: Arc<Instance>) {
    let outcome = run_worker(&shared, &instance).await;
    let mut live = instance.live.lock();
    live.running = false;
    live.tx = None;
    live.pid = 0;
    let lost = EngineError::new(
        Code::Unavailable,
        "WORKER_LOST",
        "the worker stopped before answering; the order's outcome is UNKNOWN until reconciled",
    );
    for (token, mut pending) in live.pending.drain() {
        pending.order.status = v1::OrderStatus::Unknown as i32;
        let payload = v1::PlaceOrderResponse {
            order: Some(pending.order),
        }
        .encode_to_vec();
        shared
            .notifier
            .complete(Completion::err(token, &lost, payload));
    }
    let (state, reason) = match (&outcome, live.stopping) {
        (_, true) => (v1::InstanceState::Stopped, "STOPPED".to_owned()),
        (Ok(()), false) => (v1::InstanceState::Failed, "WORKER_EXITED".to_owned()),
        (Err(e), false) => (v1::InstanceState::Failed, e.reason.to_owned()),
    };
    set_state(&shared, &instance, &mut live, state, &reason);
    let payload = instance.to_pb(&live).encode_to_vec();
    let failure = match outcome {
        Err(e) => e,
        Ok(()) => start_error("WORKER_EXITED", "the worker exited before it was READY"),
    };
    for token in live.ready_waiters.drain(..) {
        shared
            .notifier
            .complete(Completion::err(token, &failure, payload.clone()));
    }
    for token in live.stop_waiters.drain(..) {
        shared
            .notifier
            .complete(Completion::ok(token, payload.clone()));
    }
    drop(live);
    let gone = EngineError::new(
        Code::Unavailable,
        "INSTANCE_STOPPED",
        format!("instance '{}' stopped", instance.spec.instance_id),
    );
    shared
        .hub
        .close_matching(&instance.spec.instance_id, &gone, &shared.notifier);
}

async fn run_worker(shared: &Arc<Shared>, instance: &Arc<Instance>) -> Result<(), EngineError> {
    let spec = &instance.spec;
    let logs = spec.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| {
        start_error(
            "INSTANCE_DIR",
            format!("cannot create {}: {e}", logs.display()),
        )
    })?;
    let socket = spec.dir.join("worker.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| {
        start_error(
            "WORKER_SOCKET",
            format!("cannot listen on {}: {e}", socket.display()),
        )
    })?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("worker.log"))
        .map_err(|e| start_error("INSTANCE_DIR", format!("cannot open the worker log: {e}")))?;
    let log_err = log
        .try_clone()
        .map_err(|e| start_error("INSTANCE_DIR", e.to_string()))?;
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(start_error("WORKER_COMMAND", "empty worker command"));
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
        set_state(
            shared,
            instance,
            &mut live,
            v1::InstanceState::Starting,
            "SPAWNING",
        );
    }
    let mut child = command
        .spawn()
        .map_err(|e| start_error("WORKER_SPAWN", format!("cannot start {program}: {e}")))?;
    let pid = child.id().unwrap_or(0);
    {
        let mut live = instance.live.lock();
        live.pid = pid;
        live.running = true;
        set_state(
            shared,
            instance,
            &mut live,
            v1::InstanceState::Connecting,
            "HANDSHAKE",
        );
    }
    let result = serve(shared, instance, &listener, &mut child).await;
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    // The worker exits on EOF; make sure it and anything it started are gone.
    if tokio::time::timeout(shared.config.kill_grace, child.wait())
        .await
        .is_err()
    {
        signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    signal_group(pid, Signal::SIGKILL);
    result
}

/// Sends a signal to a worker's process group; a group already gone is fine.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            let _ = killpg(Pid::from_raw(pid), signal);
        }
    }
}

async fn serve(
    shared: &Arc<Shared>,
    instance: &Arc<Instance>,
    listener: &UnixListener,
    child: &mut tokio::process::Child,
) -> Result<(), EngineError> {
    let timeout = shared.config.start_timeout;
    let stream = tokio::select! {
        accepted = tokio::time::timeout(timeout, listener.accept()) => match accepted {
            Ok(Ok((stream, _))) => stream,
            Ok(Err(e)) => return Err(start_error("WORKER_SOCKET", e.to_string())),
            Err(_) => return Err(start_error("WORKER_START_TIMEOUT",
                format!("the worker did not connect within {timeout:?}"))),
        },
        status = child.wait() => return Err(start_error("WORKER_EXITED",
            format!("the worker exited before connecting: {}", describe(status)))),
    };
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::new();
    let hello = match tokio::time::timeout(timeout, frame::read_into(&mut reader, &mut buf)).await {
        Ok(Ok(true)) => match t::WorkerFrame::decode(&buf[..]) {
            Ok(t::WorkerFrame {
                body: Some(Body::Hello(hello)),
            }) => hello,
            _ => {
                return Err(start_error(
                    "PROTOCOL_ERROR",
                    "the first frame was not a Hello",
                ))
            }
        },
        Ok(Ok(false)) => {
            return Err(start_error(
                "WORKER_EXITED",
                "the worker closed the connection",
            ))
        }
        Ok(Err(e)) => return Err(start_error("PROTOCOL_ERROR", e.to_string())),
        Err(_) => {
            return Err(start_error(
                "WORKER_START_TIMEOUT",
                "no Hello from the worker",
            ))
        }
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(start_error(
            "PROTOCOL_MISMATCH",
            format!(
                "the worker speaks protocol {}, the engine {PROTOCOL_VERSION}",
                hello.protocol_version
            ),
        ));
    }
    let welcome = frame::encode(&t::EngineFrame {
        body: Some(t::engine_frame::Body::Welcome(t::Welcome {
            protocol_version: PROTOCOL_VERSION,
            heartbeat_interval_ms: shared.config.heartbeat_interval_ms,
        })),
    });
    writer
        .write_all(&welcome)
        .await
        .map_err(|e| start_error("WORKER_EXITED", e.to_string()))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Coalesce what is queued into one write.
            let mut out = first;
            while let Ok(more) = rx.try_recv() {
                out.extend_from_slice(&more);
            }
            if writer.write_all(&out).await.is_err() {
                break;
            }
        }
    });
    {
        let mut live = instance.live.lock();
        for s in hello.symbols {
            live.symbol_order.push(s.name.clone());
            live.symbols.insert(s.name.clone(), s);
        }
        live.account = hello.account;
        live.last_heartbeat = Some(Instant::now());
        live.started = Some(convert::now());
        let stopping = live.stopping;
        live.tx = Some(tx.clone());
        if stopping {
            // Stop was asked for during start-up: deliver the shutdown now.
            let shutdown = t::EngineFrame {
                body: Some(t::engine_frame::Body::Shutdown(t::Shutdown {
                    reason: "stop requested".into(),
                })),
            };
            let _ = tx.send(frame::encode(&shutdown));
        } else {
            set_state(shared, instance, &mut live, v1::InstanceState::Ready, "");
            let payload = instance.to_pb(&live).encode_to_vec();
            for token in live.ready_waiters.drain(..) {
                shared
                    .notifier
                    .complete(Completion::ok(token, payload.clone()));
            }
        }
    }
    drop(tx);
    loop {
        tokio::select! {
            read = frame::read_into(&mut reader, &mut buf) => match read {
                Ok(true) => match t::WorkerFrame::decode(&buf[..]) {
                    Ok(frame) => handle(shared, instance, frame),
                    Err(e) => return Err(start_error("PROTOCOL_ERROR", e.to_string())),
                },
                Ok(false) => return Ok(()),
                Err(e) => return Err(start_error("PROTOCOL_ERROR", e.to_string())),
            },
            status = child.wait() => {
                let _ = status;
                return Ok(());
            }
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

/// After `grace`, SIGTERM the worker's group; after `kill_grace`, SIGKILL it.
pub async fn escalate_stop(shared: Arc<Shared>, instance: Arc<Instance>, grace: Duration) {
    for (wait, signal) in [
        (grace, Signal::SIGTERM),
        (shared.config.kill_grace, Signal::SIGKILL),
    ] {
        tokio::time::sleep(wait).await;
        let live = instance.live.lock();
        if !live.running {
            return;
        }
        signal_group(live.pid, signal);
    }
}

fn handle(shared: &Shared, instance: &Instance, frame: t::WorkerFrame) {
    let id = instance.spec.instance_id.as_str();
    match frame.body {
        Some(Body::Ticks(batch)) => {
            let received = convert::now();
            let mut items: Vec<(String, Bytes)> = Vec::with_capacity(batch.ticks.len());
            {
                let mut live = instance.live.lock();
                for tick in batch.ticks {
                    items.push((
                        tick.symbol.clone(),
                        piece(&convert::tick(id, &tick, received)),
                    ));
                    if let Some(last) = live.last_ticks.get_mut(&tick.symbol) {
                        *last = tick;
                    } else {
                        live.last_ticks.insert(tick.symbol.clone(), tick);
                    }
                }
            }
            let refs: Vec<(&str, Bytes)> =
                items.iter().map(|(s, b)| (s.as_str(), b.clone())).collect();
            shared
                .hub
                .publish(Topic::Ticks, id, &refs, &shared.notifier);
        }
        Some(Body::Heartbeat(_)) => {
            instance.live.lock().last_heartbeat = Some(Instant::now());
        }
        Some(Body::Deal(deal)) => {
            let live = instance.live.lock();
            let (client_order_id, reference, point) = live
                .pending
                .get(&deal.request_id)
                .map(|p| (p.order.client_order_id.clone(), p.reference_price, p.point))
                .unwrap_or_default();
            let fill = convert::fill(id, &deal, &client_order_id, reference, point);
            publish_execution(shared, instance, v1::execution_event::Event::Fill(fill));
            drop(live);
        }
        Some(Body::Account(account)) => {
            let update = v1::Account {
                ..convert::account(id, &account)
            };
            instance.live.lock().account = Some(account);
            shared.hub.publish(
                Topic::Accounts,
                id,
                &[("", piece(&update))],
                &shared.notifier,
            );
        }
        Some(Body::Positions(snapshot)) => {
            instance.live.lock().positions = snapshot.positions;
        }
        Some(Body::OrderResult(result)) => {
            let pending = instance.live.lock().pending.remove(&result.request_id);
            if let Some(pending) = pending {
                finish_order(shared, instance, pending, &result);
            }
        }
        Some(Body::Event(_)) | Some(Body::Hello(_)) | None => {}
    }
}

fn publish_execution(shared: &Shared, instance: &Instance, event: v1::execution_event::Event) {
    let event = v1::ExecutionEvent {
        instance_id: instance.spec.instance_id.clone(),
        sequence: instance.next_sequence(),
        time: Some(convert::now()),
        event: Some(event),
    };
    shared.hub.publish(
        Topic::Executions,
        &instance.spec.instance_id,
        &[("", piece(&event))],
        &shared.notifier,
    );
}

fn finish_order(
    shared: &Shared,
    instance: &Instance,
    pending: PendingOrder,
    result: &t::OrderResult,
) {
    let rc = retcode::lookup(result.retcode);
    let mut order = pending.order;
    order.status = rc.status as i32;
    order.order_id = result.order;
    order.retcode = result.retcode;
    order.status_message = result.comment.clone();
    order.position_id = result.position;
    order.updated_time = Some(convert::ts_msc(result.time_msc));
    if matches!(
        rc.status,
        v1::OrderStatus::Filled | v1::OrderStatus::PartiallyFilled
    ) {
        order.filled_volume = result.volume;
        order.average_fill_price = result.price;
    }
    publish_execution(
        shared,
        instance,
        v1::execution_event::Event::OrderUpdate(order.clone()),
    );
    let token = result.request_id;
    let payload = v1::PlaceOrderResponse { order: Some(order) }.encode_to_vec();
    let completion = if rc.code == Code::Ok {
        Completion::ok(token, payload)
    } else {
        let error = EngineError::new(
            rc.code,
            rc.name,
            format!(
                "the terminal answered TRADE_RETCODE_{} ({}){}",
                rc.name,
                result.retcode,
                if result.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", result.comment)
                }
            ),
        );
        Completion::err(token, &error, payload)
    };
    shared.notifier.complete(completion);
}
