//! How long an AAC frame lasts, from the AudioSpecificConfig (ISO/IEC
//! 14496-3, 1.6.2.1) that raw AAC carries as its codec data.

use super::rbsp::Bits;

/// The sampling frequencies an AudioSpecificConfig names by index.
const FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// How long each frame of the AAC stream that `config` describes lasts:
/// 1024 samples, or 960 where its frame length flag says so, at the core
/// sampling frequency (HE-AAC's SBR doubles the samples and the rate
/// alike). None for object types whose frames are counted otherwise (low
/// delay, BSAC, others than AAC) and for a config that ends too soon.
pub(crate) fn aac_frame(config: &[u8]) -> Option<gst::ClockTime> {
    let mut bits = Bits::new(config);
    let mut object_type = object_type(&mut bits)?;
    let rate = frequency(&mut bits)?;
    let _channels = bits.bits(4)?;
    // SBR and PS signalled explicitly: the output rate, then the core's type.
    if object_type == 5 || object_type == 29 {
        frequency(&mut bits)?;
        object_type = self::object_type(&mut bits)?;
    }
    // The AAC types whose GASpecificConfig starts with the frame length
    // flag and whose frames hold 1024 or 960 samples (LD's hold 512/480).
    if !matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=21) {
        return None;
    }
    let samples = if bits.bit()? == 1 { 960 } else { 1024 };
    Some(gst::ClockTime::from_nseconds(
        samples * 1_000_000_000 / u64::from(rate),
    ))
}

fn object_type(bits: &mut Bits) -> Option<u32> {
    match bits.bits(5)? {
        31 => Some(32 + bits.bits(6)?),
        t => Some(t),
    }
}

fn frequency(bits: &mut Bits) -> Option<u32> {
    match bits.bits(4)? {
        15 => bits.bits(24).filter(|&f| f > 0),
        i => FREQUENCIES.get(i as usize).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(config: &[u8]) -> Option<f64> {
        aac_frame(config).map(|d| d.nseconds() as f64 / 1e6)
    }

    #[test]
    fn an_aac_frame_lasts_as_its_config_says() {
        // AAC LC 44.1 kHz stereo, as ffmpeg writes it: 1024 / 44100 s.
        assert_eq!(
            aac_frame(&[0x12, 0x10]),
            Some(gst::ClockTime::from_nseconds(23_219_954))
        );
        // AAC LC 48 kHz mono.
        assert_eq!(ms(&[0x11, 0x88]).map(|m| m.round()), Some(21.0));
        // The frame length flag: 960 samples at 48 kHz, 20 ms.
        assert_eq!(ms(&[0x11, 0x8C]), Some(20.0));
        // HE-AAC signalled explicitly: 24 kHz core (index 6), 48 kHz out
        // (index 3), core type 2: 1024 / 24000 s.
        let he = [0x2B, 0x11, 0x88];
        assert_eq!(ms(&he).map(|m| (m * 1e3).round()), Some(42667.0));
        // An explicit frequency (index 15): 1024 samples at 32 kHz.
        let explicit = [0x17, 0x80, 0x3E, 0x80, 0x10];
        assert_eq!(ms(&explicit), Some(32.0));
        // AAC LD (type 23) counts 512 samples: left alone. Too short: none.
        assert_eq!(aac_frame(&[0xB9, 0x88]), None);
        assert_eq!(aac_frame(&[0x12]), None);
        assert_eq!(aac_frame(&[]), None);
    }
}
