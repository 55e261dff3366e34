//! The SyncML DM codecs: XML and WBXML round trips (proptest), refusals
//! with their byte offsets, no panic on arbitrary bytes, and the WBXML
//! cross-check against libwbxml's `xml2wbxml` / `wbxml2xml` both ways.

use std::path::Path;
use std::process::Command as Process;

use fota_server::omadm::element::Element;
use fota_server::omadm::message::*;
use fota_server::omadm::{self, wbxml, xml, Encoding, Error};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// A message with every element of the model.

fn full_message() -> SyncMl {
    SyncMl {
        hdr: SyncHdr {
            ver_dtd: VER_DTD.into(),
            ver_proto: VER_PROTO.into(),
            session_id: "1A2".into(),
            msg_id: 3,
            target: Location {
                loc_uri: "IMEI:356938035643809".into(),
                loc_name: None,
            },
            source: Location {
                loc_uri: "https://fota.example.com/dm".into(),
                loc_name: Some("server & co <1>".into()),
            },
            resp_uri: Some("https://fota.example.com/dm?s=1A2".into()),
            no_resp: false,
            cred: Some(Cred {
                meta: Meta {
                    format: Some("b64".into()),
                    type_: Some("syncml:auth-md5".into()),
                    ..Meta::default()
                },
                data: "ZGF0YQ==".into(),
            }),
            meta: Some(Meta {
                max_msg_size: Some(16384),
                max_obj_size: Some(1 << 20),
                ..Meta::default()
            }),
        },
        body: SyncBody {
            commands: vec![
                Command::Status(Status {
                    cmd_id: 1,
                    msg_ref: 2,
                    cmd_ref: 0,
                    cmd: "SyncHdr".into(),
                    target_refs: vec!["https://fota.example.com/dm".into()],
                    source_refs: vec!["IMEI:356938035643809".into()],
                    chal: Some(Chal {
                        meta: Meta {
                            format: Some("b64".into()),
                            type_: Some("syncml:auth-md5".into()),
                            next_nonce: Some("AAECAwQFBgcICQoLDA0ODw==".into()),
                            ..Meta::default()
                        },
                    }),
                    code: 212,
                    items: vec![],
                }),
                Command::Alert(Alert {
                    cmd_id: 2,
                    no_resp: true,
                    code: 1226,
                    correlator: Some("corr-7".into()),
                    items: vec![Item {
                        source: Some(Location::uri("./FUMO")),
                        meta: Some(Meta {
                            format: Some("int".into()),
                            type_: Some("org.openmobilealliance.dm.firmwareupdate.download".into()),
                            mark: Some("critical".into()),
                            ..Meta::default()
                        }),
                        data: Some("402".into()),
                        ..Item::default()
                    }],
                }),
                Command::Replace(ItemCommand {
                    cmd_id: 3,
                    no_resp: false,
                    meta: Some(Meta {
                        format: Some("chr".into()),
                        ..Meta::default()
                    }),
                    items: vec![Item {
                        target: Some(Location::uri("./FUMO/Download/PkgURL")),
                        meta: Some(Meta {
                            type_: Some("text/plain".into()),
                            size: Some(42),
                            ..Meta::default()
                        }),
                        data: Some("https://fota.example.com/p?a=1&b=<2>".into()),
                        more_data: true,
                        ..Item::default()
                    }],
                }),
                Command::Add(ItemCommand {
                    cmd_id: 4,
                    no_resp: false,
                    meta: None,
                    items: vec![Item::target("./Vendor/x")],
                }),
                Command::Delete(ItemCommand {
                    cmd_id: 5,
                    no_resp: false,
                    meta: None,
                    items: vec![Item::target("./Vendor/y")],
                }),
                Command::Get(ItemCommand {
                    cmd_id: 6,
                    no_resp: false,
                    meta: None,
                    items: vec![Item::target("./DevDetail/FwV")],
                }),
                Command::Exec(Exec {
                    cmd_id: 7,
                    no_resp: false,
                    meta: None,
                    correlator: Some("corr-7".into()),
                    item: Item::target("./FUMO/Download"),
                }),
                Command::Results(Results {
                    cmd_id: 8,
                    msg_ref: Some(2),
                    cmd_ref: 4,
                    meta: Some(Meta {
                        format: Some("chr".into()),
                        ..Meta::default()
                    }),
                    target_ref: Some("./x".into()),
                    source_ref: Some("./DevDetail/FwV".into()),
                    items: vec![Item::source_data("./DevDetail/FwV", "1.0.3 (build 7)")],
                }),
            ],
            final_: true,
        },
    }
}

