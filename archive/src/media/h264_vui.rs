//! The colour matrix written in an H.264 sequence parameter set's VUI.
//! GStreamer 1.22 has one BT.601 matrix, which x264enc writes as
//! smpte170m (6) whatever its option-string says; a source tagged bt470bg
//! (5, the same coefficients) keeps its tag by having the field rewritten
//! in the encoded stream.

use super::rbsp::{escape, unescape, Bits};

/// The bit position of `matrix_coefficients` in an SPS payload (the NAL
/// header byte first), when its VUI writes a colour description and no
/// scaling matrices come before it (x264 writes none by default).
fn matrix_position(rbsp: &[u8]) -> Option<usize> {
    let mut r = Bits::new(rbsp);
    if r.bits(8)? & 0x1F != 7 {
        return None;
    }
    let profile = r.bits(8)?;
    r.bits(16)?;
    r.ue()?;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        if r.ue()? == 3 {
            r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            return None;
        }
    }
    r.ue()?;
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.ue()?;
            r.ue()?;
            for _ in 0..r.ue()? {
                r.ue()?;
            }
        }
        _ => {}
    }
    r.ue()?;
    r.bit()?;
    r.ue()?;
    r.ue()?;
    if r.bit()? == 0 {
        r.bit()?;
    }
    r.bit()?;
    if r.bit()? == 1 {
        for _ in 0..4 {
            r.ue()?;
        }
    }
    // VUI: aspect ratio, overscan, then the signal type.
    if r.bit()? == 0 {
        return None;
    }
    if r.bit()? == 1 && r.bits(8)? == 255 {
        r.bits(32)?;
    }
    if r.bit()? == 1 {
        r.bit()?;
    }
    if r.bit()? == 0 {
        return None;
    }
    r.bits(4)?;
    if r.bit()? == 0 {
        return None;
    }
    r.bits(16)?;
    Some(r.at).filter(|at| at + 8 <= rbsp.len() * 8)
}

/// The colour matrix an SPS NAL unit (header byte first, escaped) gives.
pub(crate) fn matrix_of(nal: &[u8]) -> Option<u8> {
    let rbsp = unescape(nal);
    let at = matrix_position(&rbsp)?;
    let value = (u16::from(rbsp[at / 8]) << 8) | u16::from(*rbsp.get(at / 8 + 1).unwrap_or(&0));
    Some(((value << (at % 8)) >> 8) as u8)
}

/// An SPS NAL unit (header byte first, escaped) with `matrix` where its
/// colour matrix is smpte170m (6), how x264 writes GStreamer's BT.601;
/// None when it is no SPS or says something else.
pub(crate) fn with_matrix(nal: &[u8], matrix: u8) -> Option<Vec<u8>> {
    let mut rbsp = unescape(nal);
    let at = matrix_position(&rbsp)?;
    let (byte, shift) = (at / 8, at % 8);
    let value = (u16::from(rbsp[byte]) << 8) | u16::from(*rbsp.get(byte + 1).unwrap_or(&0));
    if (value << shift) >> 8 != 6 {
        return None;
    }
    let mask = 0xFF00u16 >> shift;
    let value = (value & !mask) | ((u16::from(matrix) << 8) >> shift);
    rbsp[byte] = (value >> 8) as u8;
    if let Some(next) = rbsp.get_mut(byte + 1) {
        *next = value as u8;
    }
    Some(escape(&rbsp))
}

/// An Annex B byte stream with each SPS given `matrix`.
pub(crate) fn byte_stream_with_matrix(stream: &[u8], matrix: u8) -> Option<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return None;
    }
    let mut out = stream[..starts[0]].to_vec();
    let mut changed = false;
    for (n, &start) in starts.iter().enumerate() {
        // Up to the next start code, less the zeros that lead it.
        let end = starts.get(n + 1).map_or(stream.len(), |next| {
            let mut end = next - 3;
            while end > start && stream[end - 1] == 0 {
                end -= 1;
            }
            end
        });
        let nal = &stream[start..end];
        match nal
            .first()
            .filter(|h| *h & 0x1F == 7)
            .and_then(|_| with_matrix(nal, matrix))
        {
            Some(fixed) => {
                out.extend(fixed);
                changed = true;
            }
            None => out.extend_from_slice(nal),
        }
        let next = starts.get(n + 1).map_or(stream.len(), |next| next - 3);
        out.extend_from_slice(&stream[end..next]);
        if n + 1 < starts.len() {
            out.extend_from_slice(&[0, 0, 1]);
        }
    }
    changed.then_some(out)
}

/// An avc stream's access unit (NAL units after `len_size`-byte lengths)
/// with each SPS given `matrix`.
pub(crate) fn avc_with_matrix(unit: &[u8], len_size: usize, matrix: u8) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(unit.len() + 4);
    let mut at = 0;
    let mut changed = false;
    while at < unit.len() {
        let len = unit
            .get(at..at + len_size)?
            .iter()
            .fold(0usize, |v, b| (v << 8) | usize::from(*b));
        let nal = unit.get(at + len_size..at + len_size + len)?;
        let fixed = nal
            .first()
            .filter(|h| *h & 0x1F == 7)
            .and_then(|_| with_matrix(nal, matrix));
        changed |= fixed.is_some();
        let nal = fixed.as_deref().unwrap_or(nal);
        out.extend_from_slice(&nal.len().to_be_bytes()[8 - len_size..]);
        out.extend_from_slice(nal);
        at += len_size + len;
    }
    changed.then_some(out)
}

/// The NAL length size an `avcC` record gives its stream.
pub(crate) fn avcc_length_size(avcc: &[u8]) -> Option<usize> {
    Some(usize::from(avcc.get(4)? & 3) + 1)
}

