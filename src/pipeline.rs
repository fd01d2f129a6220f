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
//! consumer receives it, which bounds memory and gives backpressure. Markers
//! (the caller's serialized events) take the same path without tiles, so they
//! come out in order with the frames. `flush` starts a new epoch: everything
//! from before it is dropped wherever it is, and its slots are freed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};

use crate::color::{frame_to_rgb, rgb_to_frame};
use crate::engine::{Batch, Engine};
use crate::frame::{Frame, RgbImage};
use crate::tiling::{TileGeometry, TileIndex, TilePlan};
use crate::{Error, Result};

/// How the pipeline runs; the engines decide how many inference workers.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub geometry: TileGeometry,
    pub max_frames_in_flight: usize,
    /// Tiles per inference run (see [`Engine::batch`]).
    pub batch: Batch,
}

/// What comes out of the pipeline, in submission order.
#[derive(Debug)]
pub enum Output<M> {
    Frame {
        frame: Frame,
        meta: M,
        latency: Duration,
    },
    Marker(M),
    /// Inference failed for a frame; the frame is lost.
    Failed {
        meta: M,
        error: Error,
    },
}

struct Ticket {
    seq: u64,
    epoch: u64,
    /// The first sequence number of this epoch, where ordering restarts.
    epoch_start: u64,
    submitted: Instant,
}

enum Job<M> {
    Frame(Ticket, Frame, M),
    Marker(Ticket, M),
}

struct TileJob {
    seq: u64,
    epoch: u64,
    tiles: Vec<TileIndex>,
    size: (usize, usize),
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

enum StitchMsg<M> {
    Begin {
        ticket: Ticket,
        meta: M,
        work: Work,
    },
    Done {
        seq: u64,
        epoch: u64,
        tiles: Vec<TileIndex>,
        data: Result<Vec<f32>>,
    },
    /// Sent by `flush` so that the stitcher notices the new epoch at once.
    Wake,
}

enum Work {
    Marker,
    Tiles(FrameWork),
    Failed(Error),
}

struct FrameWork {
    plan: Arc<TilePlan>,
    template: Frame,
}

struct Counter {
    epoch: u64,
    next_seq: u64,
    epoch_start: u64,
}

/// A running pipeline; dropping it stops and joins its threads.
pub struct FramePipeline<M: Send + 'static> {
    input: Option<Sender<Job<M>>>,
    /// For timing runs; the prepare thread holds the other sender.
    work: Option<Sender<WorkItem>>,
    stitch_wake: Option<Sender<StitchMsg<M>>>,
    output: Receiver<(u64, Output<M>)>,
    slots: (Sender<()>, Receiver<()>),
    cancel: Mutex<Option<Sender<()>>>,
    cancelled: Receiver<()>,
    counter: Mutex<Counter>,
    epoch: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl<M: Send + 'static> FramePipeline<M> {
    /// Starts one inference worker per engine.
    pub fn start(config: PipelineConfig, engines: Vec<Engine>) -> Result<Self> {
        if engines.is_empty() {
            return Err(Error::InvalidSetting(
                "at least one inference worker is needed".into(),
            ));
        }
        let in_flight = config.max_frames_in_flight.max(1);
        let (input_tx, input_rx) = bounded::<Job<M>>(in_flight);
        let (work_tx, work_rx) = bounded::<WorkItem>(2 * engines.len());
        let (stitch_tx, stitch_rx) = unbounded::<StitchMsg<M>>();
        let (output_tx, output_rx) = unbounded();
        let slots = bounded::<()>(in_flight);
        let (cancel_tx, cancel_rx) = bounded::<()>(0);
        let epoch = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();

        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(Error::Io)
        };
        {
            let (stitch_tx, epoch, slots_rx) = (stitch_tx.clone(), epoch.clone(), slots.1.clone());
            let (config, work_tx) = (config.clone(), work_tx.clone());
            threads.push(spawn(
                "gendr-prepare".into(),
                Box::new(move || prepare(config, input_rx, work_tx, stitch_tx, epoch, slots_rx)),
            )?);
        }
        for (i, engine) in engines.into_iter().enumerate() {
            let (work_rx, stitch_tx, epoch) = (work_rx.clone(), stitch_tx.clone(), epoch.clone());
            threads.push(spawn(
                format!("gendr-infer-{i}"),
                Box::new(move || infer(engine, work_rx, stitch_tx, epoch)),
            )?);
        }
        {
            let (epoch, slots_rx) = (epoch.clone(), slots.1.clone());
            threads.push(spawn(
                "gendr-stitch".into(),
                Box::new(move || stitch(stitch_rx, output_tx, epoch, slots_rx)),
            )?);
        }
        Ok(FramePipeline {
            input: Some(input_tx),
            work: Some(work_tx),
            stitch_wake: Some(stitch_tx),
            output: output_rx,
            slots,
            cancel: Mutex::new(Some(cancel_tx)),
            cancelled: cancel_rx,
            counter: Mutex::new(Counter {
                epoch: 0,
                next_seq: 0,
                epoch_start: 0,
            }),
            epoch,
            threads,
        })
    }

    /// Takes a slot, waiting while `max_frames_in_flight` are in flight.
    /// Fails if the pipeline is closed, or flushed while waiting.
    fn ticket(&self) -> Result<Ticket> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        select! {
            send(self.slots.0, ()) -> r => r.map_err(|_| Error::PipelineClosed)?,
            recv(self.cancelled) -> _ => return Err(Error::PipelineClosed),
        }
        let mut c = self.counter.lock().unwrap_or_else(|p| p.into_inner());
        if c.epoch != epoch {
            drop(c);
            let _ = self.slots.1.try_recv();
            return Err(Error::PipelineClosed);
        }
        let seq = c.next_seq;
        c.next_seq += 1;
        Ok(Ticket {
            seq,
            epoch,
            epoch_start: c.epoch_start,
            submitted: Instant::now(),
        })
    }

    fn send(&self, job: Job<M>) -> Result<()> {
        self.input
            .as_ref()
            .ok_or(Error::PipelineClosed)?
            .send(job)
            .map_err(|_| Error::PipelineClosed)
    }

    /// Queues a frame; blocks while the pipeline is full.
    pub fn submit(&self, frame: Frame, meta: M) -> Result<()> {
        let ticket = self.ticket()?;
        self.send(Job::Frame(ticket, frame, meta))
    }

    /// Queues a marker that comes out after every frame submitted before it.
    pub fn submit_marker(&self, meta: M) -> Result<()> {
        let ticket = self.ticket()?;
        self.send(Job::Marker(ticket, meta))
    }

    /// Waits up to `timeout` for the next output in order.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Output<M>> {
        let deadline = Instant::now() + timeout;
        loop {
            let (epoch, out) = self.output.recv_deadline(deadline).ok()?;
            let _ = self.slots.1.try_recv();
            if epoch == self.epoch.load(Ordering::SeqCst) {
                return Some(out);
            }
        }
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
        while self.output.try_recv().is_ok() {
            let _ = self.slots.1.try_recv();
        }
    }

    /// Wakes every submitter with an error; nothing more is accepted.
    pub fn close(&self) {
        self.cancel.lock().unwrap_or_else(|p| p.into_inner()).take();
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
            .map_err(|_| Error::PipelineClosed)?;
        answer.recv().map_err(|_| Error::PipelineClosed)?
    }

    /// Frames and markers submitted but not yet received.
    pub fn in_flight(&self) -> usize {
        self.slots.0.len()
    }
}

