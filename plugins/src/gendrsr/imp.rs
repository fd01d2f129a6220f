use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;

use gendr::engine::{Batch, Engine, EngineOptions};
use gendr::frame::{Colorimetry, Frame, PixelFormat, Plane, YuvMatrix, YuvRange};
use gendr::model::DEFAULT_MIN_OVERLAP;
use gendr::pipeline::{FramePipeline, Output, PipelineConfig};
use gendr::{limits, presets};

use super::{Overload, Provider};

const DEFAULT_MODEL: &str = presets::DEFAULT_PRESET;
const DEFAULT_TILE_SIZE: u32 = 0;
const DEFAULT_TILE_OVERLAP: u32 = DEFAULT_MIN_OVERLAP as u32;
const DEFAULT_PROVIDER: Provider = Provider::Auto;
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
/// The reported latency is raised when a frame takes this much longer…
const LATENCY_GROWTH: f64 = 1.25;
/// …to this multiple of what that frame took, so that it settles in a few steps.
const LATENCY_HEADROOM: f64 = 1.5;
/// Weight of the newest frame in the running per-frame inference time.
const SERVICE_SMOOTHING: f64 = 0.2;
/// Largest output edge; larger sizes fail negotiation instead of allocation.
const MAX_OUTPUT_EDGE: i32 = 16384;
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
    device_id: i32,
    streams: u32,
    threads: u32,
    batch_size: u32,
    max_frames_in_flight: u32,
    trt_cache_dir: Option<String>,
    on_overload: Overload,
    latency_budget_ms: u32,
    stats_interval_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: DEFAULT_MODEL.into(),
            tile_size: DEFAULT_TILE_SIZE,
            tile_overlap: DEFAULT_TILE_OVERLAP,
            provider: DEFAULT_PROVIDER,
            device_id: DEFAULT_DEVICE_ID,
            streams: DEFAULT_STREAMS,
            threads: DEFAULT_THREADS,
            batch_size: DEFAULT_BATCH_SIZE,
            max_frames_in_flight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
            trt_cache_dir: None,
            on_overload: DEFAULT_ON_OVERLOAD,
            latency_budget_ms: DEFAULT_LATENCY_BUDGET_MS,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
        }
    }
}

/// What travels through the frame pipeline beside each frame: the input
/// buffer's metadata, or a serialized event kept in order with the frames.
enum Item {
    Buffer(Input),
    /// A frame already upscaled by the fallback path, kept in order.
    Fallback(Frame, Input),
    Caps(gst::Event, gst_video::VideoInfo),
    Event(gst::Event),
}

/// An input buffer and what its latency is measured against.
struct Input {
    buffer: gst::Buffer,
    arrived: Instant,
    /// Model frames in flight ahead of this one when it went in.
    ahead: usize,
}

/// What `sink_chain` does with one frame.
enum Admit {
    Model {
        ahead: usize,
    },
    Fallback,
    /// Dropped; by how much it was late, where known.
    Drop(Option<gst::ClockTime>),
}

struct State {
    pipeline: Arc<FramePipeline<Item>>,
    scale: u32,
    in_info: Option<gst_video::VideoInfo>,
    /// The latency the element reports: an estimate from the timing run at
    /// caps at first, then raised to what frames really take.
    latency: gst::ClockTime,
    /// Inference time per tile, timed for the tile size of `timed_tile`.
    per_tile: Duration,
    timed_tile: Option<(usize, usize)>,
    batch: Batch,
    /// The tile geometry the pipeline uses, for the latency estimate.
    geometry: gendr::tiling::TileGeometry,
    streams: u32,
    max_frames_in_flight: u32,
    /// Slots in the frame pipeline: model frames, fallback frames and events.
    capacity: usize,
    overload: Overload,
    /// Frames sent to the model and not yet out.
    model_in_flight: usize,
    /// Running estimate of the inference time one frame adds to those queued.
    service: Duration,
    segment: gst::FormattedSegment<gst::ClockTime>,
    /// Upstream's minimum latency and liveness, from the last latency query.
    upstream_latency: gst::ClockTime,
    live: bool,
    /// Frames whose running time ends before this are already late downstream (QoS).
    earliest: Option<gst::ClockTime>,
}

/// Counters since the element started, for properties and bus messages.
#[derive(Debug, Default)]
struct Stats {
    processed: u64,
    dropped: u64,
    fallback: u64,
    latency_sum_ms: f64,
    latency_max_ms: f64,
    last_post: Option<Instant>,
}

