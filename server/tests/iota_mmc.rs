//! MMC documents: golden XML for each document of iota.md's flows, a
//! round-trip property, and a typed error for every malformed input.

use fota_server::iota::mmc::{
    accepts_content_type, Command, CommandResult, Mmc, MmcError, MmcResult, ResultCode, ValueRef,
};
use proptest::prelude::*;

fn read(cid: u32, v: ValueRef) -> Command {
    Command::Read { cid, valueref: v }
}

fn ok(cid: u32, value: Option<&str>) -> CommandResult {
    CommandResult {
        cid,
        code: ResultCode::Ok,
        value: value.map(str::to_string),
    }
}

/// Flow (a), step 2: the TPS asks for make, model and version.
#[test]
fn golden_read_device_info() {
    let doc = Mmc {
        sid: "S1".into(),
        seq: 1,
        commands: vec![
            read(1, ValueRef::DevMan),
            read(2, ValueRef::DevMod),
            read(3, ValueRef::DevFwv),
        ],
    };
    let xml = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<mmc ver=\"1.0\" sid=\"S1\" seq=\"1\">\n",
        "  <read cid=\"1\" valueref=\"dev/man\"/>\n",
        "  <read cid=\"2\" valueref=\"dev/mod\"/>\n",
        "  <read cid=\"3\" valueref=\"dev/fwv\"/>\n",
        "</mmc>\n",
    );
    assert_eq!(doc.to_xml(), xml);
    assert_eq!(Mmc::parse(xml.as_bytes()).unwrap(), doc);
}

/// Flow (a), steps 2-3: the hello, then the values.
#[test]
fn golden_hello_and_device_values() {
    let hello = MmcResult {
        sid: "S1".into(),
        seq: 0,
        results: vec![],
    };
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mmc-result sid=\"S1\" seq=\"0\">\n</mmc-result>\n";
    assert_eq!(hello.to_xml(), xml);
    assert_eq!(MmcResult::parse(xml.as_bytes()).unwrap(), hello);
    // A handset may send the hello as an empty element.
    assert_eq!(
        MmcResult::parse(b"<mmc-result sid=\"S1\" seq=\"0\"/>").unwrap(),
        hello
    );

    let values = MmcResult {
        sid: "S1".into(),
        seq: 1,
        results: vec![
            ok(1, Some("Acme")),
            ok(2, Some("Rocket 3")),
            ok(3, Some("1.0.4")),
        ],
    };
    let xml = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<mmc-result sid=\"S1\" seq=\"1\">\n",
        "  <result cid=\"1\" code=\"0\">Acme</result>\n",
        "  <result cid=\"2\" code=\"0\">Rocket 3</result>\n",
        "  <result cid=\"3\" code=\"0\">1.0.4</result>\n",
        "</mmc-result>\n",
    );
    assert_eq!(values.to_xml(), xml);
    assert_eq!(MmcResult::parse(xml.as_bytes()).unwrap(), values);
}

/// Flow (a), step 4: the offer, with escaping in the URL and the notes.
#[test]
fn golden_offer_and_consent_refused() {
    let doc = Mmc {
        sid: "S1".into(),
        seq: 2,
        commands: vec![
            Command::Write {
                cid: 4,
                valueref: ValueRef::FotaPkgUrl,
                value: "http://127.0.0.1:8080/packages/p1?d=a&x=1".into(),
            },
            Command::Write {
                cid: 5,
                valueref: ValueRef::FotaPkgSize,
                value: "6323".into(),
            },
            Command::Write {
                cid: 6,
                valueref: ValueRef::FotaPkgHash,
                value: "ab".repeat(32),
            },
            Command::Display {
                cid: 7,
                text: "Fixes <crash> & \"battery\" drain.\nEmergency calls are unavailable during the update.".into(),
            },
            Command::Commit { cid: 8 },
        ],
    };
    let xml = doc.to_xml();
    assert!(xml.contains("?d=a&amp;x=1</write>"), "{xml}");
    assert!(
        xml.contains("Fixes &lt;crash&gt; &amp; &quot;battery&quot; drain."),
        "{xml}"
    );
    assert_eq!(Mmc::parse(xml.as_bytes()).unwrap(), doc);

    let refused = MmcResult {
        sid: "S1".into(),
        seq: 2,
        results: vec![
            ok(4, None),
            ok(5, None),
            ok(6, None),
            CommandResult {
                cid: 7,
                code: ResultCode::UserDenied,
                value: None,
            },
        ],
    };
    let xml = refused.to_xml();
    assert!(xml.contains("<result cid=\"7\" code=\"6\"/>"), "{xml}");
    assert_eq!(MmcResult::parse(xml.as_bytes()).unwrap(), refused);
}