#[test]
fn xml_round_trip_of_every_element() {
    let msg = full_message();
    let text = xml::write(&msg);
    assert!(text.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SyncML xmlns=\"SYNCML:SYNCML1.2\">"
    ));
    assert!(text.contains("<MaxMsgSize xmlns=\"syncml:metinf\">16384</MaxMsgSize>"));
    assert!(text.contains("server &amp; co &lt;1&gt;"));
    assert_eq!(xml::parse(text.as_bytes()), Ok(msg));
}

#[test]
fn wbxml_round_trip_of_every_element() {
    let msg = full_message();
    let bytes = wbxml::write(&msg);
    // WBXML 1.2, literal public id at string table index 0, UTF-8.
    assert_eq!(&bytes[..4], &[0x02, 0x00, 0x00, 0x6A]);
    assert_eq!(wbxml::parse(&bytes), Ok(msg));
}

#[test]
fn content_types() {
    for (ct, enc) in [
        ("application/vnd.syncml.dm+xml", Encoding::Xml),
        ("application/vnd.syncml+xml; charset=UTF-8", Encoding::Xml),
        ("Application/VND.SyncML.DM+WBXML", Encoding::Wbxml),
        ("application/vnd.syncml+wbxml", Encoding::Wbxml),
    ] {
        assert_eq!(Encoding::from_content_type(ct), Ok(enc), "{ct}");
    }
    assert!(matches!(
        Encoding::from_content_type("text/html"),
        Err(Error::ContentType { .. })
    ));
    let msg = full_message();
    for enc in [Encoding::Xml, Encoding::Wbxml] {
        let bytes = omadm::encode(&msg, enc);
        assert_eq!(omadm::decode(&bytes, enc.content_type()), Ok(msg.clone()));
    }
}

#[test]
fn prefixed_names_cdata_comments_and_whitespace_are_read() {
    let text = br#"<?xml version="1.0"?>
<!-- a client's message -->
<SyncML xmlns="SYNCML:SYNCML1.2" xmlns:m="syncml:metinf">
  <SyncHdr>
    <VerDTD> 1.2 </VerDTD><VerProto>DM/1.2</VerProto>
    <SessionID>1</SessionID><MsgID>1</MsgID>
    <Target><LocURI>http://s</LocURI></Target>
    <Source><LocURI>IMEI:1</LocURI><LocName>u</LocName></Source>
    <Meta><m:MaxMsgSize>5000</m:MaxMsgSize><m:EMI>skipped</m:EMI></Meta>
  </SyncHdr>
  <SyncBody>
    <Alert><CmdID>1</CmdID><Data>1201</Data></Alert>
    <Replace><CmdID>2</CmdID>
      <Item><Source><LocURI>./DevInfo/Man</LocURI></Source><Data><![CDATA[A<B]]>&amp;C</Data></Item>
    </Replace>
    <Final/>
  </SyncBody>
</SyncML>"#;
    let msg = xml::parse(text).unwrap();
    assert_eq!(msg.hdr.ver_dtd, "1.2");
    assert_eq!(msg.hdr.meta.unwrap().max_msg_size, Some(5000));
    let Command::Replace(r) = &msg.body.commands[1] else {
        panic!()
    };
    assert_eq!(r.items[0].data.as_deref(), Some("A<B&C"));
    assert!(msg.body.final_);
}

/// The byte offset of `needle` in `haystack`.
fn at(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap()
}

