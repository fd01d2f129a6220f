use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;

use gendr::engine::{Engine, EngineOptions};
use gendr::frame::{Colorimetry, Frame, PixelFormat, Plane, YuvMatrix, YuvRange};
use gendr::model::DEFAULT_MIN_OVERLAP;
use gendr::pipeline::{FramePipeline, Output, PipelineConfig};
use gendr::presets;

use super::Provider;

const DEFAULT_MODEL: &str = presets::DEFAULT_PRESET;
const DEFAULT_TILE_SIZE: u32 = 0;
const DEFAULT_TILE_OVERLAP: u32 = DEFAULT_MIN_OVERLAP as u32;
const DEFAULT_PROVIDER: Provider = Provider::Auto;
const DEFAULT_DEVICE_ID: i32 = 0;
const DEFAULT_STREAMS: u32 = 1;
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_MAX_FRAMES_IN_FLIGHT: u32 = 4;
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
    max_frames_in_flight: u32,
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
            max_frames_in_flight: DEFAULT_MAX_FRAMES_IN_FLIGHT,
        }
    }
}

/// What travels through the frame pipeline beside each frame: the input
/// buffer's metadata, or a serialized event kept in order with the frames.
enum Item {
    Buffer(gst::Buffer),
    Caps(gst::Event, gst_video::VideoInfo),
    Event(gst::Event),
}

struct State {
    pipeline: Arc<FramePipeline<Item>>,
    scale: u32,
    in_info: Option<gst_video::VideoInfo>,
    /// Estimated time one frame spends inside the element.
    latency: gst::ClockTime,
    per_tile: Duration,
    streams: u32,
    max_frames_in_flight: u32,
}

pub struct GendrSr {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
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
            trt_cache: None,
        };
        let load = |_| {
            Engine::load(&path, &options).map_err(|e| match e {
                gendr::Error::RuntimeMissing { .. } | gendr::Error::RuntimeLoad { .. } => {
                    gst::error_msg!(gst::LibraryError::Init, ("{}", e))
                }
                gendr::Error::ProviderUnavailable { .. } => {
                    gst::error_msg!(gst::LibraryError::Init, ("{}", e))
                }
                _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
            })
        };
        let mut engines = (0..settings.streams.max(1))
            .map(load)
            .collect::<Result<Vec<_>, _>>()?;
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
        // One warm-up run checks that the model really runs, and times a tile.
        let (tw, th) = (geometry.tile_width, geometry.tile_height);
        let batch = info.fixed_batch.unwrap_or(1);
        let started = Instant::now();
        engines[0]
            .run(&vec![0.5; batch * 3 * tw * th], batch, th, tw)
            .map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Failed,
                    ("model {}: {}", path.display(), e)
                )
            })?;
        let per_tile = started.elapsed();
        gst::info!(
            CAT,
            imp = self,
            "model {} (×{scale}, {}) on {provider}: tiles {tw}x{th} with {} px overlap, {per_tile:?} per tile",
            path.display(),
            info.precision.as_str(),
            geometry.overlap
        );
        let config = PipelineConfig {
            geometry,
            max_frames_in_flight: settings.max_frames_in_flight as usize,
            batch,
        };
        let pipeline = FramePipeline::start(config, engines)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
        *lock(&self.state) = Some(State {
            pipeline: Arc::new(pipeline),
            scale: scale as u32,
            in_info: None,
            latency: gst::ClockTime::ZERO,
            per_tile,
            streams: settings.streams.max(1),
            max_frames_in_flight: settings.max_frames_in_flight,
        });
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
        let (pipeline, info) = {
            let state = lock(&self.state);
            let Some(state) = state.as_ref() else {
                return Err(gst::FlowError::Flushing);
            };
            let Some(info) = state.in_info.clone() else {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("buffer before caps"));
                return Err(gst::FlowError::NotNegotiated);
            };
            (state.pipeline.clone(), info)
        };
        let frame = {
            let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
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
                colorimetry(&info),
                planes,
            )
            .map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Format, ("{}", e));
                gst::FlowError::Error
            })?
        };
        match pipeline.submit(frame, Item::Buffer(buffer)) {
            Ok(()) => *lock(&self.flow),
            Err(_) => Err(gst::FlowError::Flushing),
        }
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
                if let Some(pipeline) = self.pipeline() {
                    pipeline.flush();
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
        let geometry_tiles = {
            let tile = state.per_tile.as_secs_f64();
            tile * tiles_for(&self.settings, info.width(), info.height()) as f64
                / state.streams as f64
        };
        state.latency = gst::ClockTime::from_nseconds((geometry_tiles * 1e9) as u64);
        gst::debug!(
            CAT,
            imp = self,
            "caps {caps} → {out_caps}, latency {}",
            state.latency
        );
        state.in_info = Some(info);
        Ok((out_caps, out_info))
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
                let (ours, slack) = match lock(&self.state).as_ref() {
                    Some(s) => {
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
                    input.pts()
                );
                match out_info
                    .as_ref()
                    .map(|info| self.output_buffer(&frame, &input, info))
                {
                    Some(Ok(buffer)) => self.srcpad.push(buffer),
                    Some(Err(e)) => {
                        gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                        Err(gst::FlowError::Error)
                    }
                    None => Err(gst::FlowError::NotNegotiated),
                }
            }
            Output::Frame { .. } => Ok(gst::FlowSuccess::Ok),
            Output::Marker(Item::Caps(event, info)) => {
                *out_info = Some(info);
                self.push_serialized(event)
            }
            Output::Marker(Item::Event(event)) => self.push_serialized(event),
            Output::Marker(Item::Buffer(_)) => Ok(gst::FlowSuccess::Ok),
            Output::Failed { error, .. } => {
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

/// How many tiles a frame of this size needs under the current settings,
/// for the latency estimate.
fn tiles_for(settings: &Mutex<Settings>, width: u32, height: u32) -> usize {
    let s = lock(settings);
    let tile = if s.tile_size == 0 {
        256
    } else {
        s.tile_size as usize
    };
    let step = tile.saturating_sub(3 * s.tile_overlap as usize).max(1);
    (width as usize).div_ceil(step) * (height as usize).div_ceil(step)
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
                    .maximum(8192)
                    .default_value(DEFAULT_TILE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Context around each tile in input pixels; neighbours are blended over as much again. \
                            Raised to the model's minimum")
                    .maximum(1024)
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
                    .minimum(0)
                    .maximum(255)
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("streams")
                    .nick("Streams")
                    .blurb("Inference workers in flight, each with its own ONNX Runtime session")
                    .minimum(1)
                    .maximum(16)
                    .default_value(DEFAULT_STREAMS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Intra-op threads per worker; 0 = all cores")
                    .maximum(256)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-frames-in-flight")
                    .nick("Max frames in flight")
                    .blurb("Frames inside the element at once (bounds memory and latency; upstream waits beyond it)")
                    .minimum(1)
                    .maximum(64)
                    .default_value(DEFAULT_MAX_FRAMES_IN_FLIGHT)
                    .mutable_ready()
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
            "max-frames-in-flight" => {
                s.max_frames_in_flight = value.get().expect("type checked upstream")
            }
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
            "max-frames-in-flight" => s.max_frames_in_flight.to_value(),
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
