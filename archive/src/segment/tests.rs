use super::*;

#[test]
fn segment_seconds_are_a_finite_number_of_at_least_a_tenth() {
    assert_eq!(positive_seconds("0.1"), Ok(0.1));
    assert_eq!(positive_seconds("60"), Ok(60.0));
    for bad in ["0.05", "0", "-5", "NaN", "inf", "a minute", ""] {
        assert!(positive_seconds(bad).is_err(), "{bad}");
    }
}