#[test]
fn structural_errors_name_the_element_and_its_offset() {
    let base = xml::write(&full_message());
    // (document, text at the offending element, skip into it, check)
    type Case = (String, &'static str, usize, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (
            base.replace("<MsgID>3</MsgID>", "<MsgID>x3</MsgID>"),
            "<MsgID>",
            0,
            |e| matches!(e, Error::BadValue { element, .. } if element == "MsgID"),
        ),
        (
            base.replace("<SessionID>1A2</SessionID>", ""),
            "<SyncHdr>",
            0,
            |e| {
                matches!(
                    e,
                    Error::Missing {
                        missing: "SessionID",
                        ..
                    }
                )
            },
        ),
        (
            base.replace("<Final/>", "<Final/><Final/>"),
            "<Final/><Final/>",
            8,
            |e| matches!(e, Error::Unexpected { .. }),
        ),
        (
            base.replace("<CmdID>6</CmdID>", "<CmdID>6</CmdID><Bogus/>"),
            "<Bogus/>",
            0,
            |e| matches!(e, Error::Unexpected { found, parent, .. } if found == "Bogus" && parent == "Get"),
        ),
        (
            base.replace("<CmdID>5</CmdID>", "<CmdID>5</CmdID><CmdID>5</CmdID>"),
            "<CmdID>5</CmdID><CmdID>",
            16,
            |e| matches!(e, Error::Duplicate { .. }),
        ),
        (
            base.replace("<Final/>", "<Atomic><CmdID>9</CmdID></Atomic>"),
            "<Atomic>",
            0,
            |e| matches!(e, Error::Unsupported { name, .. } if name == "Atomic"),
        ),
        (
            base.replace("<Data>212</Data>", "<Data>2120000</Data>"),
            "<Data>2120000",
            0,
            |e| matches!(e, Error::BadValue { .. }),
        ),
        (
            base.replace("<LocURI>./FUMO</LocURI>", "<LocURI>./FUMO<b/></LocURI>"),
            "<b/>",
            0,
            |e| matches!(e, Error::MixedContent { .. }),
        ),
    ];
    for (doc, needle, skip, check) in cases {
        let err = xml::parse(doc.as_bytes()).unwrap_err();
        assert!(check(&err), "{needle}: {err}");
        let expected = at(doc.as_bytes(), needle) + skip;
        assert_eq!(err.offset(), expected, "{needle}: {err}");
        assert!(
            err.to_string().contains(&format!("byte {expected}")),
            "{err}"
        );
    }
}

#[test]
fn malformed_xml_is_refused_with_an_offset() {
    let cases: [&[u8]; 8] = [
        b"",
        b"<SyncML>",
        b"<SyncML></SyncHdr>",
        b"<SyncML><SyncHdr>",
        b"<Other/>",
        b"<SyncML/><SyncML/>",
        b"text<SyncML/>",
        b"<SyncML>&bogus;</SyncML>",
    ];
    for doc in cases {
        let err = xml::parse(doc).unwrap_err();
        assert!(err.offset() <= doc.len(), "{err}");
    }
    // Too deep.
    let deep = "<SyncML>".repeat(100);
    assert!(matches!(
        xml::parse(deep.as_bytes()),
        Err(Error::TooDeep { limit: 32, .. })
    ));
    assert!(matches!(
        xml::parse(b"<Other/>"),
        Err(Error::WrongRoot { offset: 0, .. })
    ));
}

