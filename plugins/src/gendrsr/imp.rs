//! The element: GObject properties, pads, events, queries and the src-pad
//! task. Engines and geometry come from the core's assembly point, the
//! overload policy from `gendr::overload`, Buffer↔Frame glue from `video`.

use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use gendr::engine::EngineOptions;
use gendr::frame::Frame;
use gendr::model::DEFAULT_MIN_OVERLAP;
use gendr::overload::{Admission, Admit, Arrival, LatencyEstimate, Stats};
use gendr::pipeline::{FramePipeline, Output};
use gendr::upscaler::{Assembly, Upscaler, UpscalerConfig};
use gendr::{limits, presets};

use super::video::{self, OutputPool, MAX_OUTPUT_EDGE};
use super::{Overload, Precision, Provider, Temporal};

const DEFAULT_MODEL: &str = presets::DEFAULT_PRESET;
const DEFAULT_TILE_SIZE: u32 = 0;
const DEFAULT_TILE_OVERLAP: u32 = DEFAULT_MIN_OVERLAP as u32;
const DEFAULT_PROVIDER: Provider = Provider::Auto;
const DEFAULT_PRECISION: Precision = Precision::Auto;
const DEFAULT_TEMPORAL: Temporal = Temporal::Auto;
const DEFAULT_DEVICE_ID: i32 = 0;
const DEFAULT_STREAMS: u32 = 0;
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_BATCH_SIZE: u32 = 0;
const DEFAULT_MAX_FRAMES_IN_FLIGHT: u32 = 4;
const DEFAULT_ON_OVERLOAD: Overload = Overload::Block;
const DEFAULT_LATENCY_BUDGET_MS: u32 = 1000;
const DEFAULT_STATS_INTERVAL_MS: u32 = 1000;
/// Room for fallback frames and events beside the model's frames when
/// `on-overload` is not `block`; beyond it frames are dropped.
const EXTRA_SLOTS: u32 = 32;
/// How long the src-pad task waits for output before checking its state again.
const POLL: Duration = Duration::from_millis(50);

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "gendrsr",
        gst::DebugColorFlags::empty(),
        Some("Tiled ONNX super-resolution"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    model: String,
    tile_size: u32,
    tile_overlap: u32,
    provider: Provider,
    precision: Precision,
    device_id: i32,
    streams: u32,
    threads: u32,
    batch_size: u32,
    max_frames_in_flight: u32,
    trt_cache_dir: Option<String>,
    on_overload: Overload,
    latency_budget_ms: u32,
    stats_interval_ms: u32,
    temporal: Temporal,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.into(),
            tile_size: DEFAULT_TILE_SIZE,
            tile_overlap: DEFAULT_TILE_OVERLAP,
            provider: DEFAULT_PROVIDER,
            precision: DEFAULT_PRECISION,
            device_id: DEFAULT_DEVICE_ID,
            streams: DEFAULT_STREAMS,
            threads: DEFAULT_THREADS,
            batch_size: DEFAULT_BATCH_SIZE,
            max_frames_in_flight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
            temporal: DEFAULT_TEMPORAL,
            trt_cache_dir: None,
            on_overload: DEFAULT_ON_OVERLOAD,
            latency_budget_ms: DEFAULT_LATENCY_BUDGET_MS,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
        }
    }
}

impl Settings {
    /// The core's configuration for these properties: the element builds
    /// through the same assembly point as `gendr bench` and `gendr eval`.
    pub fn upscaler_config(&self) -> UpscalerConfig {
        // The core's defaults fill what no property sets, as for the CLI.
        let defaults = UpscalerConfig::default();
        UpscalerConfig {
            model: self.model.clone(),
            tile_size: self.tile_size as usize,
            tile_overlap: self.tile_overlap as usize,
            engine: EngineOptions {
                provider: self.provider.into(),
                precision: self.precision.into(),
                device_id: self.device_id,
                threads: self.threads as usize,
                trt_cache: self
                    .trt_cache_dir
                    .clone()
                    .map(std::path::PathBuf::from)
                    .or(defaults.engine.trt_cache),
                ..defaults.engine
            },
            streams: self.streams as usize,
            batch_size: self.batch_size as usize,
            temporal: self.temporal.into(),
        }
    }
}

/// What travels with a model frame through the frame pipeline.
struct Input {
    buffer: gst::Buffer,
    arrived: Instant,
    /// Model frames in the model ahead of this one when it went in.
    ahead: usize,
}

/// Serialized items kept in order with the frames.
enum Marker {
    /// A frame upscaled by the fallback path.
    Fallback(Frame, Input),
    Caps(gst::Caps, gst_video::VideoInfo),
    Event(gst::Event),
}

type Pipeline = FramePipeline<Input, Marker>;

