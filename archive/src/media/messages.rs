//! GStreamer's errors and warnings as one-line messages, and the log of
//! decoder errors a run reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gst::prelude::*;

/// Text from the user or a file, cut short for an error line: a value of
/// any length is named, never echoed whole.
pub fn clip_text(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// The first error on `bus`, waiting up to a second for one to arrive,
/// described by `describe`.
pub fn first_error<T>(
    bus: &gst::Bus,
    describe: impl FnOnce(&gst::message::Error) -> T,
) -> Option<T> {
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(describe(err)),
        _ => None,
    }
}

/// Turns a bus error message into one line naming the element.
pub fn error_text(err: &gst::message::Error) -> String {
    named_line(err.src(), &err.error())
}

/// Turns a bus warning into one line naming the element.
pub fn warning_text(warning: &gst::message::Warning) -> String {
    named_line(warning.src(), &warning.error())
}

/// `SOURCE: the error's first line`, the source "pipeline" when none is named.
fn named_line(source: Option<&gst::Object>, error: &gst::glib::Error) -> String {
    let source = source.map_or_else(|| "pipeline".into(), |s| s.name().to_string());
    format!("{source}: {}", first_line(&error.to_string()))
}

/// What GStreamer's log says that its bus does not: the errors libav's
/// decoders log while they conceal damage in the input (they post nothing
/// and flag no buffer). Stops when dropped.
pub struct ErrorLog {
    decoder_errors: Arc<AtomicU64>,
    function: Option<gst::log::DebugLogFunction>,
}

impl ErrorLog {
    pub fn watch() -> Self {
        // Without GST_DEBUG the default handler would print each of them;
        // they are summed up instead.
        if std::env::var_os("GST_DEBUG").is_none() {
            gst::log::remove_default_log_function();
            gst::log::set_threshold_for_name("libav", gst::DebugLevel::Error);
        }
        let decoder_errors = Arc::new(AtomicU64::new(0));
        let count = decoder_errors.clone();
        let function = gst::log::add_log_function(move |category, level, _, _, _, _, _| {
            if level == gst::DebugLevel::Error && category.name() == "libav" {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        ErrorLog {
            decoder_errors,
            function: Some(function),
        }
    }

    pub fn decoder_errors(&self) -> u64 {
        self.decoder_errors.load(Ordering::Relaxed)
    }
}

impl Drop for ErrorLog {
    fn drop(&mut self) {
        if let Some(function) = self.function.take() {
            gst::log::remove_log_function(function);
        }
    }
}
