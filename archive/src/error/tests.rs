use super::*;

#[test]
fn a_full_disk_a_quota_or_a_size_limit_is_no_space_by_its_kind_not_its_words() {
    for kind in [
        io::ErrorKind::StorageFull,
        io::ErrorKind::FileTooLarge,
        io::ErrorKind::QuotaExceeded,
    ] {
        let e = Error::from(io::Error::new(kind, "anything"));
        assert_eq!(e, Error::NoSpace("anything".into()), "{kind:?}");
    }
    // The words alone make nothing of the kind.
    let e = Error::from(io::Error::other("No space left on device"));
    assert_eq!(e, Error::Io("No space left on device".into()));
    for code in [libc::ENOSPC, libc::EDQUOT, libc::EFBIG] {
        let e = Error::from(io::Error::from_raw_os_error(code));
        assert!(matches!(e, Error::NoSpace(_)), "{code}: {e:?}");
    }
}

#[test]
fn the_kind_survives_context_added_on_the_way_up() {
    let e = Error::stalled("no frame was decoded in 10 s").context("segment 2");
    assert!(matches!(e, Error::Stalled(_)));
    assert_eq!(
        e.to_string(),
        "segment 2: stalled: no frame was decoded in 10 s; pass --stall-timeout SECS to wait longer (0 = never)"
    );
    let e: Result<(), io::Error> = Err(io::Error::from_raw_os_error(libc::ENOSPC));
    let e = e.context("writing out.mkv").unwrap_err();
    assert!(matches!(e, Error::NoSpace(_)), "{e:?}");
    assert!(e.to_string().starts_with("writing out.mkv: "), "{e}");
}

#[test]
fn a_missing_part_of_a_graph_is_a_gstreamer_error_named_so() {
    let e = None::<()>.context("queue sink").unwrap_err();
    assert_eq!(e, Error::Gst("queue sink".into()));
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
