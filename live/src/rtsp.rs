//! The RTSP server behind an `rtsp://` output.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::access::RtspUser;
use super::gatekeeper::Gatekeeper;

/// Clients served each on a thread of their own, so that one client's
/// DESCRIBE, which gst-rtsp-server answers only once the media has
/// prerolled (up to 20 s while the source is down), holds up no other
/// client; beyond this many, clients share threads.
const CLIENT_THREADS: i32 = 16;

/// The UDP ports RTP and RTCP are sent from, on the server's own addresses.
const RTP_PORTS: (u16, u16) = (49152, 65534);

/// The role that the authenticated user gets in the media factory.
const VIEWER_ROLE: &str = "viewer";

/// Connections the kernel completes before the server accepts them. At
/// gst-rtsp-server's default of 5, and still at 64, a burst of connections
/// outran the accepting thread, and clients in the burst waited 1 s for
/// their SYN to be sent again; they cost the server no descriptor there.
const LISTEN_BACKLOG: i32 = 512;

/// Encoded RTP packets (or lists of them) held for clients over TCP that
/// all stop reading. gst-rtsp-server paces its TCP sink to the fastest
/// client and leaves it unbounded, so one client that stops reading made
/// the server's memory grow at the stream's bitrate; older packets are
/// dropped instead. A client that falls behind while others read is
/// gst-rtsp-server's own case (its source drops it after 10 s of backlog).
const TCP_PACKETS_HELD: u32 = 256;

/// How often clients are checked against the login and idle timeouts, and
/// expired sessions removed.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
        let context = glib::MainContext::new();
        let auth = authentication(user, &factory, &context);
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
                bound_tcp_senders(media);
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
        let mut servers = Vec::new();
        for address in addresses {
            let server = gst_rtsp_server::RTSPServer::new();
            server.set_address(&address.to_string());
            server.set_service(&port.to_string());
            server.set_mount_points(Some(&mounts));
            server.set_auth(Some(&auth));
            server.set_backlog(LISTEN_BACKLOG);
            {
                let auth = auth.clone();
                server.connect_client_connected(move |_, client| auth.client_connected(client));
            }
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
        {
            let pools: Vec<_> = servers.iter().filter_map(|s| s.session_pool()).collect();
            let sweep = glib::timeout_source_new(
                SWEEP_INTERVAL,
                Some("gendr-rtsp-sweep"),
                glib::Priority::DEFAULT,
                move || {
                    auth.sweep();
                    for pool in &pools {
                        pool.cleanup();
                    }
                    glib::ControlFlow::Continue
                },
            );
            sweep.attach(Some(&context));
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

/// Caps the appsinks gst-rtsp-server adds to `media` for RTP over TCP (see
/// [`TCP_PACKETS_HELD`]); they are made when the media is prepared, after
/// this is called from `media-configure`.
fn bound_tcp_senders(media: &gst_rtsp_server::RTSPMedia) {
    let Some(pipeline) = media.element().parent().and_downcast::<gst::Bin>() else {
        return;
    };
    pipeline.connect_element_added(|_, element| {
        let is_appsink = element
            .factory()
            .is_some_and(|f| f.name().as_str() == "appsink");
        if is_appsink {
            element.set_property("max-buffers", TCP_PACKETS_HELD);
            element.set_property("drop", true);
        }
    });
}

/// The server's gatekeeper: Digest authentication for `user`, who alone
/// may watch, and Basic, which sends the password in the clear, only when
/// `user.allow_basic`; without a user, everyone may watch. Either way the
/// gatekeeper bounds the clients (see [`super::gatekeeper`]).
fn authentication(
    user: Option<&RtspUser>,
    factory: &gst_rtsp_server::RTSPMediaFactory,
    context: &glib::MainContext,
) -> Gatekeeper {
    let auth = Gatekeeper::new(user.is_some(), context);
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
        .build();
    factory.add_role_from_structure(
        &gst::Structure::builder(VIEWER_ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
    let Some(user) = user else {
        auth.set_default_token(Some(&mut token.clone()));
        return auth;
    };
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
            glib::translate::ToGlibPtr::<*mut gst_rtsp_server::ffi::GstRTSPAuth>::to_glib_none(
                auth.upcast_ref::<gst_rtsp_server::RTSPAuth>(),
            )
            .0,
            methods,
        );
    }
    auth
}
