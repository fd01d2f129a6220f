//! The frame pipeline: frames → tiles → inference → blend → frames, over
//! bounded channels, with results handed out in submission order.
//!
//! ```text
//! submit ─▶ prepare ─▶ N inference workers ─▶ stitch ─▶ recv
//!  (slot)   (colour,      (one Engine each)     (blend,    (slot freed)
//!            tiles)                              colour)
//! ```
//!
//! A frame holds one of `max_frames_in_flight` slots from `submit` until the
//! consumer receives it, which bounds memory and gives backpressure; the slot
//! frees itself wherever its frame is dropped. Markers (the caller's
//! serialized events) take the same path without tiles, so they come out in
//! order with the frames. `flush` starts a new epoch: everything from before
//! it is dropped wherever it is, and its slots are freed.
//!
//! With a temporal stage ([`crate::temporal`]), the stitcher stabilises each
//! whole frame in order, just before it leaves; a flush, a failed frame, a
//! size change or [`FramePipeline::submit_restart`] starts its memory anew.
//!
//! Each stage runs under `catch_unwind`: a stage that panics records why,
//! wakes every submitter and ends the output, so callers get an error from
//! `submit` and `recv_timeout` instead of a silent stall.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, RecvTimeoutError, Sender};

use crate::color::{frame_to_rgb, rgb_to_frame};
use crate::engine::Engine;
use crate::frame::try_zeroed;
use crate::frame::{Colorimetry, Frame, PixelFormat, RgbImage};
use crate::temporal::{Stabilizer, TemporalConfig};
use crate::tiling::{Batch, TileGeometry, TileIndex, TilePlan};
use crate::{Error, Result};

/// How the pipeline runs; the engines decide how many inference workers.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub geometry: TileGeometry,
    pub max_frames_in_flight: usize,
    /// Tiles per inference run (see [`Engine::batch`]).
    pub batch: Batch,
    /// The temporal stage after stitching; `None` leaves frames as the model made them.
    pub temporal: Option<TemporalConfig>,
}

/// What comes out of the pipeline, in submission order: `F` travels with a
/// frame, `K` is a marker.
#[derive(Debug)]
pub enum Output<F, K> {
    Frame {
        frame: Frame,
        meta: F,
        latency: Duration,
    },
    Marker(K),
    /// Inference failed for a frame; the frame is lost.
    Failed {
        meta: F,
        error: Error,
    },
}

/// One of the pipeline's `max_frames_in_flight` places; it frees itself
/// when dropped, wherever its frame or marker ends.
struct Slot(Receiver<()>);

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

/// Counts a frame as in the model until its output is handed out (or it
/// is dropped by a flush): what admission control needs, since frames
/// waiting downstream of the pipeline are not the model's backlog.
struct InModel(Arc<AtomicUsize>);

impl InModel {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InModel(count.clone())
    }
}

impl Drop for InModel {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Ticket {
    seq: u64,
    epoch: u64,
    /// The first sequence number of this epoch, where ordering restarts.
    epoch_start: u64,
    submitted: Instant,
    slot: Slot,
    /// Set for frames, not markers.
    in_model: Option<InModel>,
    /// The frame follows a gap: the temporal stage forgets what came before.
    restart: bool,
    /// The frame's number in its stream, for the temporal stage; None
    /// numbers it after the one before.
    number: Option<u64>,
}

enum Job<F, K> {
    Frame(Ticket, Frame, F),
    Marker(Ticket, K),
}

struct TileJob {
    seq: u64,
    epoch: u64,
    tiles: Vec<TileIndex>,
    size: (usize, usize),
    run_size: usize,
    data: Vec<f32>,
}

/// What an inference worker takes.
enum WorkItem {
    Tiles(TileJob),
    /// One run of `batch` grey tiles of `size`, timed, answered on `reply`.
    Time {
        size: (usize, usize),
        batch: usize,
        reply: Sender<Result<Duration>>,
    },
}

enum StitchMsg<F, K> {
    Begin {
        ticket: Ticket,
        work: Work<F, K>,
    },
    Done {
        seq: u64,
        epoch: u64,
        tiles: Vec<TileIndex>,
        data: Result<Vec<f32>>,
    },
    /// Sent by `flush` so that the stitcher notices the new epoch at once.
    Wake,
    /// Another stage died: stop, so that the consumer sees the end.
    Abort,
}

enum Work<F, K> {
    Marker(K),
    Tiles(FrameWork, F),
    Failed(Error, F),
}

/// What the stitcher needs to turn a frame's tiles back into a frame.
struct FrameWork {
    plan: Arc<TilePlan>,
    format: PixelFormat,
    colorimetry: Colorimetry,
    /// The input as the model saw it, for the temporal stage.
    input: Option<RgbImage>,
}

struct Counter {
    epoch: u64,
    next_seq: u64,
    epoch_start: u64,
}

/// Why the pipeline stopped, shared by its stages: the first failure wins,
/// and it wakes every submitter.
struct Shutdown {
    failure: OnceLock<Error>,
    cancel: Mutex<Option<Sender<()>>>,
    /// Signalled once `failure` is set.
    failed: Condvar,
}

impl Shutdown {
    fn fail(&self, error: Error) {
        let _ = self.failure.set(error);
        self.cancel.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.failed.notify_all();
    }

