//! The output pipeline: appsrc → gendrsr → x264enc → the sink, which keeps
//! running while the source side is rebuilt.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;

use super::access::Access;
use super::endpoint::Sink;
use super::rtsp::RtspServer;
use super::status::Counters;
use super::LiveRequest;
use gendr_archive::media;

pub struct Output {
    pub pipeline: gst::Pipeline,
    pub appsrc: gst_app::AppSrc,
    pub sr: gst::Element,
    /// The server behind an `rtsp://` output, stopped after the pipeline.
    rtsp: Option<RtspServer>,
}

impl Output {
    pub fn build(
        request: &LiveRequest,
        sink: &Sink,
        access: &Access,
        counters: &Arc<Counters>,
    ) -> Result<Output> {
        let pipeline = gst::Pipeline::with_name("gendr-live-output");
        let appsrc = gst_app::AppSrc::builder()
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(4)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let sr = request.sr.element()?;
        sr.set_property_from_str("on-overload", &request.on_overload.to_string());
        sr.set_property("latency-budget", request.latency_ms);
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let keyint = match sink {
            Sink::Hls { .. } => 30 * request.segment_secs,
            _ => 60,
        };
        let encoder = gst::ElementFactory::make("x264enc")
            .property_from_str("tune", "zerolatency")
            .property_from_str("speed-preset", &request.preset)
            .property("bitrate", request.bitrate)
            .property("key-int-max", keyint)
            .build()
            .context("x264enc (gst-plugins-ugly)")?;
        let parse = gst::ElementFactory::make("h264parse")
            .property("config-interval", -1i32)
            .build()?;
        let (tail, rtsp) = match sink {
            Sink::Rtsp {
                addresses,
                port,
                mount,
            } => {
                let appsink = gst_app::AppSink::builder()
                    .caps(
                        &gst::Caps::builder("video/x-h264")
                            .field("stream-format", "byte-stream")
                            .field("alignment", "au")
                            .build(),
                    )
                    .sync(false)
                    .build();
                let server = RtspServer::start(
                    addresses,
                    *port,
                    mount,
                    access.rtsp_user.as_ref(),
                    &appsink,
                )?;
                (vec![appsink.upcast()], Some(server))
            }
            _ => (sink_elements(sink, access, request.segment_secs)?, None),
        };
        let mut chain: Vec<gst::Element> = vec![
            appsrc.clone().upcast(),
            sr.clone(),
            convert,
            encoder,
            parse.clone(),
        ];
        chain.extend(tail);
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;

        {
            let counters = counters.clone();
            sr.static_pad("sink").context("gendrsr sink")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |_, _| {
                    counters.frames_to_sr.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        {
            let counters = counters.clone();
            sr.static_pad("src").context("gendrsr src")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |_, _| {
                    counters.frames_out.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        {
            let counters = counters.clone();
            let weak = pipeline.downgrade();
            parse.static_pad("src").context("h264parse src")?.add_probe(
                gst::PadProbeType::BUFFER,
                move |pad, info| {
                    let (Some(buffer), Some(pipeline)) = (info.buffer(), weak.upgrade()) else {
                        return gst::PadProbeReturn::Ok;
                    };
                    // x264enc shifts timestamps by 1000 h in its segment: compare running times.
                    let segment = pad.sticky_event::<gst::event::Segment>(0);
                    let rt = segment.and_then(|s| {
                        s.segment()
                            .downcast_ref::<gst::ClockTime>()
                            .and_then(|s| s.to_running_time(buffer.pts()))
                    });
                    if let (Some(rt), Some(now)) = (rt, pipeline.current_running_time()) {
                        let ms = now.saturating_sub(rt).nseconds() as f64 / 1e6;
                        counters.record_e2e(ms);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        Ok(Output {
            pipeline,
            appsrc,
            sr,
            rtsp,
        })
    }

    pub fn first_error(&self) -> Option<anyhow::Error> {
        media::first_error(&self.pipeline.bus()?, |err| {
            anyhow!("{}", media::error_text(err))
        })
    }

    /// Ends the stream (when `clean`) so that files are finalised, stops the
    /// pipeline and returns a summary line.
    pub fn finish(&self, clean: bool, counters: &Counters) -> String {
        if clean {
            let _ = self.appsrc.end_of_stream();
            if let Some(bus) = self.pipeline.bus() {
                let _ = bus.timed_pop_filtered(
                    gst::ClockTime::from_seconds(10),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
            }
        }
        let summary = counters.summary(&self.sr, &self.appsrc);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(rtsp) = &self.rtsp {
            rtsp.stop();
        }
        summary
    }
}

/// The elements after h264parse, linked (an RTSP output is served instead,
/// see [`RtspServer`]).
fn sink_elements(sink: &Sink, access: &Access, segment_secs: u32) -> Result<Vec<gst::Element>> {
    let ts = || {
        gst::ElementFactory::make("mpegtsmux")
            .property("alignment", 7i32)
            .build()
    };
    Ok(match sink {
        Sink::Udp { host, port } => vec![
            ts()?,
            gst::ElementFactory::make("udpsink")
                .property("host", host)
                .property("port", *port as i32)
                .build()?,
        ],
        Sink::Srt(uri) => {
            let srtsink = gst::ElementFactory::make("srtsink")
                .property("uri", uri)
                .property("wait-for-connection", false)
                .build()?;
            if let Some(key) = &access.srt_key {
                key.apply(&srtsink);
            }
            vec![ts()?, srtsink]
        }
        Sink::Hls { playlist, segments } => vec![gst::ElementFactory::make("hlssink2")
            .property("location", segments.display().to_string())
            .property("playlist-location", playlist.display().to_string())
            .property("target-duration", segment_secs)
            .property("playlist-length", 0u32)
            .property("max-files", 0u32)
            .build()?],
        Sink::Rtsp { .. } => bail!("an RTSP output is served, not linked"),
    })
}
