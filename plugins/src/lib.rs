//! GStreamer plugin `gendrsr`: tiled one-step super-resolution through ONNX Runtime.
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

mod gendrsr;

pub use gendrsr::{GendrSr, Provider};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gendrsr::register(plugin)
}

gst::plugin_define!(
    gendrsr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // No public repository yet: GStreamer's own words for an unknown origin
    // (an empty one makes it refuse the plugin).
    "Unknown package origin",
    env!("BUILD_REL_DATE")
);
