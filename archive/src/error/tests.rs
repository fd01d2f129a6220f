use super::*;

#[test]
fn a_full_disk_a_quota_or_a_size_limit_is_no_space_by_its_kind_not_its_words() {
    for kind in [
        io::ErrorKind::StorageFull,
        io::ErrorKind::FileTooLarge,
        io::ErrorKind::QuotaExceeded,
    ] {
        let e = Error::from_io(io::Error::new(kind, "anything"));
        assert!(
            matches!(Error::kind_of(&e), Some(Error::NoSpace(_))),
            "{kind:?}"
        );
    }
    // The words alone make nothing of the kind.
    let e = Error::from_io(io::Error::other("No space left on device"));
    assert!(Error::kind_of(&e).is_none());
    let e = Error::from_io(io::Error::from_raw_os_error(libc::ENOSPC));
    assert!(matches!(Error::kind_of(&e), Some(Error::NoSpace(_))));
}

#[test]
fn the_kind_survives_context_added_on_the_way_up() {
    let e = anyhow::Error::from(Error::Stalled("no frame was decoded in 10 s".into()))
        .context("segment 2");
    assert!(matches!(Error::kind_of(&e), Some(Error::Stalled(_))));
    assert_eq!(
        format!("{:#}", e),
        "segment 2: stalled: no frame was decoded in 10 s; pass --stall-timeout SECS to wait longer (0 = never)"
    );
}

#[test]
fn a_sinks_write_error_is_no_space_and_others_are_not() {
    gst::init().unwrap();
    let message = |error: gst::glib::Error| gst::message::Error::builder_from_error(error).build();
    let write = message(gst::glib::Error::new(
        gst::ResourceError::Write,
        "Could not write",
    ));
    let full = message(gst::glib::Error::new(
        gst::ResourceError::NoSpaceLeft,
        "full",
    ));
    let read = message(gst::glib::Error::new(
        gst::ResourceError::Read,
        "Could not read",
    ));
    for msg in [&write, &full] {
        let gst::MessageView::Error(err) = msg.view() else {
            unreachable!()
        };
        assert!(matches!(
            Error::from_gst(err, "x".into()),
            Some(Error::NoSpace(_))
        ));
    }
    let gst::MessageView::Error(err) = read.view() else {
        unreachable!()
    };
    assert!(Error::from_gst(err, "x".into()).is_none());
}