    /// The error for a caller whose channel to a stage closed under it: a
    /// stage's channels close while it unwinds, just before its failure is
    /// recorded, so wait a moment for the reason.
    fn died(&self) -> Error {
        let guard = self.cancel.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .failed
            .wait_timeout_while(guard, Duration::from_secs(1), |_| {
                self.failure.get().is_none()
            });
        self.error()
    }

    /// The error for a caller that found the pipeline closed.
    fn error(&self) -> Error {
        match self.failure.get() {
            Some(Error::StageFailed { stage, reason }) => Error::StageFailed {
                stage,
                reason: reason.clone(),
            },
            _ => Error::PipelineClosed,
        }
    }
}

/// A running pipeline; dropping it stops and joins its threads.
pub struct FramePipeline<F: Send + 'static, K: Send + 'static> {
    input: Option<Sender<Job<F, K>>>,
    /// For timing runs; the prepare thread holds the other sender.
    work: Option<Sender<WorkItem>>,
    stitch_wake: Option<Sender<StitchMsg<F, K>>>,
    output: Receiver<(u64, Output<F, K>, Slot)>,
    slots: (Sender<()>, Receiver<()>),
    shutdown: Arc<Shutdown>,
    cancelled: Receiver<()>,
    counter: Mutex<Counter>,
    epoch: Arc<AtomicU64>,
    in_model: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

/// Marks where a test may make a stage panic (feature `test-hooks`, with
/// `GENDR_TEST_PANIC_STAGE` naming the stage).
#[cfg(feature = "test-hooks")]
fn fault_point(stage: &str) {
    if std::env::var("GENDR_TEST_PANIC_STAGE").is_ok_and(|s| s == stage) {
        panic!("fault injected in the {stage} stage");
    }
}

#[cfg(not(feature = "test-hooks"))]
fn fault_point(_stage: &str) {}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

impl<F: Send + 'static, K: Send + 'static> FramePipeline<F, K> {
    /// Starts one inference worker per engine.
    pub fn start(config: PipelineConfig, engines: Vec<Engine>) -> Result<Self> {
        if engines.is_empty() {
            return Err(Error::InvalidSetting(
                "at least one inference worker is needed".into(),
            ));
        }
        let in_flight = config.max_frames_in_flight.max(1);
        let (input_tx, input_rx) = bounded::<Job<F, K>>(in_flight);
        let (work_tx, work_rx) = bounded::<WorkItem>(2 * engines.len());
        let (stitch_tx, stitch_rx) = unbounded::<StitchMsg<F, K>>();
        let (output_tx, output_rx) = unbounded();
        let slots = bounded::<()>(in_flight);
        let (cancel_tx, cancel_rx) = bounded::<()>(0);
        let epoch = Arc::new(AtomicU64::new(0));
        let shutdown = Arc::new(Shutdown {
            failure: OnceLock::new(),
            cancel: Mutex::new(Some(cancel_tx)),
            failed: Condvar::new(),
        });
        let mut threads = Vec::new();

        // Runs a stage; if it panics, records why, wakes the submitters and
        // has the stitcher end the output. The stitcher itself holds no
        // sender to itself, or its input would never close.
        let spawn = |name: String, stage: &'static str, f: Box<dyn FnOnce() + Send>| {
            let shutdown = shutdown.clone();
            let abort = (stage != "stitch").then(|| stitch_tx.clone());
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                        let reason = panic_text(payload.as_ref());
                        tracing::error!(stage, %reason, "frame pipeline stage panicked");
                        shutdown.fail(Error::StageFailed { stage, reason });
                        if let Some(abort) = abort {
                            let _ = abort.send(StitchMsg::Abort);
                        }
                    }
                })
                .map_err(Error::Io)
        };
        {
            let (stitch_tx, epoch) = (stitch_tx.clone(), epoch.clone());
            let (config, work_tx) = (config.clone(), work_tx.clone());
            threads.push(spawn(
                "gendr-prepare".into(),
                "prepare",
                Box::new(move || prepare(config, input_rx, work_tx, stitch_tx, epoch)),
            )?);
        }
        for (i, engine) in engines.into_iter().enumerate() {
            let (work_rx, stitch_tx, epoch) = (work_rx.clone(), stitch_tx.clone(), epoch.clone());
            threads.push(spawn(
                format!("gendr-infer-{i}"),
                "inference",
                Box::new(move || infer(engine, work_rx, stitch_tx, epoch)),
            )?);
        }
        {
            let (epoch, temporal) = (epoch.clone(), config.temporal.map(Stabilizer::new));
            threads.push(spawn(
                "gendr-stitch".into(),
                "stitch",
                Box::new(move || stitch(stitch_rx, output_tx, epoch, temporal)),
            )?);
        }
        Ok(FramePipeline {
            input: Some(input_tx),
            work: Some(work_tx),
            stitch_wake: Some(stitch_tx),
            output: output_rx,
            slots,
            shutdown,
            cancelled: cancel_rx,
            counter: Mutex::new(Counter {
                epoch: 0,
                next_seq: 0,
                epoch_start: 0,
            }),
            epoch,
            in_model: Arc::new(AtomicUsize::new(0)),
            threads,
        })
    }

    /// Takes a slot, waiting while `max_frames_in_flight` are in flight.
    /// Fails if the pipeline is closed or failed, or flushed while waiting.
    fn ticket(&self) -> Result<Ticket> {
        if self.shutdown.failure.get().is_some() {
            return Err(self.shutdown.error());
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        select! {
            send(self.slots.0, ()) -> r => r.map_err(|_| self.shutdown.error())?,
            recv(self.cancelled) -> _ => return Err(self.shutdown.error()),
        }
        let slot = Slot(self.slots.1.clone());
        let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        if c.epoch != epoch {
            return Err(Error::PipelineClosed);
        }
        let seq = c.next_seq;
        c.next_seq += 1;
        Ok(Ticket {
            seq,
            epoch,
            epoch_start: c.epoch_start,
            submitted: Instant::now(),
            slot,
            in_model: None,
            restart: false,
            number: None,
        })
    }

    fn send(&self, job: Job<F, K>) -> Result<()> {
        self.input
            .as_ref()
            .ok_or(Error::PipelineClosed)?
            .send(job)
            .map_err(|_| self.shutdown.error())
    }

    /// Queues a frame; blocks while the pipeline is full.
    pub fn submit(&self, frame: Frame, meta: F) -> Result<()> {
        self.submit_frame(frame, meta, None, false)
    }

    /// Queues a frame that follows a discontinuity (a gap, a lost frame):
    /// the temporal stage starts afresh from it.
    pub fn submit_restart(&self, frame: Frame, meta: F) -> Result<()> {
        self.submit_frame(frame, meta, None, true)
    }

    /// Queues a frame with its number in the stream (its timestamp in frame
    /// durations), which the temporal stage places its anchors by, so that
    /// a run started anywhere in the stream gives each frame what a run
    /// from its start gives it; `restart` as [`FramePipeline::submit_restart`].
    pub fn submit_numbered(&self, frame: Frame, meta: F, number: u64, restart: bool) -> Result<()> {
        self.submit_frame(frame, meta, Some(number), restart)
    }

    fn submit_frame(
        &self,
        frame: Frame,
        meta: F,
        number: Option<u64>,
        restart: bool,
    ) -> Result<()> {
        let mut ticket = self.ticket()?;
        ticket.in_model = Some(InModel::new(&self.in_model));
        ticket.restart = restart;
        ticket.number = number;
        self.send(Job::Frame(ticket, frame, meta))
    }

    /// Queues a marker that comes out after every frame submitted before it.
    pub fn submit_marker(&self, meta: K) -> Result<()> {
        let ticket = self.ticket()?;
        self.send(Job::Marker(ticket, meta))
    }

    /// Waits up to `timeout` for the next output in order: `Ok(None)` when
    /// none came in time, an error when the pipeline has ended (a stage
    /// failed, or it was dropped), so that a caller never spins on it.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Output<F, K>>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.output.recv_deadline(deadline) {
                Ok((epoch, out, _slot)) => {
                    if epoch == self.epoch.load(Ordering::SeqCst) {
                        return Ok(Some(out));
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => return Err(self.shutdown.died()),
            }
        }
    }

    /// The failure that ended the pipeline, if a stage died.
    pub fn failure(&self) -> Option<Error> {
        self.shutdown
            .failure
            .get()
            .is_some()
            .then(|| self.shutdown.error())
    }

    /// Drops everything in flight. Submissions after this are kept.
    pub fn flush(&self) {
        {
            let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
            c.epoch += 1;
            c.epoch_start = c.next_seq;
            self.epoch.store(c.epoch, Ordering::SeqCst);
        }
        if let Some(wake) = &self.stitch_wake {
            let _ = wake.send(StitchMsg::Wake);
        }
        while self.output.try_recv().is_ok() {}
    }

    /// Wakes every submitter with an error; nothing more is accepted.
    pub fn close(&self) {
        self.shutdown
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Times one inference run of `batch` tiles of `size` (width, height) on
    /// a worker, after the tiles queued before it. Besides the figure, this
    /// readies that worker's session for the size.
    pub fn time_run(&self, size: (usize, usize), batch: usize) -> Result<Duration> {
        let (reply, answer) = bounded(1);
        self.work
            .as_ref()
            .ok_or(Error::PipelineClosed)?
            .send(WorkItem::Time { size, batch, reply })
            .map_err(|_| self.shutdown.error())?;
        answer.recv().map_err(|_| self.shutdown.died())?
    }

    /// Frames submitted and not yet out of the stitcher: the model's
    /// backlog, not counting what waits for the consumer.
    pub fn frames_in_model(&self) -> usize {
        self.in_model.load(Ordering::SeqCst)
    }

    /// Frames and markers submitted but not yet received.
    pub fn in_flight(&self) -> usize {
        self.slots.0.len()
    }
}

