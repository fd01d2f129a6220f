//! The RTSP server behind an `rtsp://` output.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

/// An RTSP server for an `rtsp://` output, on its own GLib main context and
/// thread. It serves one shared media, `appsrc ! rtph264pay`, prepared when
/// the first client asks for it and fed by the output pipeline's appsink
/// with the already encoded stream; a client that joins later shares it, and
/// each new media asks the encoder for a keyframe so that playback starts
/// at once. No client, no media: the encoded frames are then dropped.
pub struct RtspServer {
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RtspServer {
    pub fn start(host: &str, port: u16, mount: &str, appsink: &gst_app::AppSink) -> Result<Self> {
        let url = format!("rtsp://{host}:{port}{mount}");
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(host);
        server.set_service(&port.to_string());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        // Timestamps are the media's own clock's: the buffers arrive encoded and in order
        // (x264enc tune=zerolatency has no B-frames).
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true \
             ! rtph264pay name=pay0 pt=96 config-interval=1 aggregate-mode=zero-latency )",
        );
        factory.set_shared(true);
        let current: Arc<Mutex<Option<gst_app::AppSrc>>> = Arc::default();
        {
            let current = current.clone();
            let weak = appsink.downgrade();
            factory.connect_media_configure(move |_, media| {
                let Some(appsrc) = media
                    .element()
                    .downcast::<gst::Bin>()
                    .ok()
                    .and_then(|bin| bin.by_name("src"))
                    .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                else {
                    return;
                };
                *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(appsrc);
                if let Some(appsink) = weak.upgrade() {
                    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                        .all_headers(true)
                        .build();
                    appsink.send_event(event);
                }
            });
        }
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(appsrc) = current.lock().unwrap_or_else(|p| p.into_inner()).clone()
                    else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let (Some(mut buffer), Some(caps)) =
                        (sample.buffer_owned(), sample.caps_owned())
                    else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    if appsrc.caps().as_ref() != Some(&caps) {
                        appsrc.set_caps(Some(&caps));
                    }
                    {
                        let b = buffer.make_mut();
                        b.set_pts(gst::ClockTime::NONE);
                        b.set_dts(gst::ClockTime::NONE);
                    }
                    // A media without clients is flushing: the frame is not wanted.
                    let _ = appsrc.push_buffer(buffer);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        server
            .mount_points()
            .context("RTSP mount points")?
            .add_factory(mount, factory);
        let context = glib::MainContext::new();
        server
            .attach(Some(&context))
            .map_err(|_| anyhow!("{url}: could not listen on {host}:{port}"))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("gendr-rtsp".into())
                .spawn(move || main_loop.run())
                .context("starting the RTSP server thread")?
        };
        Ok(RtspServer {
            server,
            main_loop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Disconnects the clients and stops the server's thread.
    pub fn stop(&self) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        self.main_loop.quit();
        let _ = thread.join();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}