/// Flow (a) steps 5 and 7, flow (b) step 2: disconnect, the post-reboot
/// reads, a busy handset.
#[test]
fn golden_disconnect_report_and_busy() {
    let bye = Mmc {
        sid: "S1".into(),
        seq: 3,
        commands: vec![Command::Disconnect],
    };
    assert!(bye.to_xml().contains("  <disconnect/>\n"));
    assert_eq!(Mmc::parse(bye.to_xml().as_bytes()).unwrap(), bye);

    let report = Mmc {
        sid: "S2".into(),
        seq: 1,
        commands: vec![
            read(1, ValueRef::DevFwv),
            read(2, ValueRef::FotaState),
            read(3, ValueRef::FotaResult),
        ],
    };
    assert_eq!(Mmc::parse(report.to_xml().as_bytes()).unwrap(), report);

    let busy = MmcResult::parse(
        b"<mmc-result sid=\"S3\" seq=\"0\"><result cid=\"0\" code=\"23\"/></mmc-result>",
    )
    .unwrap();
    assert_eq!(busy.results[0].code, ResultCode::DeviceBusy);
    assert_eq!(busy.results[0].code.to_string(), "23 (DEVICE_BUSY)");
}

#[test]
fn result_codes_are_the_deployed_numbers_and_reserved_ones_are_refused() {
    for n in 0..=30u32 {
        let code = ResultCode::from_code(n);
        match n {
            4 | 15 | 24.. => assert_eq!(code, None, "{n}"),
            _ => assert_eq!(code.map(|c| c as u32), Some(n)),
        }
    }
    assert_eq!(ResultCode::CheckFailed as u8, 20);
    assert_eq!(ResultCode::InvalidSize.name(), "INVALID_SIZE");
}

#[test]
fn content_types() {
    assert!(accepts_content_type("application/x-iota-mmc+xml"));
    assert!(accepts_content_type(
        "Application/X-IOTA-MMC+XML; charset=utf-8"
    ));
    assert!(accepts_content_type("text/xml"));
    assert!(!accepts_content_type("application/vnd.syncml.dm+xml"));
    assert!(!accepts_content_type(""));
}

#[test]
fn unknown_value_references_are_kept() {
    let doc = Mmc::parse(
        b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><read cid=\"9\" valueref=\"dev/imsi\"/></mmc>",
    )
    .unwrap();
    assert_eq!(
        doc.commands,
        vec![read(9, ValueRef::Other("dev/imsi".into()))]
    );
}

fn err_of(bytes: &[u8]) -> MmcError {
    Mmc::parse(bytes).unwrap_err()
}

