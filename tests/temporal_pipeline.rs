//! The temporal stage inside the frame pipeline: what a frame's number does.

use std::time::Duration;

use gendr::engine::{Batch, Engine};
use gendr::frame::{Colorimetry, Frame, PixelFormat};
use gendr::pipeline::{FramePipeline, Output, PipelineConfig};
use gendr::temporal::TemporalConfig;
use gendr::tiling::TileGeometry;

mod common;
use common::{cpu, data};

/// A textured scene panning one pixel a frame.
fn panning(w: usize, h: usize, t: usize) -> Frame {
    let mut frame = Frame::new(PixelFormat::Rgb, w, h, Colorimetry::default()).unwrap();
    for (i, v) in frame.planes[0].data.iter_mut().enumerate() {
        let (x, y) = (((i / 3) % w + t) as f32, ((i / 3) / w) as f32);
        let grain = ((x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503)) >> 28;
        *v = (120.0 + 60.0 * (0.35 * x).sin() * (0.25 * y).cos() + grain as f32) as u8;
    }
    frame
}

/// The outputs of `frames[from..]` through conv_x2 and the stage set as
/// `config`, each submitted with its index plus 1000 as its number where
/// `numbered`, and counted from the first otherwise.
fn outputs(config: TemporalConfig, frames: &[Frame], from: usize, numbered: bool) -> Vec<Vec<u8>> {
    let engine = Engine::load(&data("conv_x2.onnx"), &cpu()).unwrap();
    let pipeline: FramePipeline<usize, ()> = FramePipeline::start(
        PipelineConfig {
            geometry: TileGeometry::new(32, 3, 1, 2).unwrap(),
            max_frames_in_flight: 4,
            batch: Batch::UpTo(1),
            temporal: Some(config),
        },
        vec![engine],
    )
    .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (t, frame) in frames.iter().enumerate().skip(from) {
                let submitted = if numbered {
                    pipeline.submit_numbered(frame.clone(), t, 1000 + t as u64, false)
                } else {
                    pipeline.submit(frame.clone(), t)
                };
                submitted.unwrap();
            }
        });
        (from..frames.len())
            .map(
                |t| match pipeline.recv_timeout(Duration::from_secs(30)).unwrap() {
                    Some(Output::Frame { frame, meta, .. }) => {
                        assert_eq!(meta, t);
                        frame.planes[0].data.clone()
                    }
                    Some(Output::Failed { error, .. }) => panic!("frame {t}: {error}"),
                    Some(Output::Marker(())) => panic!("frame {t}: a marker"),
                    None => panic!("frame {t}: nothing within 30 s"),
                },
            )
            .collect()
    })
}

#[test]
fn a_run_started_late_gives_each_frame_within_reach_what_a_whole_run_gives() {
    // realesrgan-x4's setting: anchors every 10 frame numbers, reach 19.
    let config = TemporalConfig::for_model("realesrgan-x4");
    let reach = config.reach();
    assert!(config.anchors.is_some() && reach > config.memory);
    let frames: Vec<Frame> = (0..reach + 14).map(|t| panning(64, 48, t)).collect();
    let whole = outputs(config, &frames, 0, true);
    let (late, unnumbered) = (
        outputs(config, &frames, 8, true),
        outputs(config, &frames, 8, false),
    );
    for t in 8 + reach..frames.len() {
        assert!(whole[t] == late[t - 8], "frame {t}, numbered");
    }
    // Counted from where the run began, the anchors fall elsewhere.
    let differing = (8 + reach..frames.len())
        .filter(|&t| whole[t] != unnumbered[t - 8])
        .count();
    assert!(differing > 0, "numbering changed nothing");
}