impl<M: Send + 'static> Drop for FramePipeline<M> {
    fn drop(&mut self) {
        self.close();
        self.flush();
        self.input.take();
        self.work.take();
        self.stitch_wake.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn prepare<M>(
    config: PipelineConfig,
    input: Receiver<Job<M>>,
    work: Sender<WorkItem>,
    stitch: Sender<StitchMsg<M>>,
    epoch: Arc<AtomicU64>,
    slots: Receiver<()>,
) {
    let mut plans: Option<Arc<TilePlan>> = None;
    for job in input {
        let (ticket, frame, meta) = match job {
            Job::Marker(ticket, meta) => {
                if stitch
                    .send(StitchMsg::Begin {
                        ticket,
                        meta,
                        work: Work::Marker,
                    })
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Job::Frame(ticket, frame, meta) => (ticket, frame, meta),
        };
        if ticket.epoch != epoch.load(Ordering::SeqCst) {
            let _ = slots.try_recv();
            continue;
        }
        let plan = match &plans {
            Some(p) if (p.width, p.height) == (frame.width, frame.height) => p.clone(),
            _ => match config.geometry.plan(frame.width, frame.height) {
                Ok(p) => plans.insert(Arc::new(p)).clone(),
                Err(error) => {
                    if stitch
                        .send(StitchMsg::Begin {
                            ticket,
                            meta,
                            work: Work::Failed(error),
                        })
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            },
        };
        let rgb = frame_to_rgb(&frame);
        let (seq, frame_epoch) = (ticket.seq, ticket.epoch);
        let template = Frame {
            planes: Vec::new(),
            ..frame
        };
        let begin = StitchMsg::Begin {
            ticket,
            meta,
            work: Work::Tiles(FrameWork {
                plan: plan.clone(),
                template,
            }),
        };
        if stitch.send(begin).is_err() {
            return;
        }
        let (tw, th) = plan.tile_size();
        let tile_len = 3 * tw * th;
        let tiles: Vec<TileIndex> = plan.tiles().collect();
        for chunk in tiles.chunks(config.batch.chunk(tiles.len())) {
            let run_size = config.batch.run_size(chunk.len());
            let mut data = vec![0f32; run_size * tile_len];
            for (k, &tile) in chunk.iter().enumerate() {
                plan.extract(&rgb, tile, &mut data[k * tile_len..(k + 1) * tile_len]);
            }
            // A fixed batch is filled up with copies of the last tile.
            for k in chunk.len()..run_size {
                data.copy_within(
                    (chunk.len() - 1) * tile_len..chunk.len() * tile_len,
                    k * tile_len,
                );
            }
            let job = TileJob {
                seq,
                epoch: frame_epoch,
                tiles: chunk.to_vec(),
                size: (tw, th),
                data,
            };
            if work.send(WorkItem::Tiles(job)).is_err() {
                return;
            }
        }
    }
}

fn infer<M>(
    mut engine: Engine,
    work: Receiver<WorkItem>,
    stitch: Sender<StitchMsg<M>>,
    epoch: Arc<AtomicU64>,
) {
    for item in work {
        let job = match item {
            WorkItem::Tiles(job) => job,
            WorkItem::Time {
                size: (w, h),
                batch,
                reply,
            } => {
                let started = Instant::now();
                let ran = engine.run(&vec![0.5; batch * 3 * w * h], batch, h, w);
                let _ = reply.send(ran.map(|_| started.elapsed()));
                continue;
            }
        };
        let data = if job.epoch != epoch.load(Ordering::SeqCst) {
            Ok(Vec::new())
        } else {
            let (w, h) = job.size;
            let batch = job.data.len() / (3 * w * h);
            let _span =
                tracing::trace_span!("infer", seq = job.seq, tiles = job.tiles.len()).entered();
            engine.run(&job.data, batch, h, w)
        };
        if stitch
            .send(StitchMsg::Done {
                seq: job.seq,
                epoch: job.epoch,
                tiles: job.tiles,
                data,
            })
            .is_err()
        {
            return;
        }
    }
}

struct Pending<M> {
    meta: M,
    submitted: Instant,
    state: PendingState,
}

enum PendingState {
    Tiles {
        work: FrameWork,
        accum: RgbImage,
        remaining: usize,
    },
    Ready(Frame),
    Marker,
    Failed(Error),
}

fn stitch<M>(
    messages: Receiver<StitchMsg<M>>,
    output: Sender<(u64, Output<M>)>,
    epoch: Arc<AtomicU64>,
    slots: Receiver<()>,
) {
    let mut current = 0u64;
    let mut next_seq = 0u64;
    let mut pending: BTreeMap<u64, Pending<M>> = BTreeMap::new();
    for msg in messages {
        let now = epoch.load(Ordering::SeqCst);
        if now != current {
            // A flush: whatever is pending belongs to the past.
            for _ in 0..pending.len() {
                let _ = slots.try_recv();
            }
            pending.clear();
            current = now;
            next_seq = u64::MAX;
        }
        match msg {
            StitchMsg::Wake => continue,
            StitchMsg::Begin { ticket, meta, work } => {
                if ticket.epoch != current {
                    let _ = slots.try_recv();
                    continue;
                }
                if next_seq == u64::MAX {
                    next_seq = ticket.epoch_start;
                }
                let state = match work {
                    Work::Marker => PendingState::Marker,
                    Work::Failed(error) => PendingState::Failed(error),
                    Work::Tiles(work) => {
                        let (s, remaining) = (work.plan.scale, work.plan.len());
                        let accum = RgbImage::new(work.plan.width * s, work.plan.height * s);
                        PendingState::Tiles {
                            work,
                            accum,
                            remaining,
                        }
                    }
                };
                pending.insert(
                    ticket.seq,
                    Pending {
                        meta,
                        submitted: ticket.submitted,
                        state,
                    },
                );
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
                let Some(p) = pending.get_mut(&seq) else {
                    continue;
                };
                match data {
                    Err(error) => p.state = PendingState::Failed(error),
                    Ok(data) => {
                        if let PendingState::Tiles {
                            work,
                            accum,
                            remaining,
                        } = &mut p.state
                        {
                            let (tw, th) = work.plan.tile_size();
                            let s = work.plan.scale;
                            let out_len = 3 * tw * th * s * s;
                            for (k, &tile) in tiles.iter().enumerate() {
                                work.plan.accumulate(
                                    accum,
                                    tile,
                                    &data[k * out_len..(k + 1) * out_len],
                                );
                            }
                            *remaining -= tiles.len();
                            if *remaining == 0 {
                                let t = &work.template;
                                p.state = match rgb_to_frame(accum, t.format, t.colorimetry) {
                                    Ok(frame) => PendingState::Ready(frame),
                                    Err(error) => PendingState::Failed(error),
                                };
                            }
                        }
                    }
                }
            }
        }
        // Hand out everything that is complete, in order.
        while let Some(entry) = pending.first_entry() {
            if *entry.key() != next_seq || matches!(entry.get().state, PendingState::Tiles { .. }) {
                break;
            }
            let p = entry.remove();
            next_seq += 1;
            let out = match p.state {
                PendingState::Ready(frame) => Output::Frame {
                    frame,
                    meta: p.meta,
                    latency: p.submitted.elapsed(),
                },
                PendingState::Marker => Output::Marker(p.meta),
                PendingState::Failed(error) => Output::Failed {
                    meta: p.meta,
                    error,
                },
                PendingState::Tiles { .. } => unreachable!("checked above"),
            };
            if output.send((current, out)).is_err() {
                return;
            }
        }
    }
}