impl Stats {
    fn latency_mean_ms(&self) -> f64 {
        let n = self.processed + self.fallback;
        if n == 0 {
            0.0
        } else {
            self.latency_sum_ms / n as f64
        }
    }

    fn structure(&self) -> gst::Structure {
        gst::Structure::builder("gendrsr-stats")
            .field("frames-processed", self.processed)
            .field("frames-dropped", self.dropped)
            .field("frames-fallback", self.fallback)
            .field("latency-mean-ms", self.latency_mean_ms())
            .field("latency-max-ms", self.latency_max_ms)
            .build()
    }
}

pub struct GendrSr {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
    /// The last flow return of the src-pad task, handed back to upstream.
    flow: Mutex<Result<gst::FlowSuccess, gst::FlowError>>,
    flushing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn pixel_format(format: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as F;
    Some(match format {
        F::I420 => PixelFormat::I420,
        F::Nv12 => PixelFormat::Nv12,
        F::Rgb => PixelFormat::Rgb,
        F::Bgr => PixelFormat::Bgr,
        F::Rgbx => PixelFormat::Rgbx,
        F::Bgrx => PixelFormat::Bgrx,
        F::Rgba => PixelFormat::Rgba,
        F::Bgra => PixelFormat::Bgra,
        _ => return None,
    })
}

fn colorimetry(info: &gst_video::VideoInfo) -> Colorimetry {
    let c = info.colorimetry();
    Colorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt601 => YuvMatrix::Bt601,
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            // Unknown: SD is BT.601, HD and up BT.709.
            _ if info.height() < 720 => YuvMatrix::Bt601,
            _ => YuvMatrix::Bt709,
        },
        range: match c.range() {
            gst_video::VideoColorRange::Range0_255 => YuvRange::Full,
            _ => YuvRange::Limited,
        },
    }
}

fn sized_caps(max: i32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list([
            gst_video::VideoFormat::I420,
            gst_video::VideoFormat::Nv12,
            gst_video::VideoFormat::Rgb,
            gst_video::VideoFormat::Bgr,
            gst_video::VideoFormat::Rgbx,
            gst_video::VideoFormat::Bgrx,
            gst_video::VideoFormat::Rgba,
            gst_video::VideoFormat::Bgra,
        ])
        .width_range(1..=max)
        .height_range(1..=max)
        .build()
}