impl<F: Send + 'static, K: Send + 'static> Drop for FramePipeline<F, K> {
    fn drop(&mut self) {
        self.close();
        self.flush();
        self.input.take();
        self.work.take();
        self.stitch_wake.take();
        for t in self.threads.drain(..) {
            // A stage's panic was caught and recorded where it happened.
            let _ = t.join();
        }
    }
}

fn prepare<F, K>(
    config: PipelineConfig,
    input: Receiver<Job<F, K>>,
    work: Sender<WorkItem>,
    stitch: Sender<StitchMsg<F, K>>,
    epoch: Arc<AtomicU64>,
) {
    let mut plans: Option<Arc<TilePlan>> = None;
    for job in input {
        fault_point("prepare");
        let (ticket, frame, meta) = match job {
            Job::Marker(ticket, meta) => {
                let begin = StitchMsg::Begin {
                    ticket,
                    work: Work::Marker(meta),
                };
                if stitch.send(begin).is_err() {
                    return;
                }
                continue;
            }
            Job::Frame(ticket, frame, meta) => (ticket, frame, meta),
        };
        if ticket.epoch != epoch.load(Ordering::SeqCst) {
            continue;
        }
        let plan = match &plans {
            Some(p) if (p.width, p.height) == (frame.width, frame.height) => Ok(p.clone()),
            _ => config
                .geometry
                .plan(frame.width, frame.height)
                .map(|p| plans.insert(Arc::new(p)).clone()),
        };
        let prepared = plan.and_then(|plan| {
            let rgb = frame_to_rgb(&frame);
            let runs = plan
                .batches(config.batch)
                .into_iter()
                .map(|run| Ok((plan.extract_batch(&rgb, &run)?, run)))
                .collect::<Result<Vec<_>>>()?;
            Ok((plan, runs, rgb))
        });
        let (seq, frame_epoch) = (ticket.seq, ticket.epoch);
        let (plan, runs, rgb) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let begin = StitchMsg::Begin {
                    ticket,
                    work: Work::Failed(error, meta),
                };
                if stitch.send(begin).is_err() {
                    return;
                }
                continue;
            }
        };
        let begin = StitchMsg::Begin {
            ticket,
            work: Work::Tiles(
                FrameWork {
                    plan: plan.clone(),
                    format: frame.format,
                    colorimetry: frame.colorimetry,
                    input: config.temporal.is_some().then_some(rgb),
                },
                meta,
            ),
        };
        if stitch.send(begin).is_err() {
            return;
        }
        for (data, run) in runs {
            let job = TileJob {
                seq,
                epoch: frame_epoch,
                tiles: run.tiles,
                size: plan.tile_size(),
                run_size: run.run_size,
                data,
            };
            if work.send(WorkItem::Tiles(job)).is_err() {
                return;
            }
        }
    }
}