/// Everything that exists while the element runs.
struct State {
    pipeline: Arc<Pipeline>,
    assembly: Assembly,
    in_info: Option<gst_video::VideoInfo>,
    latency: LatencyEstimate,
    /// Inference time per tile, timed for the tile size of `timed_tile`.
    per_tile: Duration,
    timed_tile: Option<(usize, usize)>,
    max_frames_in_flight: u32,
    /// Slots in the frame pipeline: model frames, fallback frames and events.
    capacity: usize,
    admission: Admission,
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// Upstream's minimum latency and liveness, from the last latency query.
    upstream_latency: gst::ClockTime,
    live: bool,
    /// From downstream QoS: frames whose running time ends before the first
    /// value arrive there about the second late.
    qos: Option<(gst::ClockTime, Duration)>,
}

/// The element's one lock: the running state, the src task's flow and the
/// counters; `changed` is signalled whenever frames leave, the flow
/// changes or a flush starts.
struct Shared {
    state: Option<State>,
    /// The last flow return of the src-pad task, handed back to upstream.
    flow: Result<gst::FlowSuccess, gst::FlowError>,
    flushing: bool,
    stats: Stats,
    last_stats_post: Option<Instant>,
}

pub struct GendrSr {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    shared: Mutex<Shared>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn duration(t: gst::ClockTime) -> Duration {
    Duration::from_nanos(t.nseconds())
}

fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Properties that may change while the element runs; every other one is
/// read when it starts.
const MUTABLE_PLAYING: [&str; 2] = ["latency-budget", "stats-interval"];

impl GendrSr {
    pub(super) fn upscaler_config(&self) -> UpscalerConfig {
        lock(&self.settings).upscaler_config()
    }

    pub(super) fn assembly(&self) -> Option<Assembly> {
        lock(&self.shared)
            .state
            .as_ref()
            .map(|s| s.assembly.clone())
    }

    fn scale(&self) -> Option<u32> {
        lock(&self.shared)
            .state
            .as_ref()
            .map(|s| s.assembly.scale() as u32)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let upscaler = Upscaler::open(&settings.upscaler_config()).map_err(|e| match e {
            gendr::Error::RuntimeMissing { .. }
            | gendr::Error::RuntimeLoad { .. }
            | gendr::Error::ProviderUnavailable { .. } => {
                gst::error_msg!(gst::LibraryError::Init, ("{}", e))
            }
            gendr::Error::ModelNotFound(_) => {
                gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
            }
            gendr::Error::Inference(_) | gendr::Error::Runtime(_) => gst::error_msg!(
                gst::LibraryError::Failed,
                ("model {}: {}", settings.model, e)
            ),
            _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
        })?;
        let assembly = upscaler.assembly.clone();
        for note in &assembly.notes {
            gst::info!(CAT, imp = self, "{note}");
        }
        let g = &assembly.geometry;
        gst::info!(
            CAT,
            imp = self,
            "model {} (×{}, {}) on {} with {} worker(s): tiles up to {}x{} with {} px overlap; temporal stage {}; warm-up run {:?}",
            assembly.model_path.display(),
            assembly.scale(),
            assembly.info.precision.as_str(),
            assembly.runs_on(),
            assembly.streams,
            g.tile_width,
            g.tile_height,
            g.overlap,
            if assembly.temporal.is_some() { "on" } else { "off" },
            upscaler.warm_up
        );
        let capacity = match settings.on_overload {
            Overload::Block => settings.max_frames_in_flight,
            Overload::Drop | Overload::Fallback => settings.max_frames_in_flight + EXTRA_SLOTS,
        } as usize;
        let pipeline = upscaler
            .start(capacity)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        let admission = Admission::new(
            settings.on_overload.into(),
            Duration::from_millis(settings.latency_budget_ms as u64),
            settings.max_frames_in_flight as usize,
        );
        let mut shared = lock(&self.shared);
        shared.state = Some(State {
            pipeline: Arc::new(pipeline),
            assembly,
            in_info: None,
            latency: LatencyEstimate::default(),
            per_tile: Duration::ZERO,
            timed_tile: None,
            max_frames_in_flight: settings.max_frames_in_flight,
            capacity,
            admission,
            segment: gst::FormattedSegment::new(),
            upstream_latency: gst::ClockTime::ZERO,
            live: false,
            qos: None,
        });
        shared.stats = Stats::default();
        shared.last_stats_post = Some(Instant::now());
        shared.flow = Ok(gst::FlowSuccess::Ok);
        Ok(())
    }

    /// Wakes everything that waits on the pipeline and drops what is in it.
    fn stop(&self) {
        let mut shared = lock(&self.shared);
        if let Some(state) = shared.state.as_ref() {
            state.pipeline.close();
            state.pipeline.flush();
        }
        shared.flushing = true;
        self.changed.notify_all();
    }