/// The colour matrix the first SPS of an `avcC` record (an avc stream's
/// codec_data: Matroska's CodecPrivate, MP4's `avcC` box) gives.
pub(crate) fn avcc_matrix(avcc: &[u8]) -> Option<u8> {
    if *avcc.get(5)? & 0x1F == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes(avcc.get(6..8)?.try_into().ok()?));
    matrix_of(avcc.get(8..8 + len)?)
}

/// An `avcC` record (an avc stream's codec_data) with each SPS given `matrix`.
pub(crate) fn avcc_with_matrix(avcc: &[u8], matrix: u8) -> Option<Vec<u8>> {
    let count = usize::from(*avcc.get(5)? & 0x1F);
    let mut out = avcc.get(..6)?.to_vec();
    let mut at = 6;
    let mut changed = false;
    for _ in 0..count {
        let len = usize::from(u16::from_be_bytes(avcc.get(at..at + 2)?.try_into().ok()?));
        let sps = avcc.get(at + 2..at + 2 + len)?;
        let fixed = with_matrix(sps, matrix);
        changed |= fixed.is_some();
        let sps = fixed.unwrap_or_else(|| sps.to_vec());
        out.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
        out.extend(sps);
        at += 2 + len;
    }
    out.extend_from_slice(avcc.get(at..)?);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SPS as x264 writes it for 720x576 High with a colour description
    /// 5/5/6 (primaries, transfer, matrix), taken from its output.
    fn x264_sps(matrix: u8) -> Vec<u8> {
        let mut bits = String::new();
        let ue = |v: u32| {
            let code = v + 1;
            let len = 32 - code.leading_zeros();
            format!("{}{:b}", "0".repeat(len as usize - 1), code)
        };
        bits += "01100111"; // NAL header: SPS
        bits += &format!("{:08b}{:08b}{:08b}", 100, 0, 30);
        bits += &ue(0); // sps id
        bits += &ue(1); // 4:2:0
        bits += &ue(0);
        bits += &ue(0);
        bits += "0"; // qpprime
        bits += "0"; // no scaling matrices
        bits += &ue(0); // log2_max_frame_num - 4
        bits += &ue(0); // poc type 0
        bits += &ue(2);
        bits += &ue(4); // refs
        bits += "0";
        bits += &ue(44); // width in MBs - 1
        bits += &ue(35); // height in map units - 1
        bits += "1"; // frame MBs only
        bits += "1"; // direct 8x8
        bits += "0"; // no cropping
        bits += "1"; // VUI
        bits += "1"; // aspect ratio
        bits += &format!("{:08b}", 1);
        bits += "0"; // no overscan info
        bits += "1"; // signal type
        bits += "101"; // unspecified format
        bits += "0";
        bits += "1"; // colour description
        bits += &format!("{:08b}{:08b}{:08b}", 5, 5, matrix);
        bits += "0000"; // no chroma loc, timing, HRD…
        bits += "1";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let bytes: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        escape(&bytes)
    }

    #[test]
    fn an_sps_x264enc_wrote_is_rewritten() {
        let hex = "67640028acd9405a0246c05a82828320000003002000000651e30632c0";
        let nal: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
            .collect();
        assert_eq!(matrix_of(&nal), Some(6));
        let fixed = with_matrix(&nal, 5).expect("rewritten");
        assert_eq!(matrix_of(&fixed), Some(5));
        assert_eq!(fixed.len(), nal.len());
        assert_eq!(with_matrix(&fixed, 5), None, "now bt470bg");
    }

    #[test]
    fn the_matrix_is_rewritten_and_nothing_else() {
        let (smpte170m, bt470bg) = (x264_sps(6), x264_sps(5));
        assert_eq!(with_matrix(&smpte170m, 5), Some(bt470bg.clone()));
        // In a byte stream beside other NAL units, and in an avcC record.
        let pps = [0x68, 0xEB, 0xE3, 0xCB];
        let stream = [&[0, 0, 0, 1][..], &smpte170m, &[0, 0, 1], &pps].concat();
        let expected = [&[0, 0, 0, 1][..], &bt470bg, &[0, 0, 1], &pps].concat();
        assert_eq!(byte_stream_with_matrix(&stream, 5), Some(expected));
        let avcc = |sps: &[u8]| {
            let mut record = vec![1, 100, 0, 30, 0xFF, 0xE1];
            record.extend((sps.len() as u16).to_be_bytes());
            record.extend_from_slice(sps);
            record.extend([1, 0, 4]);
            record.extend(pps);
            record
        };
        assert_eq!(avcc_with_matrix(&avcc(&smpte170m), 5), Some(avcc(&bt470bg)));
        assert_eq!(avcc_matrix(&avcc(&bt470bg)), Some(5));
        assert_eq!(avcc_matrix(&avcc(&smpte170m)), Some(6));
        assert_eq!(avcc_length_size(&avcc(&smpte170m)), Some(4));
        let unit = |sps: &[u8]| {
            let mut unit = (sps.len() as u32).to_be_bytes().to_vec();
            unit.extend_from_slice(sps);
            unit.extend((pps.len() as u32).to_be_bytes());
            unit.extend(pps);
            unit
        };
        assert_eq!(
            avc_with_matrix(&unit(&smpte170m), 4, 5),
            Some(unit(&bt470bg))
        );
        // Escaping is undone and redone around the field.
        assert_eq!(
            unescape(&escape(&[0, 0, 1, 0, 0, 0, 3])),
            [0, 0, 1, 0, 0, 0, 3]
        );
        // Not an SPS, or another matrix than smpte170m: left alone.
        assert_eq!(with_matrix(&pps, 5), None);
        assert_eq!(with_matrix(&x264_sps(1), 5), None);
    }
}