fn infer<F, K>(
    mut engine: Engine,
    work: Receiver<WorkItem>,
    stitch: Sender<StitchMsg<F, K>>,
    epoch: Arc<AtomicU64>,
) {
    for item in work {
        fault_point("inference");
        let job = match item {
            WorkItem::Tiles(job) => job,
            WorkItem::Time {
                size: (w, h),
                batch,
                reply,
            } => {
                let started = Instant::now();
                let ran = try_zeroed(batch * 3 * w * h).and_then(|mut input| {
                    input.fill(0.5);
                    engine.run(&input, batch, h, w)
                });
                let _ = reply.send(ran.map(|_| started.elapsed()));
                continue;
            }
        };
        let data = if job.epoch != epoch.load(Ordering::SeqCst) {
            Ok(Vec::new())
        } else {
            let (w, h) = job.size;
            let _span =
                tracing::trace_span!("infer", seq = job.seq, tiles = job.tiles.len()).entered();
            engine.run(&job.data, job.run_size, h, w)
        };
        let done = StitchMsg::Done {
            seq: job.seq,
            epoch: job.epoch,
            tiles: job.tiles,
            data,
        };
        if stitch.send(done).is_err() {
            return;
        }
    }
}

struct Pending<F, K> {
    ticket: Ticket,
    state: PendingState<F, K>,
}