    fn pipeline(&self) -> Option<Arc<Pipeline>> {
        lock(&self.shared)
            .state
            .as_ref()
            .map(|s| s.pipeline.clone())
    }

    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let arrived = Instant::now();
        let (pipeline, info, scale, admit, arrival) = {
            let mut shared = lock(&self.shared);
            if shared.flushing {
                return Err(gst::FlowError::Flushing);
            }
            shared.flow?;
            let running_time = self.running_time();
            let Some(state) = shared.state.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let Some(info) = state.in_info.clone() else {
                drop(shared);
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("buffer before caps"));
                return Err(gst::FlowError::NotNegotiated);
            };
            let arrival = Arrival {
                late: state.lateness(&buffer, running_time),
                late_downstream: state.downstream_lateness(&buffer),
                in_model: state.pipeline.frames_in_model(),
                room: state.pipeline.in_flight() < state.capacity,
            };
            let admit = state.admission.admit(&arrival);
            let out = (
                state.pipeline.clone(),
                info,
                state.assembly.scale(),
                admit,
                arrival,
            );
            shared.stats.received += 1;
            if admit == Admit::Drop {
                shared.stats.dropped += 1;
            }
            out
        };
        if admit == Admit::Drop {
            gst::debug!(
                CAT,
                imp = self,
                "dropping frame {:?}: {arrival:?}",
                buffer.pts()
            );
            self.post_qos(&buffer, arrival.late.or(arrival.late_downstream));
            return lock(&self.shared).flow;
        }
        let fail = |error: String| {
            lock(&self.shared).stats.failed += 1;
            gst::element_imp_error!(self, gst::StreamError::Format, ("{}", error));
            gst::FlowError::Error
        };
        let frame = video::frame_from_buffer(&buffer, &info).map_err(fail)?;
        let discont = buffer.flags().contains(gst::BufferFlags::DISCONT);
        let input = Input {
            buffer,
            arrived,
            ahead: arrival.in_model,
        };
        let number = video::frame_number(input.buffer.pts(), info.fps());
        let submitted = match (admit, number) {
            (Admit::Model, Some(number)) => pipeline.submit_numbered(frame, input, number, discont),
            (Admit::Model, None) if discont => pipeline.submit_restart(frame, input),
            (Admit::Model, None) => pipeline.submit(frame, input),
            (_, _) => match gendr::fallback::upscale(&frame, scale) {
                Ok(frame) => pipeline.submit_marker(Marker::Fallback(frame, input)),
                Err(e) => return Err(fail(e.to_string())),
            },
        };
        match submitted {
            Ok(()) => lock(&self.shared).flow,
            Err(_) => {
                if self.post_pipeline_failure(&pipeline) {
                    return Err(gst::FlowError::Error);
                }
                // Flushed, stopped, or the src task stopped on downstream's
                // flow return, which goes upstream.
                match lock(&self.shared).flow {
                    Err(flow) => Err(flow),
                    Ok(_) => Err(gst::FlowError::Flushing),
                }
            }
        }
    }

    /// The element's running time, where it is playing.
    fn running_time(&self) -> Option<gst::ClockTime> {
        let obj = self.obj();
        if obj.current_state() != gst::State::Playing {
            return None;
        }
        obj.current_running_time()
    }

    /// Says on the bus that a frame was dropped, as a QoS message.
    fn post_qos(&self, buffer: &gst::Buffer, late: Option<Duration>) {
        let (live, running_time, stream_time, processed, dropped) = {
            let shared = lock(&self.shared);
            let (live, rt, st) = match shared.state.as_ref() {
                Some(s) => (
                    s.live,
                    s.segment.to_running_time(buffer.pts()),
                    s.segment.to_stream_time(buffer.pts()),
                ),
                None => (false, None, None),
            };
            let stats = &shared.stats;
            (
                live,
                rt,
                st,
                stats.processed + stats.fallback,
                stats.dropped,
            )
        };
        let jitter = late.map_or(0, |l| l.as_nanos().min(i64::MAX as u128) as i64);
        let msg = gst::message::Qos::builder(live)
            .running_time_if_some(running_time)
            .stream_time_if_some(stream_time)
            .timestamp_if_some(buffer.pts())
            .duration_if_some(buffer.duration())
            .values(jitter, 1.0, 1_000_000)
            .stats(
                gst::format::Buffers::from_u64(processed),
                gst::format::Buffers::from_u64(dropped),
            )
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// Queues a serialized event behind the frames before it. Once the src
    /// task has stopped on downstream's flow (EOS, not linked), nothing is
    /// in flight and an event such as upstream's answering EOS goes
    /// straight on.
    fn queue_event(&self, marker: Marker) -> bool {
        let (pipeline, stopped) = {
            let shared = lock(&self.shared);
            let pipeline = shared.state.as_ref().map(|s| s.pipeline.clone());
            (pipeline, shared.flow.is_err() && !shared.flushing)
        };
        match (pipeline, marker) {
            (Some(_), Marker::Event(event)) if stopped => self.srcpad.push_event(event),
            (Some(pipeline), marker) => match pipeline.submit_marker(marker) {
                Ok(()) => true,
                Err(_) => {
                    self.post_pipeline_failure(&pipeline);
                    false
                }
            },
            (None, _) => false,
        }
    }

    /// Posts why the frame pipeline died, if a stage did: upstream's own
    /// "internal data stream error" must not be the first word.
    fn post_pipeline_failure(&self, pipeline: &Pipeline) -> bool {
        match pipeline.failure() {
            Some(failure) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", failure));
                true
            }
            None => false,
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "sink event {:?}", event.type_());
        match event.view() {
            EventView::FlushStart(_) => {
                {
                    let mut shared = lock(&self.shared);
                    shared.flushing = true;
                    if let Some(state) = shared.state.as_ref() {
                        state.pipeline.flush();
                    }
                    let lost = shared.stats.in_flight();
                    shared.stats.dropped += lost;
                    self.changed.notify_all();
                }
                let forwarded = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                forwarded
            }
            EventView::FlushStop(_) => {
                {
                    let mut shared = lock(&self.shared);
                    if let Some(state) = shared.state.as_mut() {
                        state.pipeline.flush();
                        state.qos = None;
                    }
                    shared.flow = Ok(gst::FlowSuccess::Ok);
                    shared.flushing = false;
                }
                let forwarded = self.srcpad.push_event(event);
                forwarded && self.start_task().is_ok()
            }
            EventView::Caps(c) => match self.set_caps(&c.caps_owned()) {
                Ok((out_caps, out_info)) => self.queue_event(Marker::Caps(out_caps, out_info)),
                Err(err) => {
                    gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{}", err));
                    false
                }
            },
            EventView::Segment(e) => {
                if let Some(state) = lock(&self.shared).state.as_mut() {
                    match e.segment().downcast_ref::<gst::ClockTime>() {
                        Some(segment) => state.segment = segment.clone(),
                        None => gst::warning!(CAT, imp = self, "segment not in time format"),
                    }
                    state.qos = None;
                }
                self.queue_event(Marker::Event(event))
            }
            _ if event.is_serialized() => self.queue_event(Marker::Event(event)),
            _ => self.srcpad.push_event(event),
        }
    }

    /// Takes new input caps: times the tile size they need and returns the
    /// output caps, with the input's colorimetry written out.
    fn set_caps(&self, caps: &gst::Caps) -> Result<(gst::Caps, gst_video::VideoInfo), String> {
        let (caps, info) = video::resolved_caps(caps)?;
        let tiles = self.time_tile(info.width() as usize, info.height() as usize)?;
        let mut shared = lock(&self.shared);
        let state = shared
            .state
            .as_mut()
            .ok_or("caps before the element started")?;
        let s = state.assembly.scale() as u32;
        let (w, h) = (info.width().checked_mul(s), info.height().checked_mul(s));
        // Checked here as well as in caps queries: upstream may not have asked.
        let (Some(w), Some(h)) = (w, h) else {
            return Err(format!("{}x{} ×{s} overflows", info.width(), info.height()));
        };
        if w > MAX_OUTPUT_EDGE as u32 || h > MAX_OUTPUT_EDGE as u32 {
            return Err(format!(
                "{}x{} input gives a {w}x{h} output, over the {MAX_OUTPUT_EDGE}-pixel limit per edge; \
                 downscale the input or use a smaller scale",
                info.width(),
                info.height()
            ));
        }
        let (out_caps, out_info) = video::output_caps(&caps, s)?;
        let resized = state
            .in_info
            .as_ref()
            .is_none_or(|old| (old.width(), old.height()) != (info.width(), info.height()));
        if resized {
            let per_frame = state
                .latency
                .at_caps(state.per_tile, tiles, state.assembly.streams);
            state.admission.set_service(per_frame);
        }
        gst::debug!(
            CAT,
            imp = self,
            "caps {caps} → {out_caps}, latency {:?}",
            state.latency.reported()
        );
        state.in_info = Some(info);
        Ok((out_caps, out_info))
    }

    /// Times one inference run of the tiles a `width × height` frame uses,
    /// unless that tile size is timed already, and returns how many tiles
    /// the frame takes. The run waits behind the frames in flight, so the
    /// state is not held meanwhile.
    fn time_tile(&self, width: usize, height: usize) -> Result<usize, String> {
        let (pipeline, plan, batch) = {
            let shared = lock(&self.shared);
            let state = shared
                .state
                .as_ref()
                .ok_or("caps before the element started")?;
            let plan = state
                .assembly
                .geometry
                .plan(width, height)
                .map_err(|e| e.to_string())?;
            if state.timed_tile == Some(plan.tile_size()) {
                return Ok(plan.len());
            }
            (state.pipeline.clone(), plan, state.assembly.batch)
        };
        let size = plan.tile_size();
        let tiles = batch.chunk(plan.len());
        let took = pipeline
            .time_run(size, batch.run_size(tiles))
            .map_err(|e| format!("a {}x{} tile failed: {e}", size.0, size.1))?;
        gst::info!(
            CAT,
            imp = self,
            "{width}x{height} frames: {} tiles of {}x{}, {tiles} per run, {took:?} per run",
            plan.len(),
            size.0,
            size.1
        );
        if let Some(state) = lock(&self.shared).state.as_mut() {
            state.per_tile = took / tiles as u32;
            state.timed_tile = Some(size);
        }
        Ok(plan.len())
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let caps = self.query_caps(pad, q.filter_owned().as_ref());
                q.set_result(&caps);
                true
            }
            // Input frames are copied out through their VideoMeta, so upstream
            // may pad or offset planes as it likes; its pool is its own, since
            // our sizes differ from downstream's.
            QueryViewMut::Allocation(q) => {
                q.add_allocation_meta::<gst_video::VideoMeta>(None);
                true
            }
            QueryViewMut::Drain(_) => {
                self.wait_drained();
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// Waits until every frame in the element has gone downstream, or the
    /// stream stops (flush, error, downstream's end).
    fn wait_drained(&self) {
        let mut shared = lock(&self.shared);
        loop {
            let busy = shared
                .state
                .as_ref()
                .is_some_and(|s| s.pipeline.in_flight() > 0);
            if !busy || shared.flushing || shared.flow.is_err() {
                return;
            }
            shared = self.changed.wait(shared).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Caps this pad can take: the other side's, scaled, within our template.
    fn query_caps(&self, pad: &gst::Pad, filter: Option<&gst::Caps>) -> gst::Caps {
        let (other, direction) = if pad == &self.sinkpad {
            (&self.srcpad, gst::PadDirection::Sink)
        } else {
            (&self.sinkpad, gst::PadDirection::Src)
        };
        let template = pad.pad_template_caps();
        let Some(scale) = self.scale() else {
            return match filter {
                Some(f) => f.intersect_with_mode(&template, gst::CapsIntersectMode::First),
                None => template,
            };
        };
        let opposite = match direction {
            gst::PadDirection::Sink => gst::PadDirection::Src,
            _ => gst::PadDirection::Sink,
        };
        let other_filter = filter.map(|f| video::transform_caps(f, direction, scale));
        let peer = other.peer_query_caps(other_filter.as_ref());
        let mut caps = video::transform_caps(&peer, opposite, scale).intersect(&template);
        if let Some(f) = filter {
            caps = f.intersect_with_mode(&caps, gst::CapsIntersectMode::First);
        }
        gst::log!(CAT, obj = pad, "caps query: peer {peer} → {caps}");
        caps
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        gst::log!(CAT, obj = pad, "src event {:?}", event.type_());
        if let gst::EventView::Qos(q) = event.view() {
            let (_, _, diff, timestamp) = q.get();
            if let (Some(state), Some(timestamp)) = (lock(&self.shared).state.as_mut(), timestamp) {
                // As GstVideoDecoder does: when late, frames up to twice as
                // far ahead are expected to be as late.
                state.qos = (diff > 0).then(|| {
                    let late = gst::ClockTime::from_nseconds(diff.unsigned_abs());
                    (timestamp + late * 2, duration(late))
                });
            }
        }
        self.sinkpad.push_event(event)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let caps = self.query_caps(pad, q.filter_owned().as_ref());
                q.set_result(&caps);
                true
            }
            QueryViewMut::Latency(q) => {
                if !self.sinkpad.peer_query(q.query_mut()) {
                    return false;
                }
                let (live, min, max) = q.result();
                let (ours, slack) = match lock(&self.shared).state.as_mut() {
                    Some(s) => {
                        s.live = live;
                        s.upstream_latency = min;
                        let frame = s
                            .in_info
                            .as_ref()
                            .and_then(|i| (i.fps().numer() > 0).then(|| i.fps()))
                            .and_then(|fps| {
                                gst::ClockTime::SECOND
                                    .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                            })
                            .unwrap_or(gst::ClockTime::ZERO);
                        (
                            clock_time(s.latency.reported()),
                            frame * s.max_frames_in_flight as u64,
                        )
                    }
                    None => (gst::ClockTime::ZERO, gst::ClockTime::ZERO),
                };
                gst::debug!(
                    CAT,
                    imp = self,
                    "latency: upstream {min}–{max:?}, ours {ours} (+{slack} queued)"
                );
                q.set(live, min + ours, max.map(|m| m + ours + slack));
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        let Some(pipeline) = self.pipeline() else {
            return Err(glib::bool_error!("not started"));
        };
        let element = self.obj().downgrade();
        let mut output: Option<OutputPool> = None;
        self.srcpad.start_task(move || {
            if let Some(element) = element.upgrade() {
                element.imp().src_loop(&pipeline, &mut output);
            }
        })
    }

    fn src_activate(&self, mode: gst::PadMode, active: bool) -> Result<(), gst::LoggableError> {
        if mode != gst::PadMode::Push {
            return Err(gst::loggable_error!(CAT, "only push mode is supported"));
        }
        if active {
            lock(&self.shared).flushing = false;
            self.start_task()
                .map_err(|e| gst::loggable_error!(CAT, "starting the src task: {e}"))
        } else {
            self.stop();
            self.srcpad
                .stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "stopping the src task: {e}"))
        }
    }

    /// One turn of the src-pad task: push the next output, in order.
    fn src_loop(&self, pipeline: &Pipeline, output_pool: &mut Option<OutputPool>) {
        self.post_stats();
        let output = match pipeline.recv_timeout(POLL) {
            Ok(Some(output)) => output,
            Ok(None) => return,
            // A stage died: say so once and stop, never spin.
            Err(error) => {
                if !lock(&self.shared).flushing {
                    gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", error));
                }
                self.finish(pipeline, Err(gst::FlowError::Error));
                return;
            }
        };
        let flow = match output {
            Output::Frame {
                frame,
                meta: input,
                latency,
            } => {
                gst::trace!(
                    CAT,
                    imp = self,
                    "frame {:?} out after {latency:?}",
                    input.buffer.pts()
                );
                // Time inside the element only: frames later waiting on a
                // synchronising sink are not the model's doing.
                self.push_frame(&frame, &input, output_pool.as_ref(), Some(latency))
            }
            Output::Marker(Marker::Fallback(frame, input)) => {
                self.push_frame(&frame, &input, output_pool.as_ref(), None)
            }
            Output::Marker(Marker::Caps(caps, info)) => {
                // The old pool goes first: downstream may offer it again.
                *output_pool = None;
                let pushed = self.push_serialized(gst::event::Caps::new(&caps));
                match OutputPool::negotiate(&self.srcpad, &caps, info) {
                    Ok(pool) => {
                        *output_pool = Some(pool);
                        pushed
                    }
                    Err(e) => {
                        gst::element_imp_error!(self, gst::ResourceError::Failed, ("{}", e));
                        Err(gst::FlowError::Error)
                    }
                }
            }
            Output::Marker(Marker::Event(event)) => self.push_serialized(event),
            Output::Failed { error, meta } => {
                lock(&self.shared).stats.failed += 1;
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("frame at {}: {}", meta.buffer.pts().display(), error)
                );
                Err(gst::FlowError::Error)
            }
        };
        match flow {
            Ok(_) => {
                lock(&self.shared).flow = flow;
                self.changed.notify_all();
            }
            Err(gst::FlowError::Flushing) => {
                lock(&self.shared).flow = flow;
                self.changed.notify_all();
                let _ = self.srcpad.pause_task();
            }
            Err(err) => {
                if !matches!(
                    err,
                    gst::FlowError::Error | gst::FlowError::Eos | gst::FlowError::NotLinked
                ) {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("streaming stopped: {err:?}")
                    );
                }
                if err == gst::FlowError::Error {
                    self.srcpad.push_event(gst::event::Eos::new());
                }
                self.finish(pipeline, flow);
            }
        }
    }

    /// Stops the src task on a flow that ends the stream, and hands that
    /// flow to upstream: waiting submitters are woken by dropping what is
    /// in flight, so the sink chain returns it instead of blocking.
    fn finish(&self, pipeline: &Pipeline, flow: Result<gst::FlowSuccess, gst::FlowError>) {
        gst::debug!(CAT, imp = self, "src task stops: {flow:?}");
        lock(&self.shared).flow = flow;
        pipeline.flush();
        self.changed.notify_all();
        let _ = self.srcpad.pause_task();
    }

    /// Pushes an upscaled frame with its input's timestamps, and accounts
    /// for its time in the element: `latency` inside the frame pipeline for
    /// model frames, since arrival for fallback frames.
    fn push_frame(
        &self,
        frame: &Frame,
        input: &Input,
        output: Option<&OutputPool>,
        latency: Option<Duration>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(output) = output else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut buffer = output.acquire()?;
        if let Err(e) = video::write_frame(frame, &input.buffer, buffer.make_mut(), &output.info) {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
            return Err(gst::FlowError::Error);
        }
        let took = latency.unwrap_or_else(|| input.arrived.elapsed());
        let raised = {
            let mut shared = lock(&self.shared);
            shared.stats.out(took, latency.is_none());
            shared.state.as_mut().and_then(|state| {
                if latency.is_some() {
                    state.admission.learn(took, input.ahead);
                }
                state.latency.observe(took)
            })
        };
        if let Some(latency) = raised {
            // Live sinks schedule by the latency we report.
            gst::info!(
                CAT,
                imp = self,
                "frames take {took:?}; latency raised to {latency:?}"
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        self.srcpad.push(buffer)
    }

    /// Posts the `gendrsr-stats` element message every `stats-interval`.
    fn post_stats(&self) {
        let interval = lock(&self.settings).stats_interval_ms;
        if interval == 0 {
            return;
        }
        let structure = {
            let mut shared = lock(&self.shared);
            let due = shared
                .last_stats_post
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(interval as u64));
            if !due {
                return;
            }
            shared.last_stats_post = Some(Instant::now());
            stats_structure(&shared.stats)
        };
        let msg = gst::message::Element::builder(structure)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn push_serialized(&self, event: gst::Event) -> Result<gst::FlowSuccess, gst::FlowError> {
        let is_eos = event.type_() == gst::EventType::Eos;
        if !self.srcpad.push_event(event) && !is_eos {
            gst::debug!(CAT, imp = self, "downstream refused a serialized event");
        }
        if is_eos {
            Err(gst::FlowError::Eos)
        } else {
            Ok(gst::FlowSuccess::Ok)
        }
    }
}

impl State {
    /// How late a frame arrives: the clock's running time against the
    /// frame's, less what upstream declared as its latency.
    fn lateness(&self, buffer: &gst::Buffer, now: Option<gst::ClockTime>) -> Option<Duration> {
        let rt = self.segment.to_running_time(buffer.pts())?;
        now?.checked_sub(rt)?
            .checked_sub(self.upstream_latency)
            .map(duration)
    }

    /// How late downstream said frames like this one arrive there.
    fn downstream_lateness(&self, buffer: &gst::Buffer) -> Option<Duration> {
        let (until, late) = self.qos?;
        let rt = self.segment.to_running_time(buffer.pts())?;
        (rt + buffer.duration().unwrap_or(gst::ClockTime::ZERO) < until).then_some(late)
    }
}

fn stats_structure(stats: &Stats) -> gst::Structure {
    gst::Structure::builder("gendrsr-stats")
        .field("frames-processed", stats.processed)
        .field("frames-dropped", stats.dropped)
        .field("frames-fallback", stats.fallback)
        .field("latency-mean-ms", stats.latency_mean_ms())
        .field("latency-max-ms", stats.latency_max_ms)
        .build()
}

#[glib::object_subclass]
impl ObjectSubclass for GendrSr {
    const NAME: &'static str = "GstGendrSr";
    type Type = super::GendrSr;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|pad, parent, buffer| {
                GendrSr::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                GendrSr::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                GendrSr::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .event_function(|pad, parent, event| {
                GendrSr::catch_panic_pad_function(parent, || false, |imp| imp.src_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                GendrSr::catch_panic_pad_function(parent, || false, |imp| imp.src_query(pad, query))
            })
            .activatemode_function(|_pad, parent, mode, active| {
                GendrSr::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic while (de)activating")),
                    |imp| imp.src_activate(mode, active),
                )
            })
            .build();
        GendrSr {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            shared: Mutex::new(Shared {
                state: None,
                flow: Ok(gst::FlowSuccess::Ok),
                flushing: true,
                stats: Stats::default(),
                last_stats_post: None,
            }),
            changed: Condvar::new(),
        }
    }
}

impl ObjectImpl for GendrSr {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Preset name (see `gendr models`) or path to an ONNX file keeping the gendr model contract")
                    .default_value(Some(DEFAULT_MODEL))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb("Tile edge in input pixels, context included; 0 = the model's preferred size. \
                            Snapped to the model's alignment; a fixed-shape model forces its own")
                    .maximum(*limits::TILE_SIZE.end())
                    .default_value(DEFAULT_TILE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Context around each tile in input pixels; neighbours are blended over as much again. \
                            Raised to the model's minimum")
                    .maximum(*limits::TILE_OVERLAP.end())
                    .default_value(DEFAULT_TILE_OVERLAP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("provider", DEFAULT_PROVIDER)
                    .nick("Execution provider")
                    .blurb("Execution provider (ONNX Runtime's, or OpenVINO on the CPU); a forced one that cannot load is an error")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", DEFAULT_PRECISION)
                    .nick("Precision")
                    .blurb("Arithmetic for provider=openvino: auto = bf16 where the CPU has AVX-512 BF16 or AMX, else fp32; \
                            bf16 is refused on other providers and on CPUs without it")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("temporal", DEFAULT_TEMPORAL)
                    .nick("Temporal stage")
                    .blurb("Steady the output over time: the detail finer than the input of the model's last frames, moved along \
                            the motion found on the input, averaged in where that motion is trusted; the generative presets first \
                            take each frame's coarse tone and structure from its own input (back-projection); cuts, uncovered areas \
                            and gaps (DISCONT) take nothing from earlier frames")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("GPU index for the CUDA and TensorRT providers")
                    .minimum(*limits::DEVICE_ID.start())
                    .maximum(*limits::DEVICE_ID.end())
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("streams")
                    .nick("Streams")
                    .blurb("Inference workers in flight, each with its own ONNX Runtime session \
                            (on a GPU, its own CUDA stream); 0 = 1 on the CPU, 2 on a GPU")
                    .maximum(*limits::STREAMS.end())
                    .default_value(DEFAULT_STREAMS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Intra-op threads per worker; 0 = all cores")
                    .maximum(*limits::THREADS.end())
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb("Tiles per inference run for models with a dynamic batch dimension; \
                            0 = all of a frame's tiles together on a GPU, one at a time on the CPU. \
                            A model with a fixed batch always gets its own size")
                    .maximum(*limits::BATCH_SIZE.end())
                    .default_value(DEFAULT_BATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-frames-in-flight")
                    .nick("Max frames in flight")
                    .blurb("Frames inside the element at once (bounds memory and latency; upstream waits beyond it). \
                            Unless on-overload=block, this bounds the frames queued for the model, and up to 32 \
                            fallback frames and events may wait beside them")
                    .minimum(*limits::MAX_FRAMES_IN_FLIGHT.start())
                    .maximum(*limits::MAX_FRAMES_IN_FLIGHT.end())
                    .default_value(DEFAULT_MAX_FRAMES_IN_FLIGHT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("trt-cache-dir")
                    .nick("TensorRT cache folder")
                    .blurb("Where provider=tensorrt keeps built engines, one subfolder per model and runtime \
                            version; unset = $XDG_CACHE_HOME/gendr/tensorrt (or ~/.cache/gendr/tensorrt)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("on-overload", DEFAULT_ON_OVERLOAD)
                    .nick("On overload")
                    .blurb("What to do with a frame the model cannot take in time: when max-frames-in-flight \
                            are queued, when the queue would exceed latency-budget, when the frame arrives later \
                            than latency-budget, or when downstream QoS says it would be late. \
                            block = always wait (for files); drop and fallback keep latency bounded (for live)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency-budget")
                    .nick("Latency budget")
                    .blurb("Milliseconds a frame may spend queued for the model, or arrive late, before \
                            on-overload applies; ignored under on-overload=block")
                    .minimum(*limits::LATENCY_BUDGET_MS.start())
                    .maximum(*limits::LATENCY_BUDGET_MS.end())
                    .default_value(DEFAULT_LATENCY_BUDGET_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Milliseconds between `gendrsr-stats` element messages on the bus (the fields of \
                            the read-only counters); 0 = none")
                    .maximum(3_600_000)
                    .default_value(DEFAULT_STATS_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("runs-on")
                    .nick("Runs on")
                    .blurb("What runs the model once the element has started: cpu, cuda, tensorrt, \
                            or openvino with its arithmetic and CPU (e.g. \"openvino bf16 on …\"); \
                            unset before")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-processed")
                    .nick("Frames processed")
                    .blurb("Frames upscaled by the model and pushed since the element started")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-dropped")
                    .nick("Frames dropped")
                    .blurb("Input frames skipped by on-overload=drop (or fallback with no room) since the element started")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-fallback")
                    .nick("Frames fallback")
                    .blurb("Frames upscaled by the bilinear fallback instead of the model since the element started")
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("latency-mean-ms")
                    .nick("Mean latency")
                    .blurb("Mean milliseconds from a frame's arrival to its push downstream, over the frames \
                            pushed since the element started (waiting for a slot included)")
                    .minimum(0.0)
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("latency-max-ms")
                    .nick("Maximum latency")
                    .blurb("Most milliseconds any frame spent from arrival to push since the element started")
                    .minimum(0.0)
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if !MUTABLE_PLAYING.contains(&name) && self.obj().current_state() > gst::State::Ready {
            gst::warning!(
                CAT,
                imp = self,
                "{name} can only change in the NULL or READY state; ignored"
            );
            return;
        }
        let mut s = lock(&self.settings);
        match name {
            "model" => {
                s.model = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| DEFAULT_MODEL.into())
            }
            "tile-size" => s.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => s.tile_overlap = value.get().expect("type checked upstream"),
            "provider" => s.provider = value.get().expect("type checked upstream"),
            "precision" => s.precision = value.get().expect("type checked upstream"),
            "temporal" => s.temporal = value.get().expect("type checked upstream"),
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "streams" => s.streams = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "max-frames-in-flight" => {
                s.max_frames_in_flight = value.get().expect("type checked upstream")
            }
            "trt-cache-dir" => s.trt_cache_dir = value.get().expect("type checked upstream"),
            "on-overload" => s.on_overload = value.get().expect("type checked upstream"),
            "latency-budget" => {
                s.latency_budget_ms = value.get().expect("type checked upstream");
                let budget = Duration::from_millis(s.latency_budget_ms as u64);
                if let Some(state) = lock(&self.shared).state.as_mut() {
                    state.admission.set_budget(budget);
                }
            }
            "stats-interval" => s.stats_interval_ms = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", name, value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        let stats = || lock(&self.shared).stats.clone();
        match pspec.name() {
            "model" => s.model.to_value(),
            "tile-size" => s.tile_size.to_value(),
            "tile-overlap" => s.tile_overlap.to_value(),
            "provider" => s.provider.to_value(),
            "precision" => s.precision.to_value(),
            "temporal" => s.temporal.to_value(),
            "device-id" => s.device_id.to_value(),
            "streams" => s.streams.to_value(),
            "threads" => s.threads.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "max-frames-in-flight" => s.max_frames_in_flight.to_value(),
            "trt-cache-dir" => s.trt_cache_dir.to_value(),
            "on-overload" => s.on_overload.to_value(),
            "latency-budget" => s.latency_budget_ms.to_value(),
            "stats-interval" => s.stats_interval_ms.to_value(),
            "runs-on" => self.assembly().map(|a| a.runs_on()).to_value(),
            "frames-processed" => stats().processed.to_value(),
            "frames-dropped" => stats().dropped.to_value(),
            "frames-fallback" => stats().fallback.to_value(),
            "latency-mean-ms" => stats().latency_mean_ms().to_value(),
            "latency-max-ms" => stats().latency_max_ms.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for GendrSr {}

impl ElementImpl for GendrSr {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Tiled super-resolution",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales video with a one-step super-resolution ONNX model, tile by tile with seamless blending",
                "gendr developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = video::sized_caps(MAX_OUTPUT_EDGE);
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "state change {transition:?}");
        if transition == gst::StateChange::ReadyToPaused {
            if let Err(err) = self.start() {
                self.post_error_message(err);
                return Err(gst::StateChangeError);
            }
        }
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady
            || (result.is_err() && transition == gst::StateChange::ReadyToPaused)
        {
            lock(&self.shared).state.take();
        }
        result
    }
}