/// Multiplies (towards src) or divides (towards sink) the sizes in `caps` by
/// `scale`. Sizes that cannot be divided exactly drop out.
fn transform_caps(caps: &gst::Caps, direction: gst::PadDirection, scale: u32) -> gst::Caps {
    if caps.is_any() {
        return caps.clone();
    }
    let scale = scale as i32;
    let map = |v: &glib::SendValue| -> Option<glib::SendValue> {
        if let Ok(n) = v.get::<i32>() {
            return match direction {
                gst::PadDirection::Sink => n.checked_mul(scale).map(|n| n.to_send_value()),
                _ => (n % scale == 0).then(|| (n / scale).to_send_value()),
            };
        }
        let range = v.get::<gst::IntRange<i32>>().ok()?;
        let (lo, hi) = match direction {
            gst::PadDirection::Sink => (
                range.min().saturating_mul(scale),
                range.max().saturating_mul(scale),
            ),
            _ => ((range.min() + scale - 1) / scale, range.max() / scale),
        };
        match lo.cmp(&hi) {
            std::cmp::Ordering::Less => Some(gst::IntRange::new(lo, hi).to_send_value()),
            std::cmp::Ordering::Equal => Some(lo.to_send_value()),
            std::cmp::Ordering::Greater => None,
        }
    };
    let mut out = gst::Caps::new_empty();
    {
        let out = out.get_mut().unwrap();
        for (s, features) in caps.iter_with_features() {
            let mut s = s.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                if let Ok(v) = s.value(field) {
                    match map(v) {
                        Some(v) => s.set_value(field, v),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.append_structure_full(s, Some(features.to_owned()));
            }
        }
    }
    out
}

impl GendrSr {
    fn scale(&self) -> Option<u32> {
        lock(&self.state).as_ref().map(|s| s.scale)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let path = presets::resolve(&settings.model)
            .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{}", e)))?;
        let options = EngineOptions {
            provider: settings.provider.into(),
            device_id: settings.device_id,
            threads: settings.threads as usize,
            trt_cache: settings
                .trt_cache_dir
                .clone()
                .map(std::path::PathBuf::from)
                .or_else(gendr::engine::default_trt_cache_root),
        };
        let mut engines = Engine::load_workers(&path, &options, settings.streams as usize)
            .map_err(|e| match e {
                gendr::Error::RuntimeMissing { .. }
                | gendr::Error::RuntimeLoad { .. }
                | gendr::Error::ProviderUnavailable { .. } => {
                    gst::error_msg!(gst::LibraryError::Init, ("{}", e))
                }
                _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
            })?;
        let streams = engines.len();
        let (scale, info, provider) = (
            engines[0].scale,
            engines[0].info.clone(),
            engines[0].provider,
        );
        let (geometry, notes) = info
            .geometry(
                scale,
                settings.tile_size as usize,
                settings.tile_overlap as usize,
            )
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        for note in notes {
            gst::info!(CAT, imp = self, "{note}");
        }
        // One run of the smallest tile checks that the model really runs;
        // a tile of the stream's own size is timed once caps say what it is.
        let (tw, th) = geometry
            .plan(1, 1)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?
            .tile_size();
        let batch = engines[0].batch(settings.batch_size as usize);
        let warm_up = batch.run_size(1);
        let started = Instant::now();
        engines[0]
            .run(&vec![0.5; warm_up * 3 * tw * th], warm_up, th, tw)
            .map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Failed,
                    ("model {}: {}", path.display(), e)
                )
            })?;
        gst::info!(
            CAT,
            imp = self,
            "model {} (×{scale}, {}) on {provider}: tiles up to {}x{} with {} px overlap; a {tw}x{th} tile ran in {:?}",
            path.display(),
            info.precision.as_str(),
            geometry.tile_width,
            geometry.tile_height,
            geometry.overlap,
            started.elapsed()
        );
        let capacity = match settings.on_overload {
            Overload::Block => settings.max_frames_in_flight,
            Overload::Drop | Overload::Fallback => settings.max_frames_in_flight + EXTRA_SLOTS,
        } as usize;
        let config = PipelineConfig {
            geometry,
            max_frames_in_flight: capacity,
            batch,
        };
        let pipeline = FramePipeline::start(config, engines)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        *lock(&self.state) = Some(State {
            pipeline: Arc::new(pipeline),
            geometry,
            scale: scale as u32,
            in_info: None,
            latency: gst::ClockTime::ZERO,
            per_tile: Duration::ZERO,
            timed_tile: None,
            batch,
            streams: streams as u32,
            max_frames_in_flight: settings.max_frames_in_flight,
            capacity,
            overload: settings.on_overload,
            model_in_flight: 0,
            service: Duration::ZERO,
            segment: gst::FormattedSegment::new(),
            upstream_latency: gst::ClockTime::ZERO,
            live: false,
            earliest: None,
        });
        *lock(&self.stats) = Stats {
            last_post: Some(Instant::now()),
            ..Stats::default()
        };
        *lock(&self.flow) = Ok(gst::FlowSuccess::Ok);
        Ok(())
    }

    fn stop(&self) {
        if let Some(state) = lock(&self.state).as_ref() {
            state.pipeline.close();
            state.pipeline.flush();
        }
    }

    fn pipeline(&self) -> Option<Arc<FramePipeline<Item>>> {
        lock(&self.state).as_ref().map(|s| s.pipeline.clone())
    }

    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.flushing.load(Ordering::SeqCst) {
            return Err(gst::FlowError::Flushing);
        }
        (*lock(&self.flow))?;
        let arrived = Instant::now();
        let budget = Duration::from_millis(lock(&self.settings).latency_budget_ms as u64);
        let (pipeline, info, scale, admit) = {
            let mut state = lock(&self.state);
            let Some(state) = state.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let Some(info) = state.in_info.clone() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("buffer before caps"));
                return Err(gst::FlowError::NotNegotiated);
            };
            let admit = self.admit(state, &buffer, budget);
            (state.pipeline.clone(), info, state.scale, admit)
        };
        if let Admit::Drop(late) = admit {
            self.dropped(&buffer, late);
            return *lock(&self.flow);
        }
        let frame = self.input_frame(&buffer, &info)?;
        let input = |ahead| Input {
            buffer: buffer.clone(),
            arrived,
            ahead,
        };
        let submitted = match admit {
            Admit::Model { ahead } => pipeline.submit(frame, Item::Buffer(input(ahead))),
            _ => match gendr::fallback::upscale(&frame, scale as usize) {
                Ok(frame) => pipeline.submit_marker(Item::Fallback(frame, input(0))),
                Err(e) => {
                    gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                    return Err(gst::FlowError::Error);
                }
            },
        };
        match submitted {
            Ok(()) => *lock(&self.flow),
            Err(_) => Err(gst::FlowError::Flushing),
        }
    }

    /// Decides where a frame goes. Under `block` everything goes to the model;
    /// otherwise a frame goes to the model only while the frames queued for
    /// it are expected to come out within the latency budget, and only if it
    /// is not already late. A model with nothing in flight always gets the
    /// frame, so that its timing estimate keeps up.
    fn admit(&self, state: &mut State, buffer: &gst::Buffer, budget: Duration) -> Admit {
        if state.overload == Overload::Block {
            state.model_in_flight += 1;
            return Admit::Model {
                ahead: state.model_in_flight - 1,
            };
        }
        let late = self.lateness(state, buffer);
        let budget_ct = gst::ClockTime::from_nseconds(budget.as_nanos() as u64);
        let too_late = late.is_some_and(|l| l > budget_ct);
        let qos_late = match (state.earliest, state.segment.to_running_time(buffer.pts())) {
            (Some(earliest), Some(rt)) => {
                rt + buffer.duration().unwrap_or(gst::ClockTime::ZERO) < earliest
            }
            _ => false,
        };
        let queued = state.model_in_flight;
        let expected = state
            .service
            .checked_mul(queued as u32 + 1)
            .unwrap_or(Duration::MAX);
        let model_ok =
            queued == 0 || (queued < state.max_frames_in_flight as usize && expected <= budget);
        if model_ok && !too_late && !qos_late {
            state.model_in_flight += 1;
            return Admit::Model { ahead: queued };
        }
        gst::trace!(
            CAT,
            imp = self,
            "overload: {queued} queued (expect {expected:?}), late {late:?}, qos late {qos_late}"
        );
        let room = state.pipeline.in_flight() < state.capacity;
        match state.overload {
            Overload::Fallback if room && !too_late => Admit::Fallback,
            _ => Admit::Drop(late),
        }
    }

    /// How late a frame arrives: the clock's running time against the
    /// frame's, less what upstream declared as its latency.
    fn lateness(&self, state: &State, buffer: &gst::Buffer) -> Option<gst::ClockTime> {
        let obj = self.obj();
        if obj.current_state() != gst::State::Playing {
            return None;
        }
        let now = obj.current_running_time()?;
        let rt = state.segment.to_running_time(buffer.pts())?;
        now.checked_sub(rt)?.checked_sub(state.upstream_latency)
    }

    /// Counts a dropped frame and says so on the bus, as a QoS message.
    fn dropped(&self, buffer: &gst::Buffer, late: Option<gst::ClockTime>) {
        let (processed, dropped) = {
            let mut stats = lock(&self.stats);
            stats.dropped += 1;
            (stats.processed + stats.fallback, stats.dropped)
        };
        let (live, running_time, stream_time) = match lock(&self.state).as_ref() {
            Some(s) => (
                s.live,
                s.segment.to_running_time(buffer.pts()),
                s.segment.to_stream_time(buffer.pts()),
            ),
            None => (false, None, None),
        };
        gst::debug!(
            CAT,
            imp = self,
            "dropping frame {:?} (late {late:?}), {dropped} dropped",
            buffer.pts()
        );
        let jitter = late.map_or(0, |l| l.nseconds() as i64);
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

    /// Copies a buffer into a [`Frame`].
    fn input_frame(
        &self,
        buffer: &gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<Frame, gst::FlowError> {
        let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
            .map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("buffer does not match its caps")
                );
                gst::FlowError::Error
            })?;
        let format = pixel_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?;
        let planes = (0..vframe.n_planes())
            .map(|i| {
                let stride = vframe.plane_stride()[i as usize] as usize;
                let data = vframe.plane_data(i).map(<[u8]>::to_vec).unwrap_or_default();
                Plane { data, stride }
            })
            .collect();
        Frame::from_planes(
            format,
            info.width() as usize,
            info.height() as usize,
            colorimetry(info),
            planes,
        )
        .map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{}", e));
            gst::FlowError::Error
        })
    }

    /// Queues a serialized event behind the frames before it.
    fn queue_event(&self, event: gst::Event, item: impl FnOnce(gst::Event) -> Item) -> bool {
        match self.pipeline() {
            Some(pipeline) => pipeline.submit_marker(item(event)).is_ok(),
            None => false,
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "sink event {:?}", event.type_());
        match event.view() {
            EventView::FlushStart(_) => {
                self.flushing.store(true, Ordering::SeqCst);
                if let Some(pipeline) = self.pipeline() {
                    pipeline.flush();
                }
                let forwarded = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                forwarded
            }
            EventView::FlushStop(_) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.pipeline.flush();
                    state.model_in_flight = 0;
                    state.earliest = None;
                }
                *lock(&self.flow) = Ok(gst::FlowSuccess::Ok);
                self.flushing.store(false, Ordering::SeqCst);
                let forwarded = self.srcpad.push_event(event);
                forwarded && self.start_task().is_ok()
            }
            EventView::Caps(c) => {
                let caps = c.caps_owned();
                match self.set_caps(&caps) {
                    Ok((out_caps, out_info)) => self
                        .queue_event(gst::event::Caps::new(&out_caps), |e| {
                            Item::Caps(e, out_info)
                        }),
                    Err(err) => {
                        err.log_with_imp(self);
                        false
                    }
                }
            }
            EventView::Segment(e) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    match e.segment().downcast_ref::<gst::ClockTime>() {
                        Some(segment) => state.segment = segment.clone(),
                        None => gst::warning!(CAT, imp = self, "segment not in time format"),
                    }
                    state.earliest = None;
                }
                self.queue_event(event, Item::Event)
            }
            _ if event.is_serialized() => self.queue_event(event, Item::Event),
            _ => self.srcpad.push_event(event),
        }
    }

    fn set_caps(
        &self,
        caps: &gst::Caps,
    ) -> Result<(gst::Caps, gst_video::VideoInfo), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "unusable caps {caps}"))?;
        self.time_tile(info.width() as usize, info.height() as usize)?;
        let mut state = lock(&self.state);
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before the element started"))?;
        let s = state.scale;
        let (w, h) = (info.width().checked_mul(s), info.height().checked_mul(s));
        // Checked here as well as in caps queries: upstream may not have asked.
        let (Some(w), Some(h)) = (w, h) else {
            return Err(gst::loggable_error!(
                CAT,
                "{}x{} ×{s} overflows",
                info.width(),
                info.height()
            ));
        };
        if w > MAX_OUTPUT_EDGE as u32 || h > MAX_OUTPUT_EDGE as u32 {
            return Err(gst::loggable_error!(
                CAT,
                "{w}x{h} output exceeds {MAX_OUTPUT_EDGE} pixels per edge"
            ));
        }
        // Everything but the size carries over as upstream said it.
        let out_caps = transform_caps(caps, gst::PadDirection::Sink, s);
        let out_info = gst_video::VideoInfo::from_caps(&out_caps)
            .map_err(|e| gst::loggable_error!(CAT, "output caps {out_caps}: {e}"))?;
        // The frame spends its tiles' inference time inside, spread over the workers.
        let tiles = state
            .geometry
            .plan(info.width() as usize, info.height() as usize)
            .map_err(|e| gst::loggable_error!(CAT, "{e}"))?
            .len();
        let geometry_tiles = state.per_tile.as_secs_f64() * tiles as f64 / state.streams as f64;
        let resized = state
            .in_info
            .as_ref()
            .is_none_or(|old| (old.width(), old.height()) != (info.width(), info.height()));
        if resized {
            state.latency = gst::ClockTime::from_nseconds((geometry_tiles * 1e9) as u64);
            state.service = Duration::try_from_secs_f64(geometry_tiles).unwrap_or(state.per_tile);
        }
        gst::debug!(
            CAT,
            imp = self,
            "caps {caps} → {out_caps}, latency {}",
            state.latency
        );
        state.in_info = Some(info);
        Ok((out_caps, out_info))
    }

    /// Times one inference run of the tiles a `width × height` frame uses,
    /// unless that tile size is timed already. The run waits behind the
    /// frames in flight, so the state is not held meanwhile.
    fn time_tile(&self, width: usize, height: usize) -> Result<(), gst::LoggableError> {
        let (pipeline, plan, batch) = {
            let state = lock(&self.state);
            let state = state
                .as_ref()
                .ok_or_else(|| gst::loggable_error!(CAT, "caps before the element started"))?;
            let plan = state
                .geometry
                .plan(width, height)
                .map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
            if state.timed_tile == Some(plan.tile_size()) {
                return Ok(());
            }
            (state.pipeline.clone(), plan, state.batch)
        };
        let size = plan.tile_size();
        let tiles = batch.chunk(plan.len());
        let took = pipeline
            .time_run(size, batch.run_size(tiles))
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Failed,
                    ("a {}x{} tile failed: {e}", size.0, size.1)
                );
                gst::loggable_error!(CAT, "timing run: {e}")
            })?;
        gst::info!(
            CAT,
            imp = self,
            "{width}x{height} frames: {} tiles of {}x{}, {tiles} per run, {took:?} per run",
            plan.len(),
            size.0,
            size.1
        );
        if let Some(state) = lock(&self.state).as_mut() {
            state.per_tile = took / tiles as u32;
            state.timed_tile = Some(size);
        }
        Ok(())
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        match query.view_mut() {
            QueryViewMut::Caps(q) => {
                let caps = self.query_caps(pad, q.filter_owned().as_ref());
                q.set_result(&caps);
                true
            }
            // Upstream allocates input frames its own way; our sizes differ from downstream's.
            QueryViewMut::Allocation(_) => false,
            QueryViewMut::Drain(_) => {
                self.wait_drained();
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    fn wait_drained(&self) {
        if let Some(pipeline) = self.pipeline() {
            while pipeline.in_flight() > 0
                && !self.flushing.load(Ordering::SeqCst)
                && lock(&self.flow).is_ok()
            {
                std::thread::sleep(Duration::from_millis(2));
            }
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
        let other_filter = filter.map(|f| transform_caps(f, direction, scale));
        let peer = other.peer_query_caps(other_filter.as_ref());
        let mut caps = transform_caps(&peer, opposite, scale).intersect(&template);
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
            if let (Some(state), Some(timestamp)) = (lock(&self.state).as_mut(), timestamp) {
                // As GstVideoDecoder does: when late, skip ahead twice as far
                // as the lateness so that the pipeline can catch up.
                let late = gst::ClockTime::from_nseconds(diff.unsigned_abs());
                state.earliest = Some(if diff > 0 {
                    timestamp + late * 2
                } else {
                    timestamp.saturating_sub(late)
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
                let (ours, slack) = match lock(&self.state).as_mut() {
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
                        (s.latency, frame * s.max_frames_in_flight as u64)
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
        let mut out_info: Option<gst_video::VideoInfo> = None;
        self.srcpad.start_task(move || {
            if let Some(element) = element.upgrade() {
                element.imp().src_loop(&pipeline, &mut out_info);
            }
        })
    }

    fn src_activate(&self, mode: gst::PadMode, active: bool) -> Result<(), gst::LoggableError> {
        if mode != gst::PadMode::Push {
            return Err(gst::loggable_error!(CAT, "only push mode is supported"));
        }
        if active {
            self.flushing.store(false, Ordering::SeqCst);
            self.start_task()
                .map_err(|e| gst::loggable_error!(CAT, "starting the src task: {e}"))
        } else {
            self.flushing.store(true, Ordering::SeqCst);
            self.stop();
            self.srcpad
                .stop_task()
                .map_err(|e| gst::loggable_error!(CAT, "stopping the src task: {e}"))
        }
    }

    /// One turn of the src-pad task: push the next output, in order.
    fn src_loop(
        &self,
        pipeline: &FramePipeline<Item>,
        out_info: &mut Option<gst_video::VideoInfo>,
    ) {
        self.post_stats();
        let Some(output) = pipeline.recv_timeout(POLL) else {
            return;
        };
        let flow = match output {
            Output::Frame {
                frame,
                meta: Item::Buffer(input),
                latency,
            } => {
                gst::trace!(
                    CAT,
                    imp = self,
                    "frame {:?} out after {latency:?}",
                    input.buffer.pts()
                );
                self.model_done(&input, Some(latency));
                self.push_frame(&frame, &input, out_info.as_ref(), false)
            }
            Output::Frame { .. } => Ok(gst::FlowSuccess::Ok),
            Output::Marker(Item::Fallback(frame, input)) => {
                self.push_frame(&frame, &input, out_info.as_ref(), true)
            }
            Output::Marker(Item::Caps(event, info)) => {
                *out_info = Some(info);
                self.push_serialized(event)
            }
            Output::Marker(Item::Event(event)) => self.push_serialized(event),
            Output::Marker(Item::Buffer(_)) => Ok(gst::FlowSuccess::Ok),
            Output::Failed { error, meta } => {
                if let Item::Buffer(input) = &meta {
                    self.model_done(input, None);
                }
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", error));
                Err(gst::FlowError::Error)
            }
        };
        *lock(&self.flow) = flow;
        match flow {
            Ok(_) => {}
            Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {
                let _ = self.srcpad.pause_task();
            }
            Err(err) => {
                if err != gst::FlowError::Error {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("streaming stopped: {err:?}")
                    );
                }
                self.srcpad.push_event(gst::event::Eos::new());
                let _ = self.srcpad.pause_task();
            }
        }
    }

    /// A model frame is out: one fewer queued, and the per-frame inference
    /// time estimate learns from how long it took behind those ahead of it.
    fn model_done(&self, input: &Input, latency: Option<Duration>) {
        if let Some(state) = lock(&self.state).as_mut() {
            state.model_in_flight = state.model_in_flight.saturating_sub(1);
            if let Some(latency) = latency {
                let sample = latency.as_secs_f64() / (input.ahead + 1) as f64;
                let old = state.service.as_secs_f64();
                let new = old + SERVICE_SMOOTHING * (sample - old);
                state.service = Duration::try_from_secs_f64(new).unwrap_or(state.service);
            }
        }
    }

    /// Pushes an upscaled frame with its input's timestamps, and accounts for
    /// the time it spent in the element.
    fn push_frame(
        &self,
        frame: &Frame,
        input: &Input,
        info: Option<&gst_video::VideoInfo>,
        fallback: bool,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(info) = info else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let buffer = match self.output_buffer(frame, &input.buffer, info) {
            Ok(buffer) => buffer,
            Err(e) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                return Err(gst::FlowError::Error);
            }
        };
        self.account(input.arrived.elapsed(), fallback);
        self.srcpad.push(buffer)
    }

    fn account(&self, took: Duration, fallback: bool) {
        let ms = took.as_secs_f64() * 1e3;
        {
            let mut stats = lock(&self.stats);
            if fallback {
                stats.fallback += 1;
            } else {
                stats.processed += 1;
            }
            stats.latency_sum_ms += ms;
            stats.latency_max_ms = stats.latency_max_ms.max(ms);
        }
        // Live sinks schedule by the latency we report: when frames take
        // notably longer, raise it and have the pipeline redistribute.
        let raised = match lock(&self.state).as_mut() {
            Some(state) if ms > state.latency.nseconds() as f64 / 1e6 * LATENCY_GROWTH => {
                state.latency = gst::ClockTime::from_nseconds(
                    (took.as_nanos() as f64 * LATENCY_HEADROOM) as u64,
                );
                Some(state.latency)
            }
            _ => None,
        };
        if let Some(latency) = raised {
            gst::info!(
                CAT,
                imp = self,
                "frames take {took:?}; latency raised to {latency}"
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    /// Posts the `gendrsr-stats` element message every `stats-interval`.
    fn post_stats(&self) {
        let interval = lock(&self.settings).stats_interval_ms;
        if interval == 0 {
            return;
        }
        let structure = {
            let mut stats = lock(&self.stats);
            let due = stats
                .last_post
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(interval as u64));
            if !due {
                return;
            }
            stats.last_post = Some(Instant::now());
            stats.structure()
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

    fn output_buffer(
        &self,
        frame: &Frame,
        input: &gst::Buffer,
        info: &gst_video::VideoInfo,
    ) -> Result<gst::Buffer, String> {
        if (frame.width, frame.height) != (info.width() as usize, info.height() as usize) {
            return Err(format!(
                "{}x{} frame for {}x{} caps",
                frame.width,
                frame.height,
                info.width(),
                info.height()
            ));
        }
        let mut buffer = gst::Buffer::with_size(info.size()).map_err(|e| e.to_string())?;
        {
            let buf = buffer.get_mut().expect("new buffer is writable");
            buf.set_pts(input.pts());
            buf.set_dts(input.dts());
            buf.set_duration(input.duration());
            buf.set_offset(input.offset());
            buf.set_offset_end(input.offset_end());
            buf.set_flags(input.flags() & !(gst::BufferFlags::GAP | gst::BufferFlags::TAG_MEMORY));
            let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
                .map_err(|e| e.to_string())?;
            for (i, _) in frame.planes.iter().enumerate() {
                let stride = vframe.plane_stride()[i] as usize;
                let dst = vframe.plane_data_mut(i as u32).map_err(|e| e.to_string())?;
                for (y, row) in frame.rows(i).enumerate() {
                    dst[y * stride..y * stride + row.len()].copy_from_slice(row);
                }
            }
        }
        Ok(buffer)
    }
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
            state: Mutex::new(None),
            stats: Mutex::new(Stats::default()),
            flow: Mutex::new(Ok(gst::FlowSuccess::Ok)),
            flushing: AtomicBool::new(true),
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
                    .blurb("ONNX Runtime execution provider; a forced one that cannot load is an error")
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
        let mut s = lock(&self.settings);
        match pspec.name() {
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
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "streams" => s.streams = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "batch-size" => s.batch_size = value.get().expect("type checked upstream"),
            "max-frames-in-flight" => {
                s.max_frames_in_flight = value.get().expect("type checked upstream")
            }
            "trt-cache-dir" => s.trt_cache_dir = value.get().expect("type checked upstream"),
            "on-overload" => s.on_overload = value.get().expect("type checked upstream"),
            "latency-budget" => s.latency_budget_ms = value.get().expect("type checked upstream"),
            "stats-interval" => s.stats_interval_ms = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "model" => s.model.to_value(),
            "tile-size" => s.tile_size.to_value(),
            "tile-overlap" => s.tile_overlap.to_value(),
            "provider" => s.provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "streams" => s.streams.to_value(),
            "threads" => s.threads.to_value(),
            "batch-size" => s.batch_size.to_value(),
            "max-frames-in-flight" => s.max_frames_in_flight.to_value(),
            "trt-cache-dir" => s.trt_cache_dir.to_value(),
            "on-overload" => s.on_overload.to_value(),
            "latency-budget" => s.latency_budget_ms.to_value(),
            "stats-interval" => s.stats_interval_ms.to_value(),
            "frames-processed" => lock(&self.stats).processed.to_value(),
            "frames-dropped" => lock(&self.stats).dropped.to_value(),
            "frames-fallback" => lock(&self.stats).fallback.to_value(),
            "latency-mean-ms" => lock(&self.stats).latency_mean_ms().to_value(),
            "latency-max-ms" => lock(&self.stats).latency_max_ms.to_value(),
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
            let caps = sized_caps(MAX_OUTPUT_EDGE);
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
            lock(&self.state).take();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> gst::Caps {
        gst::init().unwrap();
        s.parse().unwrap()
    }

    #[test]
    fn fixed_sizes_scale_both_ways() {
        let sink = caps("video/x-raw,format=I420,width=320,height=180,framerate=25/1");
        let src = transform_caps(&sink, gst::PadDirection::Sink, 2);
        assert_eq!(
            src,
            caps("video/x-raw,format=I420,width=640,height=360,framerate=25/1")
        );
        assert_eq!(transform_caps(&src, gst::PadDirection::Src, 2), sink);
    }

    #[test]
    fn sizes_that_do_not_divide_drop_out() {
        let src = caps("video/x-raw,width=641,height=360; video/x-raw,width=640,height=360");
        let sink = transform_caps(&src, gst::PadDirection::Src, 2);
        assert_eq!(sink, caps("video/x-raw,width=320,height=180"));
    }

    #[test]
    fn ranges_shrink_to_what_the_scale_can_reach() {
        let src = caps("video/x-raw,width=[3,16384],height=[1,7]");
        let sink = transform_caps(&src, gst::PadDirection::Src, 4);
        assert_eq!(sink, caps("video/x-raw,width=[1,4096],height=1"));
        let up = transform_caps(
            &caps("video/x-raw,width=[1,2147483647]"),
            gst::PadDirection::Sink,
            2,
        );
        assert_eq!(up, caps("video/x-raw,width=[2,2147483647]"));
        let none = transform_caps(&caps("video/x-raw,height=[1,3]"), gst::PadDirection::Src, 4);
        assert!(none.is_empty());
    }

    #[test]
    fn any_stays_any() {
        gst::init().unwrap();
        assert!(transform_caps(&gst::Caps::new_any(), gst::PadDirection::Src, 2).is_any());
    }
}