enum PendingState<F, K> {
    Tiles {
        work: FrameWork,
        meta: F,
        accum: RgbImage,
        remaining: usize,
    },
    Ready(Frame, F),
    /// Stitched, waiting for the temporal stage, which takes frames in order.
    Stitched(RgbImage, FrameWork, F),
    Marker(K),
    Failed(Error, F),
}

fn stitch<F, K>(
    messages: Receiver<StitchMsg<F, K>>,
    output: Sender<(u64, Output<F, K>, Slot)>,
    epoch: Arc<AtomicU64>,
    mut temporal: Option<Stabilizer>,
) {
    let mut current = 0u64;
    let mut next_seq = 0u64;
    let mut pending: BTreeMap<u64, Pending<F, K>> = BTreeMap::new();
    for msg in messages {
        fault_point("stitch");
        let now = epoch.load(Ordering::SeqCst);
        if now != current {
            // A flush: whatever is pending belongs to the past (and frees its slot).
            pending.clear();
            if let Some(stage) = &mut temporal {
                stage.reset();
            }
            current = now;
            next_seq = u64::MAX;
        }
        match msg {
            StitchMsg::Wake => continue,
            StitchMsg::Abort => return,
            StitchMsg::Begin { ticket, work } => {
                if ticket.epoch != current {
                    continue;
                }
                if next_seq == u64::MAX {
                    next_seq = ticket.epoch_start;
                }
                let state = match work {
                    Work::Marker(meta) => PendingState::Marker(meta),
                    Work::Failed(error, meta) => PendingState::Failed(error, meta),
                    Work::Tiles(work, meta) => {
                        let (s, remaining) = (work.plan.scale, work.plan.len());
                        match RgbImage::try_new(work.plan.width * s, work.plan.height * s) {
                            Ok(accum) => PendingState::Tiles {
                                work,
                                meta,
                                accum,
                                remaining,
                            },
                            Err(error) => PendingState::Failed(error, meta),
                        }
                    }
                };
                pending.insert(ticket.seq, Pending { ticket, state });
            }
            StitchMsg::Done {
                seq,
                epoch: e,
                tiles,
                data,
            } => {
                if e != current {
                    continue;
                }
                let Some(mut p) = pending.remove(&seq) else {
                    continue;
                };
                p.state = match (p.state, data) {
                    (
                        PendingState::Tiles {
                            work,
                            meta,
                            mut accum,
                            remaining,
                        },
                        Ok(data),
                    ) => {
                        work.plan.accumulate_batch(&mut accum, &tiles, &data);
                        let remaining = remaining - tiles.len();
                        if remaining > 0 {
                            PendingState::Tiles {
                                work,
                                meta,
                                accum,
                                remaining,
                            }
                        } else if temporal.is_some() {
                            PendingState::Stitched(accum, work, meta)
                        } else {
                            match rgb_to_frame(&accum, work.format, work.colorimetry) {
                                Ok(frame) => PendingState::Ready(frame, meta),
                                Err(error) => PendingState::Failed(error, meta),
                            }
                        }
                    }
                    (PendingState::Tiles { meta, .. }, Err(error)) => {
                        PendingState::Failed(error, meta)
                    }
                    // Already failed: its other tiles change nothing.
                    (state, _) => state,
                };
                pending.insert(seq, p);
            }
        }
        // Hand out everything that is complete, in order.
        while let Some(entry) = pending.first_entry() {
            if *entry.key() != next_seq || matches!(entry.get().state, PendingState::Tiles { .. }) {
                break;
            }
            let Pending { ticket, state } = entry.remove();
            next_seq += 1;
            drop(ticket.in_model);
            let state = match (state, &mut temporal) {
                (PendingState::Stitched(accum, work, meta), Some(stage)) => {
                    if ticket.restart {
                        stage.reset();
                    }
                    let input = work.input.expect("prepared with the temporal stage on");
                    let steady = match ticket.number {
                        Some(number) => stage.process_numbered(number, &input, accum),
                        None => stage.process(&input, accum),
                    };
                    match rgb_to_frame(&steady, work.format, work.colorimetry) {
                        Ok(frame) => PendingState::Ready(frame, meta),
                        Err(error) => PendingState::Failed(error, meta),
                    }
                }
                (state @ PendingState::Failed(..), Some(stage)) => {
                    // The lost frame breaks the chain of motion.
                    stage.reset();
                    state
                }
                (state, _) => state,
            };
            let out = match state {
                PendingState::Ready(frame, meta) => Output::Frame {
                    frame,
                    meta,
                    latency: ticket.submitted.elapsed(),
                },
                PendingState::Marker(meta) => Output::Marker(meta),
                PendingState::Failed(error, meta) => Output::Failed { meta, error },
                PendingState::Tiles { .. } | PendingState::Stitched(..) => {
                    unreachable!("checked above; stitched frames pass the temporal stage")
                }
            };
            if output.send((current, out, ticket.slot)).is_err() {
                return;
            }
        }
    }
}
