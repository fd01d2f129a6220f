//! The RTSP server behind an `rtsp://` output.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::access::RtspUser;

/// Clients served each on a thread of their own, so that one client's
/// DESCRIBE, which gst-rtsp-server answers only once the media has
/// prerolled (up to 20 s while the source is down), holds up no other
/// client; beyond this many, clients share threads.
const CLIENT_THREADS: i32 = 16;

/// The UDP ports RTP and RTCP are sent from, on the server's own addresses.
const RTP_PORTS: (u16, u16) = (49152, 65534);

/// The role that the authenticated user gets in the media factory.
const VIEWER_ROLE: &str = "viewer";

/// An RTSP server for an `rtsp://` output, on its own GLib main context and
/// thread. It serves one shared media, `appsrc ! rtph264pay`, prepared when
/// the first client asks for it and fed by the output pipeline's appsink
/// with the already encoded stream; a client that joins later shares it, and
/// each new media asks the encoder for a keyframe so that playback starts
/// at once. No client, no media: the encoded frames are then dropped.
///
/// One `RTSPServer` listens on each address (`localhost` is both 127.0.0.1
/// and ::1); they share the mount point and so the media. RTP is sent from
/// those addresses too, unless they are every interface.
pub struct RtspServer {
    servers: Vec<gst_rtsp_server::RTSPServer>,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RtspServer {
    pub fn start(
        addresses: &[IpAddr],
        port: u16,
        mount: &str,
        user: Option<&RtspUser>,
        appsink: &gst_app::AppSink,
    ) -> Result<Self> {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        // Timestamps are the media's own clock's: the buffers arrive encoded and in order
        // (x264enc tune=zerolatency has no B-frames).
        factory.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true \
             ! rtph264pay name=pay0 pt=96 config-interval=1 aggregate-mode=zero-latency )",
        );
        factory.set_shared(true);
        if addresses.iter().all(|a| !a.is_unspecified()) {
            factory.set_address_pool(Some(&rtp_address_pool(addresses)?));
        }
        let auth = user.map(|user| authentication(user, &factory));
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
        let mounts = gst_rtsp_server::RTSPMountPoints::new();
        mounts.add_factory(mount, factory);
        let context = glib::MainContext::new();
        let mut servers = Vec::new();
        for address in addresses {
            let server = gst_rtsp_server::RTSPServer::new();
            server.set_address(&address.to_string());
            server.set_service(&port.to_string());
            server.set_mount_points(Some(&mounts));
            server.set_auth(auth.as_ref());
            if let Some(pool) = server.thread_pool() {
                pool.set_max_threads(CLIENT_THREADS);
            }
            let listening = SocketAddr::new(*address, port);
            match server.attach(Some(&context)) {
                Ok(_) => servers.push(server),
                // Where IPv6 is off, localhost is 127.0.0.1 alone.
                Err(_) if address.is_ipv6() && address.is_loopback() && addresses.len() > 1 => {
                    tracing::warn!("cannot listen on {listening}; serving on 127.0.0.1 only");
                }
                Err(_) => bail!("rtsp://{listening}{mount}: could not listen on {listening}"),
            }
        }
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("gendr-rtsp".into())
                .spawn(move || main_loop.run())
                .context("starting the RTSP server thread")?
        };
        Ok(RtspServer {
            servers,
            main_loop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Disconnects the clients and stops the server's thread.
    pub fn stop(&self) {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        for server in &self.servers {
            server.client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        }
        self.main_loop.quit();
        let _ = thread.join();
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Unicast RTP ports on `addresses`, so that media sockets bind there and
/// not on every interface (gst-rtsp-server's default without a pool).
fn rtp_address_pool(addresses: &[IpAddr]) -> Result<gst_rtsp_server::RTSPAddressPool> {
    let pool = gst_rtsp_server::RTSPAddressPool::new();
    for address in addresses {
        let address = address.to_string();
        pool.add_range(&address, &address, RTP_PORTS.0, RTP_PORTS.1, 0)
            .with_context(|| format!("RTP ports on {address}"))?;
    }
    Ok(pool)
}

/// Digest authentication for `user`, who alone may watch; Basic, which
/// sends the password in the clear, only when `user.allow_basic`.
fn authentication(
    user: &RtspUser,
    factory: &gst_rtsp_server::RTSPMediaFactory,
) -> gst_rtsp_server::RTSPAuth {
    let auth = gst_rtsp_server::RTSPAuth::new();
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
        .build();
    auth.add_digest(&user.name, &user.password, &token);
    let mut methods = gst_rtsp_server::gst_rtsp::ffi::GST_RTSP_AUTH_DIGEST;
    // gst-rtsp-server checks Basic credentials whatever it offers: only a
    // Basic entry that was never added keeps them out.
    if user.allow_basic {
        auth.add_basic(
            &gst_rtsp_server::RTSPAuth::make_basic(&user.name, &user.password),
            &token,
        );
        methods |= gst_rtsp_server::gst_rtsp::ffi::GST_RTSP_AUTH_BASIC;
    }
    // The bindings type the methods as one value; the C API takes a set.
    // SAFETY: `auth` is a live GstRTSPAuth; the call only stores the set.
    unsafe {
        gst_rtsp_server::ffi::gst_rtsp_auth_set_supported_methods(
            glib::translate::ToGlibPtr::to_glib_none(&auth).0,
            methods,
        );
    }
    factory.add_role_from_structure(
        &gst::Structure::builder(VIEWER_ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
    auth
}
