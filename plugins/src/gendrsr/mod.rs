// Copyright (C) 2026 the gendr developers
// SPDX-License-Identifier: MIT

/**
 * SECTION:element-gendrsr
 * @see_also: videoconvert, videoscale
 *
 * gendrsr upscales video with a super-resolution ONNX model (a preset name or
 * an .onnx file that keeps the contract in models/README.md). Each frame is
 * cut into overlapping tiles, the tiles run through ONNX Runtime (CPU, CUDA,
 * TensorRT) or OpenVINO, and are blended back without seams. Preparation,
 * inference and stitching run on their own threads over bounded queues, so
 * decode, inference and encode overlap; `max-frames-in-flight` bounds how many
 * frames are inside the element at once.
 *
 * Input: I420, NV12, I420_10LE, P010_10LE, RGB, BGR, RGBx, BGRx, RGBA or BGRA,
 * any size whose scaled output fits 16384 pixels per edge. The
 * output has the same format and colorimetry, scaled by the model's factor.
 * Output frames come from a buffer pool agreed with downstream (with
 * GstVideoMeta where downstream reads it); input frames may carry
 * GstVideoMeta.
 *
 * Errors (a model that does not load, a frame the model refuses, a worker
 * that fails) are posted on the bus with the reason; the element never
 * panics across the pad boundary.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! gendrsr model=default \
 *     ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]| Upscales a file ×2 with the default preset.
 *
 * |[
 * gst-launch-1.0 v4l2src ! videoconvert ! gendrsr model=fast on-overload=fallback latency-budget=300 \
 *     ! videoconvert ! autovideosink
 * ]| A live source: frames the model cannot take within 300 ms are upscaled
 * with a bilinear resize instead, so latency stays bounded. The
 * `gendrsr-stats` element message reports processed, dropped and fallback
 * frames every `stats-interval` milliseconds.
 */
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;
mod video;

/// Which ONNX Runtime execution provider runs the model.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstGendrSrProvider")]
pub enum Provider {
    #[default]
    #[enum_value(
        name = "Auto: TensorRT, then CUDA, then OpenVINO, then CPU, whichever loads first",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA (fails if it cannot load)", nick = "cuda")]
    Cuda = 2,
    #[enum_value(name = "TensorRT (fails if it cannot load)", nick = "tensorrt")]
    Tensorrt = 3,
    #[enum_value(
        name = "OpenVINO on the CPU (fails if it cannot load)",
        nick = "openvino"
    )]
    Openvino = 4,
}

/// The arithmetic OpenVINO runs the model in.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstGendrSrPrecision")]
pub enum Precision {
    #[default]
    #[enum_value(
        name = "Auto: bf16 where the CPU has it (AVX-512 BF16 or AMX), else fp32",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "fp32", nick = "fp32")]
    Fp32 = 1,
    #[enum_value(
        name = "bf16 (OpenVINO only; fails where the CPU lacks it)",
        nick = "bf16"
    )]
    Bf16 = 2,
}

/// Whether the temporal stage steadies the output.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstGendrSrTemporal")]
pub enum Temporal {
    #[default]
    #[enum_value(
        name = "Auto: on for the presets measured steadier with it (models/presets.json), off otherwise",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "On", nick = "on")]
    On = 1,
    #[enum_value(name = "Off", nick = "off")]
    Off = 2,
}

impl From<Temporal> for gendr::temporal::TemporalMode {
    fn from(t: Temporal) -> Self {
        match t {
            Temporal::Auto => gendr::temporal::TemporalMode::Auto,
            Temporal::On => gendr::temporal::TemporalMode::On,
            Temporal::Off => gendr::temporal::TemporalMode::Off,
        }
    }
}

impl From<Precision> for gendr::engine::ComputePrecision {
    fn from(p: Precision) -> Self {
        match p {
            Precision::Auto => gendr::engine::ComputePrecision::Auto,
            Precision::Fp32 => gendr::engine::ComputePrecision::Fp32,
            Precision::Bf16 => gendr::engine::ComputePrecision::Bf16,
        }
    }
}

impl From<Provider> for gendr::engine::Provider {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Auto => gendr::engine::Provider::Auto,
            Provider::Cpu => gendr::engine::Provider::Cpu,
            Provider::Cuda => gendr::engine::Provider::Cuda,
            Provider::Tensorrt => gendr::engine::Provider::TensorRt,
            Provider::Openvino => gendr::engine::Provider::OpenVino,
        }
    }
}

/// What the element does with a frame the model cannot take in time.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstGendrSrOverload")]
pub enum Overload {
    #[default]
    #[enum_value(
        name = "Block: upstream waits for the model (for files; a live source falls behind)",
        nick = "block"
    )]
    Block = 0,
    #[enum_value(name = "Drop: skip the frame and post a QoS message", nick = "drop")]
    Drop = 1,
    #[enum_value(
        name = "Fallback: upscale the frame with a cheap bilinear resize instead",
        nick = "fallback"
    )]
    Fallback = 2,
}

impl From<Overload> for gendr::overload::Overload {
    fn from(o: Overload) -> Self {
        match o {
            Overload::Block => gendr::overload::Overload::Block,
            Overload::Drop => gendr::overload::Overload::Drop,
            Overload::Fallback => gendr::overload::Overload::Fallback,
        }
    }
}

glib::wrapper! {
    pub struct GendrSr(ObjectSubclass<imp::GendrSr>) @extends gst::Element, gst::Object;
}

impl GendrSr {
    /// The core configuration the current properties ask for: what
    /// `gendr::upscaler::Upscaler::open` builds when the element starts.
    pub fn upscaler_config(&self) -> gendr::upscaler::UpscalerConfig {
        self.imp().upscaler_config()
    }

    /// What the running element was built with (engines, geometry, batch);
    /// `None` unless it is started.
    pub fn assembly(&self) -> Option<gendr::upscaler::Assembly> {
        self.imp().assembly()
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Provider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Precision::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Overload::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "gendrsr",
        gst::Rank::NONE,
        GendrSr::static_type(),
    )
}
