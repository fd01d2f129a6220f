//! The colour matrix written in an H.265 (HEVC) sequence parameter set's
//! VUI, read the whole way there (ITU-T H.265 7.3.2.2): unlike H.264's,
//! the VUI comes after the profile, the short-term reference picture sets
//! and the other coding tools, each of which must be read to find it.

use super::rbsp::{unescape, Bits};

/// The NAL unit type of a sequence parameter set.
const SPS: u8 = 33;

/// The colour matrix an SPS NAL unit (its two header bytes first, escaped)
/// gives, when its VUI writes a colour description.
fn matrix_of(nal: &[u8]) -> Option<u8> {
    let rbsp = unescape(nal);
    let mut r = Bits::new(&rbsp);
    // forbidden_zero_bit, nal_unit_type, nuh_layer_id, nuh_temporal_id_plus1.
    let header = r.bits(16)?;
    if header >> 15 != 0 || (header >> 9) & 0x3F != u32::from(SPS) {
        return None;
    }
    r.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = r.bits(3)?; // sps_max_sub_layers_minus1
    r.bit()?;
    profile_tier_level(&mut r, sub_layers)?;
    r.ue()?; // sps_seq_parameter_set_id
    if r.ue()? == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    r.ue()?;
    r.ue()?; // picture width and height
    if r.bit()? == 1 {
        for _ in 0..4 {
            r.ue()?; // conformance window
        }
    }
    r.ue()?;
    r.ue()?; // bit depths
    let poc_lsb_bits = r.ue()? + 4;
    let all_sub_layers = r.bit()? == 1;
    for _ in (if all_sub_layers { 0 } else { sub_layers })..=sub_layers {
        for _ in 0..3 {
            r.ue()?; // max decoding buffering, reordering, latency
        }
    }
    for _ in 0..6 {
        r.ue()?; // coding and transform block sizes and depths
    }
    if r.bit()? == 1 && r.bit()? == 1 {
        scaling_list_data(&mut r)?;
    }
    r.bit()?; // amp_enabled_flag
    r.bit()?; // sample_adaptive_offset_enabled_flag
    if r.bit()? == 1 {
        r.bits(8)?; // PCM sample bit depths
        r.ue()?;
        r.ue()?;
        r.bit()?;
    }
    short_term_ref_pic_sets(&mut r)?;
    if r.bit()? == 1 {
        for _ in 0..r.ue()? {
            r.bits(poc_lsb_bits)?; // lt_ref_pic_poc_lsb_sps
            r.bit()?;
        }
    }
    r.bit()?; // sps_temporal_mvp_enabled_flag
    r.bit()?; // strong_intra_smoothing_enabled_flag
    if r.bit()? == 0 {
        return None; // no VUI
    }
    if r.bit()? == 1 && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.bit()? == 1 {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.bit()? == 0 {
        return None; // no video signal type
    }
    r.bits(4)?; // video_format, video_full_range_flag
    if r.bit()? == 0 {
        return None; // no colour description
    }
    r.bits(16)?; // colour_primaries, transfer_characteristics
    Some(r.bits(8)? as u8)
}

/// profile_tier_level(1, `sub_layers`) (7.3.3).
fn profile_tier_level(r: &mut Bits, sub_layers: u32) -> Option<()> {
    // The general profile (2 + 1 + 5 + 32 + 4 + 43 + 1 bits), then its level.
    r.bits(32)?;
    r.bits(32)?;
    r.bits(24)?;
    r.bits(8)?;
    let mut present = Vec::new();
    for _ in 0..sub_layers {
        present.push((r.bit()? == 1, r.bit()? == 1));
    }
    if sub_layers > 0 {
        for _ in sub_layers..8 {
            r.bits(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in present {
        if profile {
            r.bits(32)?;
            r.bits(32)?;
            r.bits(24)?;
        }
        if level {
            r.bits(8)?;
        }
    }
    Some(())
}

/// scaling_list_data() (7.3.4).
fn scaling_list_data(r: &mut Bits) -> Option<()> {
    for size in 0..4 {
        let mut matrix = 0;
        while matrix < 6 {
            if r.bit()? == 0 {
                r.ue()?; // scaling_list_pred_matrix_id_delta
            } else {
                let coefficients = 64.min(1 << (4 + (size << 1)));
                if size > 1 {
                    r.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefficients {
                    r.se()?; // scaling_list_delta_coef
                }
            }
            matrix += if size == 3 { 3 } else { 1 };
        }
    }
    Some(())
}

/// The SPS's short-term reference picture sets (7.3.7), each of which may
/// be predicted from the one before it: only the number of pictures of each
/// is kept, which is all the next one's length depends on.
fn short_term_ref_pic_sets(r: &mut Bits) -> Option<()> {
    let count = r.ue()?;
    if count > 64 {
        return None;
    }
    let mut pictures: Vec<u32> = Vec::new();
    for index in 0..count {
        let predicted = index > 0 && r.bit()? == 1;
        if predicted {
            // In an SPS the set is predicted from the one just before it.
            r.bit()?; // delta_rps_sign
            r.ue()?; // abs_delta_rps_minus1
            let mut kept = 0;
            for _ in 0..=*pictures.last()? {
                let used = r.bit()? == 1;
                if used || r.bit()? == 1 {
                    kept += 1;
                }
            }
            pictures.push(kept);
        } else {
            let negative = r.ue()?;
            let positive = r.ue()?;
            if negative > 16 || positive > 16 {
                return None;
            }
            for _ in 0..negative + positive {
                r.ue()?; // delta_poc_minus1
                r.bit()?; // used_by_curr_pic_flag
            }
            pictures.push(negative + positive);
        }
    }
    Some(())
}

/// The colour matrix the first SPS of an `hvcC` record (an hvc1/hev1
/// stream's codec_data: Matroska's CodecPrivate, MP4's `hvcC` box) gives.
pub(super) fn hvcc_matrix(hvcc: &[u8]) -> Option<u8> {
    // 22 bytes of configuration, then arrays of NAL units by type.
    let arrays = *hvcc.get(22)?;
    let mut at = 23;
    for _ in 0..arrays {
        let kind = hvcc.get(at)? & 0x3F;
        let count = u16::from_be_bytes(hvcc.get(at + 1..at + 3)?.try_into().ok()?);
        at += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes(hvcc.get(at..at + 2)?.try_into().ok()?));
            let nal = hvcc.get(at + 2..at + 2 + len)?;
            if kind == SPS {
                return matrix_of(nal);
            }
            at += 2 + len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// The SPS NAL units of a 0.2 s clip x265 encodes with `x265_params`
    /// (through ffmpeg, which then sets the VUI's colour description with
    /// its hevc_metadata filter) at `size`, as an Annex B stream.
    fn x265_sps(size: &str, pix_fmt: &str, x265_params: &str, matrix: u8) -> Vec<Vec<u8>> {
        x265_nal_units(size, pix_fmt, x265_params, matrix, SPS)
    }

    /// The NAL units of type `kind` in such a clip.
    fn x265_nal_units(
        size: &str,
        pix_fmt: &str,
        x265_params: &str,
        matrix: u8,
        kind: u8,
    ) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.hevc");
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=s={size}:r=25:d=0.2"))
            .args(["-c:v", "libx265", "-pix_fmt", pix_fmt, "-x265-params"])
            .arg(format!("log-level=error:{x265_params}"))
            .arg("-bsf:v")
            .arg(format!(
                "hevc_metadata=colour_primaries=5:transfer_characteristics=6:matrix_coefficients={matrix}"
            ))
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg failed for {x265_params}");
        let stream = std::fs::read(&path).unwrap();
        let starts: Vec<usize> = (0..stream.len().saturating_sub(3))
            .filter(|&i| stream[i..i + 3] == [0, 0, 1])
            .map(|i| i + 3)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
                let mut nal = &stream[start..end];
                while nal.last() == Some(&0) {
                    nal = &nal[..nal.len() - 1];
                }
                nal.to_vec()
            })
            .filter(|nal| (nal[0] >> 1) & 0x3F == kind)
            .collect()
    }

    #[test]
    fn the_matrix_of_sps_x265_wrote_is_read_past_every_field_before_it() {
        // Each case makes fields before the VUI longer or present: a
        // conformance window (a size not a multiple of 8), 4:2:2 and 4:4:4
        // at 10 bits, sub-layers, reference picture sets, the default
        // scaling lists, PCM, an explicit pixel aspect ratio (aspect 255).
        let cases: [(&str, &str, &str, u8); 7] = [
            ("720x576", "yuv420p", "", 5),
            ("66x50", "yuv420p", "", 1),
            ("176x144", "yuv422p10le", "bframes=8:ref=6:b-pyramid=1", 9),
            (
                "176x144",
                "yuv444p10le",
                "temporal-layers=1:scaling-list=default",
                5,
            ),
            (
                "176x144",
                "yuv420p",
                "pcm=1:amp=1:sao=0:strong-intra-smoothing=0",
                6,
            ),
            (
                "176x144",
                "yuv420p",
                "sar=7\\:5:overscan=show:range=full",
                5,
            ),
            (
                "176x144",
                "yuv420p",
                "keyint=5:open-gop=0:repeat-headers=1:hrd=1:vbv-maxrate=500:vbv-bufsize=500",
                10,
            ),
        ];
        for (size, pix_fmt, params, matrix) in cases {
            let sps = x265_sps(size, pix_fmt, params, matrix);
            assert!(!sps.is_empty(), "{params}: no SPS");
            for nal in sps {
                assert_eq!(matrix_of(&nal), Some(matrix), "{size} {pix_fmt} {params}");
                // The same SPS in an hvcC record, after a VPS array.
                let mut record = vec![1; 22];
                record.push(2);
                record.extend([0x20, 0, 1, 0, 4, 0x40, 1, 0x0C, 1]);
                record.extend([0x21, 0, 1]);
                record.extend((nal.len() as u16).to_be_bytes());
                record.extend(&nal);
                assert_eq!(hvcc_matrix(&record), Some(matrix), "{params}: hvcC");
            }
        }
    }

    /// Writes bits, first bit highest.
    #[derive(Default)]
    struct BitWriter(String);

    impl BitWriter {
        fn bits(&mut self, n: u32, value: u32) -> &mut Self {
            for bit in (0..n).rev() {
                self.0.push(if (value >> bit) & 1 == 1 { '1' } else { '0' });
            }
            self
        }

        fn ue(&mut self, value: u32) -> &mut Self {
            let code = value + 1;
            let len = 32 - code.leading_zeros();
            self.bits(len - 1, 0).bits(len, code)
        }

        fn se(&mut self, value: i32) -> &mut Self {
            self.ue(if value > 0 {
                value as u32 * 2 - 1
            } else {
                (-value) as u32 * 2
            })
        }

        fn bytes(mut self) -> Vec<u8> {
            self.0.push('1'); // rbsp_stop_one_bit
            while self.0.len() % 8 != 0 {
                self.0.push('0');
            }
            (0..self.0.len() / 8)
                .map(|i| u8::from_str_radix(&self.0[i * 8..i * 8 + 8], 2).unwrap())
                .collect()
        }
    }

    /// An SPS with what x265 never writes before the VUI: a sub-layer with
    /// its own profile and level, explicit scaling lists, PCM, three
    /// short-term reference picture sets (two predicted) and long-term
    /// reference pictures.
    fn sps_with_every_field(matrix: u8) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(16, 0x4201); // SPS header
        w.bits(4, 0).bits(3, 1).bits(1, 1); // VPS 0, two sub-layers, nesting
        let profile = |w: &mut BitWriter| {
            w.bits(8, 1)
                .bits(32, 0x6000_0000)
                .bits(4, 0b1001)
                .bits(32, 0)
                .bits(12, 0);
        };
        profile(&mut w);
        w.bits(8, 93); // general level
        w.bits(1, 1).bits(1, 1); // sub-layer profile and level present
        w.bits(14, 0); // reserved_zero_2bits for sub-layers 1 to 7
        profile(&mut w);
        w.bits(8, 90);
        w.ue(0).ue(1).ue(176).ue(144); // SPS 0, 4:2:0, size
        w.bits(1, 1).ue(0).ue(0).ue(0).ue(2); // conformance window
        w.ue(0).ue(0).ue(4); // 8 bits, 8-bit POC LSBs
        w.bits(1, 0).ue(4).ue(2).ue(0); // ordering of the top sub-layer only
        w.ue(0).ue(3).ue(0).ue(3).ue(1).ue(1); // block sizes
        w.bits(1, 1).bits(1, 1); // scaling lists, given
        for size in 0..4u32 {
            let mut matrix_id = 0;
            while matrix_id < 6 {
                if matrix_id == 0 {
                    w.bits(1, 1);
                    if size > 1 {
                        w.se(8);
                    }
                    for n in 0..64.min(1 << (4 + (size << 1))) {
                        w.se([3, -2, 0, 1][n % 4]);
                    }
                } else {
                    w.bits(1, 0).ue(0); // copied from the list before
                }
                matrix_id += if size == 3 { 3 } else { 1 };
            }
        }
        w.bits(1, 1).bits(1, 1); // AMP, SAO
        w.bits(1, 1).bits(4, 7).bits(4, 7).ue(0).ue(1).bits(1, 1); // PCM
        w.ue(3);
        // Set 0: POCs -1, -3 and +1.
        w.ue(2)
            .ue(1)
            .ue(0)
            .bits(1, 1)
            .ue(1)
            .bits(1, 1)
            .ue(0)
            .bits(1, 1);
        // Set 1, from set 0 moved by -1: -2, -4 and -1 kept, 0 not.
        w.bits(1, 1).bits(1, 1).ue(0);
        w.bits(1, 1).bits(2, 0b01).bits(2, 0b00).bits(1, 1);
        // Set 2, from set 1 moved by +2: three of four kept.
        w.bits(1, 1).bits(1, 0).ue(1);
        w.bits(1, 1).bits(2, 0b00).bits(1, 1).bits(1, 1);
        w.bits(1, 1)
            .ue(2)
            .bits(8, 17)
            .bits(1, 1)
            .bits(8, 200)
            .bits(1, 0); // long-term
        w.bits(1, 1).bits(1, 1); // temporal MVP, strong intra smoothing
        w.bits(1, 1); // VUI
        w.bits(1, 1).bits(8, 255).bits(16, 12).bits(16, 11); // aspect 12:11
        w.bits(1, 1).bits(1, 0); // overscan
        w.bits(1, 1).bits(3, 5).bits(1, 0).bits(1, 1);
        w.bits(8, 5).bits(8, 6).bits(8, u32::from(matrix));
        w.bits(7, 0); // no chroma location … bitstream restriction
        w.bits(1, 0); // no SPS extension
        crate::media::rbsp::escape(&w.bytes())
    }

    #[test]
    fn the_matrix_is_read_past_scaling_lists_pcm_and_predicted_reference_sets() {
        let dir = tempfile::tempdir().unwrap();
        // ffmpeg reads an SPS only after its video parameter set: x265's,
        // for two sub-layers too.
        let vps = x265_nal_units("176x144", "yuv420p", "temporal-layers=1", 5, 32).remove(0);
        for matrix in [5, 9] {
            let sps = sps_with_every_field(matrix);
            // ffmpeg reads the SPS as made: the same fields, the same matrix.
            let path = dir.path().join("sps.hevc");
            std::fs::write(&path, [&[0, 0, 0, 1][..], &vps, &[0, 0, 1], &sps].concat()).unwrap();
            let out = Command::new("ffmpeg")
                .args(["-loglevel", "trace", "-f", "hevc", "-i"])
                .arg(&path)
                .args([
                    "-c",
                    "copy",
                    "-bsf:v",
                    "trace_headers",
                    "-f",
                    "hevc",
                    "-y",
                    "/dev/null",
                ])
                .output()
                .expect("ffmpeg runs");
            let text = String::from_utf8_lossy(&out.stderr);
            let read = |field: &str| {
                text.lines()
                    .find(|l| l.split_whitespace().nth(4) == Some(field))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<u32>().ok())
            };
            assert_eq!(
                read("matrix_coefficients"),
                Some(u32::from(matrix)),
                "{text}"
            );
            assert_eq!(read("num_short_term_ref_pic_sets"), Some(3), "{text}");
            assert_eq!(read("sps_extension_present_flag"), Some(0), "{text}");
            assert_eq!(matrix_of(&sps), Some(matrix));
        }
    }

    #[test]
    fn no_colour_description_or_no_sps_reads_as_none() {
        let sps = x265_sps("176x144", "yuv420p", "", 5).remove(0);
        // Cut before the VUI ends: None, not a guess.
        assert_eq!(matrix_of(&sps[..sps.len() / 2]), None);
        // A VPS header (type 32) is no SPS.
        assert_eq!(matrix_of(&[0x40, 0x01, 0x0C, 0x01, 0xFF]), None);
        assert_eq!(hvcc_matrix(&[1; 10]), None);
    }
}