#[test]
fn every_malformed_document_gets_a_typed_error_with_its_offset() {
    // Not XML at all, and not UTF-8.
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><read"),
        MmcError::Xml { .. } | MmcError::Truncated { .. }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"></mcc>"),
        MmcError::Xml { .. }
    ));
    assert!(matches!(
        err_of(&[0x3c, 0xff, 0xfe, 0x3e]),
        MmcError::WrongRoot { .. } | MmcError::Xml { .. }
    ));
    // Empty, and truncated.
    assert!(matches!(
        err_of(b""),
        MmcError::Truncated {
            expected: "mmc",
            ..
        }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><commit cid=\"1\"/>"),
        MmcError::Truncated { .. }
    ));
    // Wrong root, wrong version, missing and bad attributes.
    assert_eq!(
        err_of(b"  <mmc-result sid=\"s\" seq=\"1\"/>"),
        MmcError::WrongRoot {
            offset: 2,
            found: "mmc-result".into(),
            expected: "mmc"
        }
    );
    assert!(matches!(
        err_of(b"<mmc ver=\"2.0\" sid=\"s\" seq=\"1\"/>"),
        MmcError::BadAttribute {
            attribute: "ver",
            ..
        }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" seq=\"1\"/>"),
        MmcError::MissingAttribute {
            attribute: "sid",
            ..
        }
    ));
    let e = err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><read valueref=\"dev/man\"/></mmc>");
    assert_eq!(
        e,
        MmcError::MissingAttribute {
            offset: 31,
            element: "read".into(),
            attribute: "cid"
        }
    );
    assert_eq!(
        e.to_string(),
        "MMC document: <read> at byte 31 has no cid attribute"
    );
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"-1\"/>"),
        MmcError::BadAttribute {
            attribute: "seq",
            ..
        }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"99999999999\"/>"),
        MmcError::BadAttribute {
            attribute: "seq",
            ..
        }
    ));
    // Unknown commands, nesting, text outside a command, two roots.
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><format cid=\"1\"/></mmc>"),
        MmcError::UnexpectedElement { parent: "mmc", .. }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><write cid=\"1\" valueref=\"x\"><b>x</b></write></mmc>"),
        MmcError::UnexpectedElement { parent: "write", .. }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\">stray</mmc>"),
        MmcError::UnexpectedElement { .. }
    ));
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"/><mmc ver=\"1.0\" sid=\"s\" seq=\"2\"/>"),
        MmcError::UnexpectedElement { .. }
    ));
    // disconnect must end the document.
    assert!(matches!(
        err_of(b"<mmc ver=\"1.0\" sid=\"s\" seq=\"1\"><disconnect/><commit cid=\"1\"/></mmc>"),
        MmcError::DisconnectNotLast { .. }
    ));
    // Results: reserved codes and foreign elements.
    let e = MmcResult::parse(
        b"<mmc-result sid=\"s\" seq=\"1\"><result cid=\"1\" code=\"15\"/></mmc-result>",
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            MmcError::BadAttribute {
                attribute: "code",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        MmcResult::parse(
            b"<mmc-result sid=\"s\" seq=\"1\"><read cid=\"1\" valueref=\"a\"/></mmc-result>"
        ),
        Err(MmcError::UnexpectedElement {
            parent: "mmc-result",
            ..
        })
    ));
}

fn text() -> impl Strategy<Value = String> {
    // Any characters XML 1.0 can carry (no control characters but
    // tab/newline; carriage returns are normalised by parsers).
    proptest::collection::vec(
        prop_oneof![
            Just('\t'),
            Just('\n'),
            proptest::char::range(' ', '~'),
            proptest::char::range('\u{a0}', '\u{d7ff}'),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn valueref() -> impl Strategy<Value = ValueRef> {
    prop_oneof![
        Just(ValueRef::DevEsn),
        Just(ValueRef::DevMeid),
        Just(ValueRef::DevMan),
        Just(ValueRef::DevMod),
        Just(ValueRef::DevFwv),
        Just(ValueRef::FotaPkgUrl),
        Just(ValueRef::FotaPkgSize),
        Just(ValueRef::FotaPkgHash),
        Just(ValueRef::FotaState),
        Just(ValueRef::FotaResult),
        "[a-z]{1,8}/[a-z0-9&<>\"']{1,8}".prop_map(|s| ValueRef::parse(&s)),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u32>(), valueref()).prop_map(|(cid, valueref)| Command::Read { cid, valueref }),
        (any::<u32>(), valueref(), text()).prop_map(|(cid, valueref, value)| Command::Write {
            cid,
            valueref,
            value
        }),
        (any::<u32>(), valueref()).prop_map(|(cid, valueref)| Command::Delete { cid, valueref }),
        (any::<u32>(), text()).prop_map(|(cid, text)| Command::Display { cid, text }),
        any::<u32>().prop_map(|cid| Command::Commit { cid }),
    ]
}

proptest! {
    #[test]
    fn server_documents_round_trip(
        sid in text(),
        seq in any::<u32>(),
        mut commands in proptest::collection::vec(command(), 0..8),
        bye in any::<bool>(),
    ) {
        if bye {
            commands.push(Command::Disconnect);
        }
        let doc = Mmc { sid, seq, commands };
        prop_assert_eq!(Mmc::parse(doc.to_xml().as_bytes()).unwrap(), doc);
    }

    #[test]
    fn handset_documents_round_trip(
        sid in text(),
        seq in any::<u32>(),
        results in proptest::collection::vec(
            (any::<u32>(), proptest::sample::select(ResultCode::ALL.to_vec()), proptest::option::of(text())),
            0..8,
        ),
    ) {
        let doc = MmcResult {
            sid,
            seq,
            results: results
                .into_iter()
                .map(|(cid, code, value)| CommandResult { cid, code, value })
                .collect(),
        };
        prop_assert_eq!(MmcResult::parse(doc.to_xml().as_bytes()).unwrap(), doc);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Mmc::parse(&bytes);
        let _ = MmcResult::parse(&bytes);
    }
}
