//! Times the temporal stage alone on a default-model-sized stream (a
//! 320×180 input, its ×2 output), with both settings, so that a change to
//! its cost can be profiled without the model:
//!
//!     cargo run --release --example temporal_cost -- [FRAMES] [SHIFT] [ONLY]
//!
//! The frames are a textured scene panning by SHIFT input pixels a frame
//! (default 1; a fraction makes the finer-than-output-pixel warp resample;
//! ONLY keeps the settings whose name holds it, for a profiler),
//! the output the input's nearest-neighbour ×2 plus a per-frame wobble of
//! fine detail, as a per-frame model's would wobble. Besides the wall
//! time it prints the process's CPU time (the stage spreads a frame over
//! the cores), which other work on a loaded machine disturbs far less;
//! `taskset -c 0` runs it on one core.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use gendr::frame::RgbImage;
use gendr::temporal::{Stabilizer, TemporalConfig};

const WIDTH: usize = 320;
const HEIGHT: usize = 180;
const SCALE: usize = 2;

fn scene(x: f32, y: f32) -> f32 {
    0.5 + 0.2 * (x * 0.21).sin() * (y * 0.17).cos() + 0.1 * (x * 0.9 + y * 0.4).sin()
}

fn frame(t: usize, speed: f32) -> (RgbImage, RgbImage) {
    let shift = t as f32 * speed;
    let mut input = RgbImage::new(WIDTH, HEIGHT);
    for c in 0..3 {
        for (i, v) in input.plane_mut(c).iter_mut().enumerate() {
            let (x, y) = ((i % WIDTH) as f32, (i / WIDTH) as f32);
            *v = scene(x + shift, y) * (0.9 + 0.05 * c as f32);
        }
    }
    let (ow, oh) = (WIDTH * SCALE, HEIGHT * SCALE);
    let mut output = RgbImage::new(ow, oh);
    for c in 0..3 {
        let source = input.plane(c).to_vec();
        for (i, v) in output.plane_mut(c).iter_mut().enumerate() {
            let (x, y) = (i % ow, i / ow);
            let wobble = if (x + y + t) % 2 == 0 { 0.004 } else { -0.004 };
            *v = source[(y / SCALE) * WIDTH + x / SCALE] + wobble;
        }
    }
    (input, output)
}

/// This process's CPU time so far, all its threads.
fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "CLOCK_PROCESS_CPUTIME_ID is there on Linux");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("FRAMES: a number"))
        .unwrap_or(32);
    let speed: f32 = std::env::args()
        .nth(2)
        .map(|n| n.parse().expect("SHIFT: a number"))
        .unwrap_or(1.0);
    let only = std::env::args().nth(3).unwrap_or_default();
    let frames: Vec<(RgbImage, RgbImage)> = (0..count).map(|t| frame(t, speed)).collect();
    for (name, config) in [
        (
            "generative presets (back-projected, detail only)",
            TemporalConfig::generative(),
        ),
        (
            "realesrgan-x4 (its trust, unsteadied detail tempered, motion per pixel, anchors)",
            TemporalConfig::for_model("realesrgan-x4"),
        ),
        (
            "realesrgan-x4 without its anchors",
            TemporalConfig {
                anchors: None,
                ..TemporalConfig::for_model("realesrgan-x4")
            },
        ),
        ("detail only (default, fast)", TemporalConfig::detail_only()),
    ]
    .into_iter()
    .filter(|(name, _)| name.contains(&only))
    {
        let mut stage = Stabilizer::new(config);
        let mut digest = DefaultHasher::new();
        let (mut time, mut cpu) = (Duration::ZERO, Duration::ZERO);
        for (input, output) in &frames {
            let (started, cpu_started) = (Instant::now(), cpu_time());
            let stabilised = stage.process(input, output.clone());
            cpu += cpu_time() - cpu_started;
            time += started.elapsed();
            stabilised
                .data
                .iter()
                .for_each(|v| v.to_bits().hash(&mut digest));
        }
        let per_frame = |time: Duration| time.as_secs_f64() * 1e3 / count as f64;
        // The digest of every output sample: a cheaper stage must keep it.
        println!(
            "{name}: {:.2} ms per frame ({:.2} ms CPU) over {count} frames, {} restarts, outputs {:016x}",
            per_frame(time),
            per_frame(cpu),
            stage.restarts(),
            digest.finish()
        );
    }
}