#[test]
fn malformed_wbxml_is_refused_with_an_offset() {
    let good = wbxml::write(&full_message());
    // Every truncation is an error, never a panic.
    for n in 0..good.len() {
        assert!(wbxml::parse(&good[..n]).is_err(), "prefix {n}");
    }
    // Trailing bytes.
    let mut long = good.clone();
    long.push(0x01);
    assert!(matches!(wbxml::parse(&long), Err(Error::Wbxml { .. })));
    // Another public id (WML 1.3 = 0x0A), a bad version, a bad charset.
    assert!(matches!(
        wbxml::parse(&[0x03, 0x0A, 0x6A, 0x00, 0x6D, 0x01]),
        Err(Error::PublicId { offset: 1, .. })
    ));
    assert!(matches!(
        wbxml::parse(&[0x09, 0x01, 0x6A, 0x00]),
        Err(Error::Wbxml { offset: 0, .. })
    ));
    assert!(matches!(
        wbxml::parse(&[0x03, 0x01, 0x04, 0x00, 0x6D, 0x01]),
        Err(Error::Wbxml { offset: 2, .. })
    ));
    // Numeric public id 0x1201 (libwbxml's form) is read.
    let numeric = [
        0x03, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x6C, 0x01, 0x6B, 0x01, 0x01,
    ];
    assert!(matches!(
        wbxml::parse(&numeric),
        Err(Error::Missing {
            missing: "VerDTD",
            offset: 6,
            ..
        })
    ));
    // Unknown token 0x30 (reserved) on page 0, at byte 6.
    assert!(matches!(
        wbxml::parse(&[0x03, 0x01, 0x6A, 0x00, 0x6D, 0x6C, 0x30, 0x01, 0x01]),
        Err(Error::UnknownToken {
            offset: 6,
            page: 0,
            token: 0x30
        })
    ));
    // Attributes.
    assert!(matches!(
        wbxml::parse(&[0x03, 0x01, 0x6A, 0x00, 0xED, 0x01]),
        Err(Error::Wbxml { offset: 4, .. })
    ));
    // Switch to a page SyncML lacks.
    assert!(matches!(
        wbxml::parse(&[0x03, 0x01, 0x6A, 0x00, 0x6D, 0x00, 0x07, 0x01]),
        Err(Error::Wbxml { offset: 5, .. })
    ));
    // A string table reference past the table.
    assert!(matches!(
        wbxml::parse(&[0x03, 0x01, 0x6A, 0x00, 0x6D, 0x83, 0x05, 0x01]),
        Err(Error::Wbxml { offset: 5, .. })
    ));
    // A 6-byte multi-byte integer.
    assert!(matches!(
        wbxml::parse(&[0x03, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        Err(Error::Wbxml { offset: 1, .. })
    ));
    // Deep nesting.
    let mut deep = vec![0x03, 0x01, 0x6A, 0x00];
    deep.extend(std::iter::repeat_n(0x6D, 100));
    assert!(matches!(wbxml::parse(&deep), Err(Error::TooDeep { .. })));
    // String-table amplification is capped: one 64 KiB string referenced
    // 100 times is more text than the input plus 1 MiB allows.
    let s = vec![b'a'; 65536];
    let mut amp = vec![0x03, 0x01, 0x6A];
    amp.extend([0x84, 0x80, 0x01]); // table length 65537 as mb_u_int32
    amp.extend(&s);
    amp.push(0);
    amp.extend([0x6D, 0x6B, 0x46, 0x4F]);
    for _ in 0..100 {
        amp.extend([0x83, 0x00]);
    }
    amp.extend([0x01, 0x01, 0x01, 0x01]);
    assert!(matches!(wbxml::parse(&amp), Err(Error::TooLarge { .. })));
}

#[test]
fn wbxml_devinf_tokens() {
    let l = &wbxml::DEVINF12;
    assert_eq!(l.name(0, 0x0A), Some("DevInf"));
    assert_eq!(l.name(0, 0x0F), Some("FwV"));
    assert_eq!(l.name(0, 0x2F), None);
    assert_eq!(l.name(0, 0x34), Some("SupportHierarchicalSync"));
    let doc = Element::new("DevInf")
        .child(Element::with_text("VerDTD", "1.2"))
        .child(Element::with_text("Man", "Acme"))
        .child(Element::with_text("Mod", "Phone 3"))
        .child(Element::with_text("FwV", "1.0"));
    let bytes = wbxml::encode_element(&doc, l);
    let back = wbxml::decode_element(&bytes, l).unwrap();
    assert_eq!(back.children.len(), 4);
    assert_eq!(back.children[2].text.as_deref(), Some("Phone 3"));
    assert_eq!(wbxml::SYNCML12.token("NextNonce", 0), Some((1, 0x10)));
    assert_eq!(wbxml::SYNCML12.token("Correlator", 1), Some((0, 0x3C)));
}

#[test]
fn every_error_variant_formats() {
    let errors = [
        Error::Xml {
            offset: 1,
            message: "m".into(),
        },
        Error::Wbxml {
            offset: 1,
            message: "m",
        },
        Error::UnknownToken {
            offset: 1,
            page: 0,
            token: 5,
        },
        Error::PublicId {
            offset: 1,
            found: "x".into(),
            expected: "y",
        },
        Error::WrongRoot {
            offset: 1,
            found: "x".into(),
            expected: "SyncML",
        },
        Error::Unexpected {
            offset: 1,
            found: "x".into(),
            parent: "y".into(),
        },
        Error::Missing {
            offset: 1,
            parent: "x".into(),
            missing: "y",
        },
        Error::Duplicate {
            offset: 1,
            element: "x".into(),
        },
        Error::BadValue {
            offset: 1,
            element: "x".into(),
            value: "v".into(),
            expected: "e",
        },
        Error::MixedContent {
            offset: 1,
            element: "x".into(),
        },
        Error::TooDeep {
            offset: 1,
            limit: 32,
        },
        Error::TooLarge {
            offset: 1,
            limit: 2,
        },
        Error::Unsupported {
            offset: 1,
            name: "Atomic".into(),
        },
        Error::Truncated {
            offset: 1,
            open: "x".into(),
        },
        Error::ContentType { found: "x".into() },
    ];
    for e in errors {
        let s = e.to_string();
        assert!(s.starts_with("SyncML: "), "{s}");
        if !matches!(e, Error::ContentType { .. }) {
            assert!(s.contains("byte 1"), "{s}");
        }
    }
}

// ---------------------------------------------------------------------------
// Property tests.

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9./:_?=&<>-]{1,16}"
}

fn data() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,24}", "[a-zé€ñ\u{1F600} <>&\"'\t\n]{0,12}",]
}

fn meta() -> impl Strategy<Value = Meta> {
    (
        proptest::option::of(ident()),
        proptest::option::of(ident()),
        proptest::option::of(ident()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(ident()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(format, type_, mark, size, next_nonce, max_msg_size, max_obj_size)| Meta {
                format,
                type_,
                mark,
                size,
                next_nonce,
                max_msg_size,
                max_obj_size,
            },
        )
}

fn location() -> impl Strategy<Value = Location> {
    (ident(), proptest::option::of(ident()))
        .prop_map(|(loc_uri, loc_name)| Location { loc_uri, loc_name })
}

fn item() -> impl Strategy<Value = Item> {
    (
        proptest::option::of(location()),
        proptest::option::of(location()),
        proptest::option::of(meta()),
        proptest::option::of(data()),
        any::<bool>(),
    )
        .prop_map(|(target, source, meta, data, more_data)| Item {
            target,
            source,
            meta,
            data,
            more_data,
        })
}

fn items(min: usize) -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(item(), min..3)
}

fn code() -> impl Strategy<Value = u16> {
    100u16..=9999
}

fn command() -> impl Strategy<Value = Command> {
    let item_cmd = || {
        (
            any::<u32>(),
            any::<bool>(),
            proptest::option::of(meta()),
            items(1),
        )
            .prop_map(|(cmd_id, no_resp, meta, items)| ItemCommand {
                cmd_id,
                no_resp,
                meta,
                items,
            })
    };
    prop_oneof![
        (
            any::<u32>(),
            any::<bool>(),
            code(),
            proptest::option::of(ident()),
            items(0)
        )
            .prop_map(
                |(cmd_id, no_resp, code, correlator, items)| Command::Alert(Alert {
                    cmd_id,
                    no_resp,
                    code,
                    correlator,
                    items
                })
            ),
        item_cmd().prop_map(Command::Add),
        item_cmd().prop_map(Command::Replace),
        item_cmd().prop_map(Command::Delete),
        item_cmd().prop_map(Command::Get),
        (
            any::<u32>(),
            any::<bool>(),
            proptest::option::of(meta()),
            proptest::option::of(ident()),
            item()
        )
            .prop_map(
                |(cmd_id, no_resp, meta, correlator, item)| Command::Exec(Exec {
                    cmd_id,
                    no_resp,
                    meta,
                    correlator,
                    item
                })
            ),
        (
            (any::<u32>(), any::<u32>(), any::<u32>(), ident()),
            proptest::collection::vec(ident(), 0..2),
            proptest::collection::vec(ident(), 0..2),
            proptest::option::of(meta()),
            code(),
            items(0)
        )
            .prop_map(
                |((cmd_id, msg_ref, cmd_ref, cmd), target_refs, source_refs, chal, code, items)| {
                    Command::Status(Status {
                        cmd_id,
                        msg_ref,
                        cmd_ref,
                        cmd,
                        target_refs,
                        source_refs,
                        chal: chal.map(|meta| Chal { meta }),
                        code,
                        items,
                    })
                }
            ),
        (
            (
                any::<u32>(),
                proptest::option::of(any::<u32>()),
                any::<u32>()
            ),
            proptest::option::of(meta()),
            proptest::option::of(ident()),
            proptest::option::of(ident()),
            items(1)
        )
            .prop_map(
                |((cmd_id, msg_ref, cmd_ref), meta, target_ref, source_ref, items)| {
                    Command::Results(Results {
                        cmd_id,
                        msg_ref,
                        cmd_ref,
                        meta,
                        target_ref,
                        source_ref,
                        items,
                    })
                }
            ),
    ]
}

fn message() -> impl Strategy<Value = SyncMl> {
    (
        (ident(), ident(), ident(), any::<u32>()),
        (
            location(),
            location(),
            proptest::option::of(ident()),
            any::<bool>(),
        ),
        proptest::option::of((meta(), data())),
        proptest::option::of(meta()),
        proptest::collection::vec(command(), 0..5),
        any::<bool>(),
    )
        .prop_map(
            |(
                (ver_dtd, ver_proto, session_id, msg_id),
                (target, source, resp_uri, no_resp),
                cred,
                meta,
                commands,
                final_,
            )| SyncMl {
                hdr: SyncHdr {
                    ver_dtd,
                    ver_proto,
                    session_id,
                    msg_id,
                    target,
                    source,
                    resp_uri,
                    no_resp,
                    cred: cred.map(|(meta, data)| Cred { meta, data }),
                    meta,
                },
                body: SyncBody { commands, final_ },
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn xml_write_then_parse_is_identity(msg in message()) {
        let text = xml::write(&msg);
        prop_assert_eq!(xml::parse(text.as_bytes()), Ok(msg));
    }

    #[test]
    fn wbxml_write_then_parse_is_identity(msg in message()) {
        let bytes = wbxml::write(&msg);
        prop_assert_eq!(wbxml::parse(&bytes), Ok(msg));
    }

    #[test]
    fn xml_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = xml::parse(&bytes);
    }

    #[test]
    fn wbxml_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wbxml::parse(&bytes);
    }

    /// Mutations of a valid message: errors, never panics; an accepted
    /// mutant writes back to the same message.
    #[test]
    fn mutated_messages_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), wb in any::<bool>()) {
        let msg = full_message();
        let mut bytes = if wb { wbxml::write(&msg) } else { xml::write(&msg).into_bytes() };
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let parsed = if wb { wbxml::parse(&bytes) } else { xml::parse(&bytes) };
        if let Ok(m) = parsed {
            prop_assert_eq!(xml::parse(xml::write(&m).as_bytes()), Ok(m.clone()));
            prop_assert_eq!(wbxml::parse(&wbxml::write(&m)), Ok(m));
        }
    }
}

// ---------------------------------------------------------------------------
// Cross-check against libwbxml (Debian's libwbxml2-utils).

/// Whether `xml2wbxml` and `wbxml2xml` are installed; in CI they must be.
fn libwbxml_tools() -> bool {
    let have = ["xml2wbxml", "wbxml2xml"]
        .iter()
        .all(|t| Process::new(t).arg("-h").output().is_ok());
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but libwbxml2-utils (xml2wbxml, wbxml2xml) is not installed"
        );
        eprintln!("skipped: libwbxml2-utils is not installed");
    }
    have
}

fn run(tool: &str, input: &Path, output: &Path) {
    let out = Process::new(tool)
        .arg("-o")
        .arg(output)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success() && output.exists(),
        "{tool}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Messages to cross-check: the full one and the FUMO session's (the
/// session tests build the same through the session API).
fn cross_check_messages() -> Vec<SyncMl> {
    let mut v = vec![full_message()];
    // A message with an empty body and no Final, and one with NoResp.
    let mut m = full_message();
    m.body = SyncBody::default();
    m.hdr.no_resp = true;
    v.push(m);
    v
}

/// Our WBXML → wbxml2xml → our XML parser; our XML → xml2wbxml → our
/// WBXML decoder: both must give back the model.
pub fn cross_check(msg: &SyncMl, dir: &Path, name: &str) {
    let ours_wb = dir.join(format!("{name}.wbxml"));
    let theirs_xml = dir.join(format!("{name}.from-wbxml.xml"));
    std::fs::write(&ours_wb, wbxml::write(msg)).unwrap();
    run("wbxml2xml", &ours_wb, &theirs_xml);
    let text = std::fs::read(&theirs_xml).unwrap();
    assert_eq!(
        xml::parse(&text).as_ref(),
        Ok(msg),
        "wbxml2xml of our WBXML ({name})"
    );

    let ours_xml = dir.join(format!("{name}.xml"));
    let theirs_wb = dir.join(format!("{name}.from-xml.wbxml"));
    std::fs::write(&ours_xml, xml::write(msg)).unwrap();
    run("xml2wbxml", &ours_xml, &theirs_wb);
    let bytes = std::fs::read(&theirs_wb).unwrap();
    assert_eq!(
        wbxml::parse(&bytes).as_ref(),
        Ok(msg),
        "xml2wbxml of our XML ({name})"
    );
}

#[test]
fn libwbxml_cross_check_both_ways() {
    if !libwbxml_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, msg) in cross_check_messages().iter().enumerate() {
        cross_check(msg, dir.path(), &format!("m{i}"));
    }
}
