//! Download rules (RFC 9110 Range, If-Range, If-None-Match), OMA download
//! descriptors and install-notify codes.

use fota_server::download::*;
use proptest::prelude::*;

const LEN: u64 = 1000;

fn tag() -> String {
    etag(&[0xab; 32])
}

fn range(r: &str) -> Plan {
    plan(
        LEN,
        &tag(),
        &Request {
            range: Some(r),
            ..Request::default()
        },
    )
}

fn partial(start: u64, end_inclusive: u64) -> Plan {
    Plan::Partial {
        start,
        end_inclusive,
    }
}

// ---- ETag ----

#[test]
fn etag_is_strong_quoted_hex() {
    let mut sha = [0u8; 32];
    sha[0] = 0x01;
    sha[31] = 0xff;
    let e = etag(&sha);
    assert_eq!(e.len(), 2 + 7 + 64);
    assert_eq!(
        e,
        format!("\"sha256-01{}ff\"", "00".repeat(30)),
        "lower-case hex, quotes included"
    );
    assert!(!e.starts_with("W/"));
}

// ---- Range forms ----

#[test]
fn no_range_is_full() {
    let p = plan(LEN, &tag(), &Request::default());
    assert_eq!(p, Plan::Full);
    assert_eq!(p.status(), 200);
    assert_eq!(p.content_range(LEN), None);
    assert_eq!(p.body_range(LEN), Some(0..LEN));
}

#[test]
fn closed_range() {
    let p = range("bytes=0-499");
    assert_eq!(p, partial(0, 499));
    assert_eq!(p.status(), 206);
    assert_eq!(p.content_range(LEN).as_deref(), Some("bytes 0-499/1000"));
    assert_eq!(p.body_range(LEN), Some(0..500));
    assert_eq!(range("bytes=500-500"), partial(500, 500));
    assert_eq!(range("bytes=999-999"), partial(999, 999));
}

#[test]
fn closed_range_end_is_clamped() {
    let p = range("bytes=900-5000");
    assert_eq!(p, partial(900, 999));
    assert_eq!(p.content_range(LEN).as_deref(), Some("bytes 900-999/1000"));
    assert_eq!(range("bytes=0-999"), partial(0, 999));
    assert_eq!(range("bytes=0-1000"), partial(0, 999));
}

#[test]
fn open_range() {
    let p = range("bytes=400-");
    assert_eq!(p, partial(400, 999));
    assert_eq!(p.content_range(LEN).as_deref(), Some("bytes 400-999/1000"));
    assert_eq!(p.body_range(LEN), Some(400..1000));
    assert_eq!(range("bytes=0-"), partial(0, 999));
    assert_eq!(range("bytes=999-"), partial(999, 999));
}

#[test]
fn suffix_range() {
    let p = range("bytes=-100");
    assert_eq!(p, partial(900, 999));
    assert_eq!(p.content_range(LEN).as_deref(), Some("bytes 900-999/1000"));
    assert_eq!(range("bytes=-1"), partial(999, 999));
    // Longer than the package: the whole package, still 206.
    assert_eq!(range("bytes=-1000"), partial(0, 999));
    assert_eq!(range("bytes=-5000"), partial(0, 999));
}

#[test]
fn start_at_or_past_end_is_unsatisfiable() {
    for r in [
        "bytes=1000-",
        "bytes=1000-2000",
        "bytes=5000-",
        "bytes=1000-1000",
    ] {
        let p = range(r);
        assert_eq!(p, Plan::Unsatisfiable, "{r}");
        assert_eq!(p.status(), 416);
        assert_eq!(p.content_range(LEN).as_deref(), Some("bytes */1000"));
        assert_eq!(p.body_range(LEN), None);
    }
}

#[test]
fn zero_suffix_is_unsatisfiable() {
    assert_eq!(range("bytes=-0"), Plan::Unsatisfiable);
}

#[test]
fn last_before_first_is_invalid_416() {
    // RFC 9110 §14.1.1: an int-range with last-pos < first-pos is invalid;
    // §15.5.17: 416.
    assert_eq!(range("bytes=500-400"), Plan::Unsatisfiable);
}

#[test]
fn empty_package_with_a_range_is_unsatisfiable() {
    for r in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-9"] {
        let p = plan(
            0,
            &tag(),
            &Request {
                range: Some(r),
                ..Request::default()
            },
        );
        assert_eq!(p, Plan::Unsatisfiable, "{r}");
        assert_eq!(p.content_range(0).as_deref(), Some("bytes */0"));
    }
    let p = plan(0, &tag(), &Request::default());
    assert_eq!(p, Plan::Full);
    assert_eq!(p.body_range(0), Some(0..0));
}

#[test]
fn one_byte_package() {
    let one = |r: &str| {
        plan(
            1,
            &tag(),
            &Request {
                range: Some(r),
                ..Request::default()
            },
        )
    };
    assert_eq!(one("bytes=0-0"), partial(0, 0));
    assert_eq!(one("bytes=0-"), partial(0, 0));
    assert_eq!(one("bytes=-1"), partial(0, 0));
    assert_eq!(one("bytes=-9"), partial(0, 0));
    assert_eq!(one("bytes=1-"), Plan::Unsatisfiable);
}

#[test]
fn multiple_ranges_serve_the_whole_body() {
    for r in [
        "bytes=0-1,5-6",
        "bytes=0-1, 5-6",
        "bytes=-10,0-5",
        "bytes=0-,0-",
        // One satisfiable is enough.
        "bytes=0-1,5000-6000",
    ] {
        assert_eq!(range(r), Plan::Full, "{r}");
    }
}

#[test]
fn multiple_ranges_none_satisfiable_or_one_invalid_is_416() {
    assert_eq!(range("bytes=1000-,2000-3000"), Plan::Unsatisfiable);
    assert_eq!(range("bytes=-0,5000-"), Plan::Unsatisfiable);
    assert_eq!(range("bytes=0-1,9-5"), Plan::Unsatisfiable);
}

#[test]
fn empty_list_elements_are_skipped() {
    assert_eq!(range("bytes=0-9,"), partial(0, 9));
    assert_eq!(range("bytes=, ,0-9"), partial(0, 9));
    assert_eq!(range("bytes=,"), Plan::Full);
}

#[test]
fn unit_is_case_insensitive_and_ows_tolerated() {
    assert_eq!(range("Bytes=0-9"), partial(0, 9));
    assert_eq!(range("BYTES=0-9"), partial(0, 9));
    assert_eq!(range("  bytes=0-9 "), partial(0, 9));
    assert_eq!(range("bytes= 0-9"), partial(0, 9));
}

#[test]
fn malformed_range_or_other_unit_is_ignored() {
    for r in [
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=a-b",
        "bytes=0-x",
        "bytes=x-9",
        "bytes=1-2-3",
        "bytes=0 - 9",
        "bytes=+5-9",
        "bytes=-+5",
        "bytes=--5",
        "bytes=0x10-",
        "bytes=0-1,junk",
        "bytes 0-9",
        "items=0-9",
        "bits=0-9",
        "=0-9",
        "bytes=١-٢",
    ] {
        let p = range(r);
        assert_eq!(p, Plan::Full, "{r:?}");
        assert_eq!(p.content_range(LEN), None);
    }
}

#[test]
fn huge_numbers_saturate_without_overflow() {
    let big = "99999999999999999999999999999999";
    let max = u64::MAX.to_string();
    // A huge last-pos means "to the end".
    assert_eq!(range(&format!("bytes=10-{big}")), partial(10, 999));
    assert_eq!(range(&format!("bytes=0-{max}")), partial(0, 999));
    // A huge suffix means the whole package.
    assert_eq!(range(&format!("bytes=-{big}")), partial(0, 999));
    // A huge first-pos is past the end.
    assert_eq!(range(&format!("bytes={big}-")), Plan::Unsatisfiable);
    assert_eq!(range(&format!("bytes={big}-{big}")), Plan::Unsatisfiable);
    assert_eq!(range(&format!("bytes={max}-")), Plan::Unsatisfiable);
    // A package of u64::MAX bytes.
    let huge = |r: &str| {
        plan(
            u64::MAX,
            &tag(),
            &Request {
                range: Some(r),
                ..Request::default()
            },
        )
    };
    assert_eq!(huge("bytes=0-"), partial(0, u64::MAX - 1));
    assert_eq!(huge(&format!("bytes=-{big}")), partial(0, u64::MAX - 1));
    let p = huge(&format!("bytes={}-", u64::MAX - 1));
    assert_eq!(p, partial(u64::MAX - 1, u64::MAX - 1));
    assert_eq!(p.body_range(u64::MAX), Some(u64::MAX - 1..u64::MAX));
    assert_eq!(huge(&format!("bytes={max}-")), Plan::Unsatisfiable);
}

#[test]
fn head_ignores_range() {
    // RFC 9110 §14.2: range handling is defined for GET only.
    let p = plan(
        LEN,
        &tag(),
        &Request {
            range: Some("bytes=0-9"),
            head: true,
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::Full);
    assert_eq!(p.body_range(LEN), Some(0..LEN));
    // But a HEAD is still conditional.
    let p = plan(
        LEN,
        &tag(),
        &Request {
            if_none_match: Some(&tag()),
            head: true,
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::NotModified);
}

// ---- If-Range ----

fn if_range(value: &str) -> Plan {
    plan(
        LEN,
        &tag(),
        &Request {
            range: Some("bytes=100-"),
            if_range: Some(value),
            ..Request::default()
        },
    )
}

#[test]
fn if_range_matching_strong_etag_serves_the_range() {
    assert_eq!(if_range(&tag()), partial(100, 999));
    assert_eq!(if_range(&format!(" {} ", tag())), partial(100, 999));
}

#[test]
fn if_range_not_matching_serves_the_whole_body() {
    let other = etag(&[0xcd; 32]);
    let weak = format!("W/{}", tag());
    let unquoted = tag().trim_matches('"').to_string();
    let upper = tag().to_uppercase();
    for v in [
        other.as_str(),
        weak.as_str(),
        unquoted.as_str(),
        upper.as_str(),
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "",
        "*",
    ] {
        let p = if_range(v);
        assert_eq!(p, Plan::Full, "{v:?}");
        assert_eq!(p.status(), 200);
    }
}

#[test]
fn if_range_with_a_weak_current_etag_never_matches() {
    let weak = format!("W/{}", tag());
    let p = plan(
        LEN,
        &weak,
        &Request {
            range: Some("bytes=0-9"),
            if_range: Some(&weak),
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::Full);
}

#[test]
fn if_range_without_range_is_full() {
    let p = plan(
        LEN,
        &tag(),
        &Request {
            if_range: Some(&tag()),
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::Full);
}

#[test]
fn if_range_match_with_unsatisfiable_range_is_416() {
    let p = plan(
        LEN,
        &tag(),
        &Request {
            range: Some("bytes=2000-"),
            if_range: Some(&tag()),
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::Unsatisfiable);
}

// ---- If-None-Match ----

fn inm(value: &str) -> Plan {
    plan(
        LEN,
        &tag(),
        &Request {
            if_none_match: Some(value),
            ..Request::default()
        },
    )
}

#[test]
fn if_none_match_matching_is_304() {
    let t = tag();
    let other = etag(&[1; 32]);
    for v in [
        t.clone(),
        format!("W/{t}"),
        "*".to_string(),
        " * ".to_string(),
        format!("{other}, {t}"),
        format!("{other},W/{t}"),
        format!("\"x\" ,\t{t} , \"y\""),
        format!(",{t},"),
    ] {
        let p = inm(&v);
        assert_eq!(p, Plan::NotModified, "{v:?}");
        assert_eq!(p.status(), 304);
        assert_eq!(p.content_range(LEN), None);
        assert_eq!(p.body_range(LEN), None);
    }
}

#[test]
fn if_none_match_weak_comparison_against_weak_current_etag() {
    let weak = format!("W/{}", tag());
    let p = plan(
        LEN,
        &weak,
        &Request {
            if_none_match: Some(&tag()),
            ..Request::default()
        },
    );
    assert_eq!(p, Plan::NotModified);
}

#[test]
fn if_none_match_not_matching_goes_on() {
    let t = tag();
    let other = etag(&[1; 32]);
    let unquoted = t.trim_matches('"').to_string();
    for v in [
        other.clone(),
        format!("W/{other}"),
        unquoted,
        String::new(),
        t.to_uppercase(),
        // Malformed lists match nothing.
        format!("{t} junk"),
        format!("{t}\"x"),
        format!("*, {t}"),
        "\"unterminated".to_string(),
    ] {
        assert_eq!(inm(&v), Plan::Full, "{v:?}");
    }
    // With a range, the range is served.
    let p = plan(
        LEN,
        &t,
        &Request {
            range: Some("bytes=0-9"),
            if_none_match: Some(&other),
            ..Request::default()
        },
    );
    assert_eq!(p, partial(0, 9));
}

#[test]
fn if_none_match_wins_over_range() {
    let p = plan(
        LEN,
        &tag(),
        &Request {
            range: Some("bytes=0-9"),
            if_range: Some(&tag()),
            if_none_match: Some(&tag()),
            head: false,
        },
    );
    assert_eq!(p, Plan::NotModified);
}

#[test]
fn content_range_and_body_range_per_plan() {
    assert_eq!(Plan::Full.content_range(7), None);
    assert_eq!(Plan::NotModified.content_range(7), None);
    assert_eq!(
        Plan::Unsatisfiable.content_range(7).as_deref(),
        Some("bytes */7")
    );
    assert_eq!(
        partial(2, 4).content_range(7).as_deref(),
        Some("bytes 2-4/7")
    );
    assert_eq!(partial(2, 4).body_range(7), Some(2..5));
    assert_eq!(Plan::Full.body_range(7), Some(0..7));
    assert_eq!(
        [
            Plan::Full.status(),
            Plan::NotModified.status(),
            partial(0, 0).status(),
            Plan::Unsatisfiable.status()
        ],
        [200, 304, 206, 416]
    );
}

proptest! {
    #[test]
    fn any_closed_range_lies_within_the_package(len in 0u64..5000, a in 0u64..6000, b in 0u64..6000) {
        let r = format!("bytes={a}-{b}");
        let p = plan(len, &tag(), &Request { range: Some(&r), ..Request::default() });
        if let Some(body) = p.body_range(len) {
            prop_assert!(body.start <= body.end && body.end <= len, "{p:?} for {r} of {len}");
        }
        match p {
            Plan::Partial { start, end_inclusive } => {
                prop_assert!(start <= end_inclusive && end_inclusive < len);
                prop_assert_eq!(start, a);
                prop_assert_eq!(end_inclusive, b.min(len - 1));
                prop_assert!(!p.body_range(len).unwrap().is_empty());
                prop_assert_eq!(p.content_range(len), Some(format!("bytes {start}-{end_inclusive}/{len}")));
            }
            Plan::Unsatisfiable => prop_assert!(a >= len || b < a),
            Plan::Full | Plan::NotModified => prop_assert!(false, "{p:?} for {r}"),
        }
    }

    #[test]
    fn any_range_form_of_any_len_is_sound(len in any::<u64>(), a in any::<u64>(), b in any::<u64>(), form in 0..3u8) {
        let r = match form {
            0 => format!("bytes={a}-{b}"),
            1 => format!("bytes={a}-"),
            _ => format!("bytes=-{b}"),
        };
        let p = plan(len, &tag(), &Request { range: Some(&r), ..Request::default() });
        if let Some(body) = p.body_range(len) {
            prop_assert!(body.start <= body.end && body.end <= len);
        }
        if let Plan::Partial { start, end_inclusive } = p {
            prop_assert!(start <= end_inclusive && end_inclusive < len);
        }
        prop_assert!(matches!(p, Plan::Partial { .. } | Plan::Unsatisfiable), "{p:?} for {r}");
    }

    #[test]
    fn plan_never_panics(
        len in any::<u64>(),
        range in proptest::option::of(".{0,40}"),
        if_range in proptest::option::of(".{0,40}"),
        inm in proptest::option::of(".{0,40}"),
        head in any::<bool>(),
        ranges in "(bytes|Bytes|x)=([0-9]{0,25}-[0-9]{0,25}|,| ){0,4}",
    ) {
        let t = tag();
        for r in [range.as_deref(), Some(ranges.as_str())] {
            let req = Request { range: r, if_range: if_range.as_deref(), if_none_match: inm.as_deref(), head };
            let p = plan(len, &t, &req);
            let _ = p.status();
            let _ = p.content_range(len);
            if let Some(body) = p.body_range(len) {
                prop_assert!(body.start <= body.end && body.end <= len);
            }
            if let Plan::Partial { start, end_inclusive } = p {
                prop_assert!(start <= end_inclusive && end_inclusive < len);
            }
        }
    }
}

// ---- OMA download descriptor ----

fn dd() -> Descriptor {
    Descriptor {
        name: "Acme X1 1.0 -> 1.1".into(),
        object_uri: "https://fota.example/dl/u1?a=1&b=2".into(),
        size: 123_456,
        content_type: "application/vnd.fota.package".into(),
        install_notify_uri: Some("https://fota.example/dl/u1/notify".into()),
        description: Some("Fixes <bugs> & \"stuff\" it's".into()),
        vendor: Some("Acme".into()),
        dd_version: "1.0".into(),
        install_param: Some("-v".into()),
    }
}

#[test]
fn dd_content_type_and_namespace() {
    assert_eq!(DD_CONTENT_TYPE, "application/vnd.oma.dd+xml");
    assert_eq!(DD_NAMESPACE, "http://www.openmobilealliance.org/xmlns/dd");
}

#[test]
fn dd_to_xml_shape() {
    let x = dd().to_xml();
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert!(x.contains("<media xmlns=\"http://www.openmobilealliance.org/xmlns/dd\">"));
    let order = [
        "<type>application/vnd.fota.package</type>",
        "<objectURI>https://fota.example/dl/u1?a=1&amp;b=2</objectURI>",
        "<size>123456</size>",
        "<name>Acme X1 1.0 -&gt; 1.1</name>",
        "<DDVersion>1.0</DDVersion>",
        "<vendor>Acme</vendor>",
        "<description>Fixes &lt;bugs&gt; &amp; &quot;stuff&quot; it&apos;s</description>",
        "<installNotifyURI>https://fota.example/dl/u1/notify</installNotifyURI>",
        "<installParam>-v</installParam>",
        "</media>",
    ];
    let mut at = 0;
    for o in order {
        let i = x[at..]
            .find(o)
            .unwrap_or_else(|| panic!("{o} after byte {at} in\n{x}"));
        at += i + o.len();
    }
}

#[test]
fn dd_optional_elements_are_left_out() {
    let d = Descriptor {
        install_notify_uri: None,
        description: None,
        vendor: None,
        install_param: None,
        ..dd()
    };
    let x = d.to_xml();
    for e in ["vendor", "description", "installNotifyURI", "installParam"] {
        assert!(!x.contains(&format!("<{e}>")), "{e} in {x}");
    }
    assert_eq!(Descriptor::parse(x.as_bytes()), Ok(d));
}

#[test]
fn dd_round_trip() {
    let d = dd();
    assert_eq!(Descriptor::parse(d.to_xml().as_bytes()), Ok(d));
}

#[test]
fn dd_round_trip_keeps_whitespace_and_empty_strings() {
    let d = Descriptor {
        name: "  two  spaces\tand\r\nnewlines \n".into(),
        description: Some(String::new()),
        vendor: Some(" ".into()),
        install_param: Some("]]> <![CDATA[ x ]]>".into()),
        ..dd()
    };
    assert_eq!(Descriptor::parse(d.to_xml().as_bytes()), Ok(d));
}

#[test]
fn dd_chars_xml_cannot_carry_become_replacement() {
    let d = Descriptor {
        name: "a\u{0}b\u{1b}c\u{fffe}".into(),
        ..dd()
    };
    let back = Descriptor::parse(d.to_xml().as_bytes()).unwrap();
    assert_eq!(back.name, "a\u{fffd}b\u{fffd}c\u{fffd}");
}

#[test]
fn dd_parse_foreign_forms() {
    // A prefixed namespace, pretty-printed text, CDATA, unknown OMA
    // elements and extensions, comments, no DDVersion, no name.
    let x = br#"<?xml version="1.0"?>
<!-- a comment -->
<dd:media xmlns:dd="http://www.openmobilealliance.org/xmlns/dd" xmlns:x="urn:ext">
  <dd:type>
     application/octet-stream
  </dd:type>
  <dd:type>text/plain</dd:type>
  <dd:size> 42 </dd:size>
  <dd:objectURI><![CDATA[http://h/p?a=1&b=<2>]]></dd:objectURI>
  <dd:nextURL>http://h/next</dd:nextURL>
  <x:extra><x:deep>ignored</x:deep></x:extra>
  <dd:installNotifyURI/>
</dd:media>
"#;
    let d = Descriptor::parse(x).unwrap();
    assert_eq!(d.content_type, "application/octet-stream");
    assert_eq!(d.size, 42);
    assert_eq!(d.object_uri, "http://h/p?a=1&b=<2>");
    assert_eq!(d.install_notify_uri.as_deref(), Some(""));
    assert_eq!(d.name, "");
    assert_eq!(d.dd_version, "1.0");
    assert_eq!(d.vendor, None);
}

#[test]
fn dd_parse_without_namespace_and_with_bom() {
    let x = "\u{feff}<media><type>a/b</type><objectURI>u</objectURI><size>0</size></media>";
    let d = Descriptor::parse(x.as_bytes()).unwrap();
    assert_eq!(
        (d.content_type.as_str(), d.object_uri.as_str(), d.size),
        ("a/b", "u", 0)
    );
}

#[test]
fn dd_parse_size_limits() {
    let with = |s: &str| {
        Descriptor::parse(
            format!("<media><type>a</type><objectURI>u</objectURI><size>{s}</size></media>")
                .as_bytes(),
        )
    };
    assert_eq!(with(&u64::MAX.to_string()).unwrap().size, u64::MAX);
    for bad in [
        "",
        "-1",
        "+1",
        "1.5",
        "12abc",
        "0x10",
        "18446744073709551616",
        "1 2",
    ] {
        match with(bad) {
            Err(DescriptorError::BadSize { found, offset }) => {
                assert_eq!(found, bad);
                assert_eq!(offset, 45, "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn dd_parse_missing_mandatory_elements() {
    let cases = [
        (
            "<media><objectURI>u</objectURI><size>1</size></media>",
            "type",
        ),
        ("<media><type>a</type><size>1</size></media>", "objectURI"),
        (
            "<media><type>a</type><objectURI>u</objectURI></media>",
            "size",
        ),
        ("<media/>", "type"),
    ];
    for (x, want) in cases {
        let doc = format!("<?xml version=\"1.0\"?>\n{x}");
        match Descriptor::parse(doc.as_bytes()) {
            Err(e @ DescriptorError::Missing { element, offset }) => {
                assert_eq!(element, want, "{x}");
                assert_eq!(offset, 22, "{x}");
                let m = e.to_string();
                assert!(
                    m.contains(&format!("<{want}>")) && m.contains("byte 22"),
                    "{m}"
                );
            }
            other => panic!("{x}: {other:?}"),
        }
    }
    // In another namespace, a mandatory element does not count.
    let x = r#"<media xmlns:o="urn:other"><o:type>a</o:type><objectURI>u</objectURI><size>1</size></media>"#;
    assert!(matches!(
        Descriptor::parse(x.as_bytes()),
        Err(DescriptorError::Missing {
            element: "type",
            offset: 0
        })
    ));
}

#[test]
fn dd_parse_errors_name_element_and_offset() {
    // Wrong root.
    let e = Descriptor::parse(b"<?xml version=\"1.0\"?><foo/>").unwrap_err();
    assert_eq!(
        e,
        DescriptorError::Root {
            found: "foo".into(),
            offset: 21
        }
    );
    assert!(e.to_string().contains("<foo> at byte 21"), "{e}");
    // Root in another namespace.
    let e = Descriptor::parse(br#"<media xmlns="urn:x"><type>a</type></media>"#).unwrap_err();
    assert!(
        matches!(e, DescriptorError::Root { offset: 0, .. }),
        "{e:?}"
    );
    // A second root.
    let one = "<media><type>a</type><objectURI>u</objectURI><size>1</size></media>";
    let e = Descriptor::parse(format!("{one}<media/>").as_bytes()).unwrap_err();
    assert_eq!(
        e,
        DescriptorError::Root {
            found: "media".into(),
            offset: one.len() as u64
        }
    );
    // Nothing at all.
    assert_eq!(
        Descriptor::parse(b"").unwrap_err(),
        DescriptorError::NoRoot { len: 0 }
    );
    assert_eq!(
        Descriptor::parse(b"<?xml version=\"1.0\"?>  ").unwrap_err(),
        DescriptorError::NoRoot { len: 23 }
    );
    // An element inside a text element.
    let e = Descriptor::parse(b"<media><name>a<b>x</b></name></media>").unwrap_err();
    assert_eq!(
        e,
        DescriptorError::Nested {
            element: "name",
            found: "b".into(),
            offset: 14
        }
    );
    // A duplicate.
    let e = Descriptor::parse(b"<media><size>1</size><size>2</size></media>").unwrap_err();
    assert_eq!(
        e,
        DescriptorError::Duplicate {
            element: "size",
            offset: 21,
            first: 7
        }
    );
    assert!(e.to_string().contains("byte 21"), "{e}");
    // A bad escape.
    let e = Descriptor::parse(b"<media><name>a &bogus; b</name></media>").unwrap_err();
    assert!(
        matches!(
            e,
            DescriptorError::Text {
                element: "name",
                offset: 7,
                ..
            }
        ),
        "{e:?}"
    );
    // Mismatched and unclosed tags.
    let e = Descriptor::parse(b"<media><name>a</nam></media>").unwrap_err();
    assert!(matches!(e, DescriptorError::Xml { .. }), "{e:?}");
    let e = Descriptor::parse(b"<media><name>a</name>").unwrap_err();
    match e {
        DescriptorError::Xml { offset, detail } => {
            assert_eq!(offset, 21);
            assert!(detail.contains("<media>"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // Not UTF-8 text.
    let e = Descriptor::parse(b"<media><name>\xff</name></media>").unwrap_err();
    assert!(
        matches!(
            e,
            DescriptorError::Text {
                element: "name",
                offset: 7,
                ..
            } | DescriptorError::Xml { .. }
        ),
        "{e:?}"
    );
}

fn xml_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>().prop_filter("XML 1.0 Char", |c| matches!(
            *c,
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..
        )),
        2 => proptest::sample::select(vec!['<', '>', '&', '"', '\'', ' ', '\t', '\n', '\r', ']', ';', '#']),
        2 => proptest::char::range('a', 'z'),
    ];
    proptest::collection::vec(ch, 0..40).prop_map(String::from_iter)
}

proptest! {
    #[test]
    fn dd_round_trips_any_text(
        name in xml_text(),
        object_uri in xml_text(),
        size in any::<u64>(),
        content_type in xml_text(),
        install_notify_uri in proptest::option::of(xml_text()),
        description in proptest::option::of(xml_text()),
        vendor in proptest::option::of(xml_text()),
        dd_version in xml_text(),
        install_param in proptest::option::of(xml_text()),
    ) {
        let d = Descriptor {
            name, object_uri, size, content_type, install_notify_uri,
            description, vendor, dd_version, install_param,
        };
        let x = d.to_xml();
        prop_assert_eq!(Descriptor::parse(x.as_bytes()), Ok(d), "{}", x);
    }

    #[test]
    fn dd_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Descriptor::parse(&bytes);
    }

    #[test]
    fn dd_parse_never_panics_on_mangled_descriptors(cut in 0usize..400, at in 0usize..400, b in any::<u8>()) {
        let mut x = dd().to_xml().into_bytes();
        let at = at % x.len();
        x[at] = b;
        x.truncate(cut.min(x.len()));
        let _ = Descriptor::parse(&x);
    }
}

// ---- Install notify ----

#[test]
fn install_status_table() {
    let table = [
        (InstallStatus::Success, 900, "Success"),
        (
            InstallStatus::InsufficientMemory,
            901,
            "Insufficient memory",
        ),
        (InstallStatus::UserCancelled, 902, "User Cancelled"),
        (InstallStatus::LossOfService, 903, "Loss of Service"),
        (InstallStatus::AttributeMismatch, 905, "Attribute mismatch"),
        (InstallStatus::InvalidDescriptor, 906, "Invalid descriptor"),
        (InstallStatus::InvalidDdVersion, 951, "Invalid DDVersion"),
        (InstallStatus::DeviceAborted, 952, "Device Aborted"),
        (
            InstallStatus::NonAcceptableContent,
            953,
            "Non-Acceptable Content",
        ),
        (InstallStatus::LoaderError, 954, "Loader Error"),
    ];
    assert_eq!(InstallStatus::ALL.len(), table.len());
    for (i, (s, code, meaning)) in table.into_iter().enumerate() {
        assert_eq!(InstallStatus::ALL[i], s);
        assert_eq!(s.code(), code);
        assert_eq!(s.meaning(), meaning);
        assert_eq!(InstallStatus::from_code(code), Some(s));
        assert_eq!(s.is_success(), code == 900);
        assert_eq!(s.to_string(), format!("{code} {meaning}"));
        assert_eq!(install_notify_body(s), format!("{code} {meaning}"));
    }
}

#[test]
fn every_status_round_trips_through_the_body() {
    for s in InstallStatus::ALL {
        let body = install_notify_body(s);
        assert_eq!(
            parse_install_notify(body.as_bytes()),
            Ok((s, s.meaning().to_string()))
        );
        let with_newline = format!("{body}\r\n");
        assert_eq!(
            parse_install_notify(with_newline.as_bytes()),
            Ok((s, s.meaning().to_string()))
        );
    }
}

#[test]
fn undefined_codes_are_none() {
    let defined: Vec<u16> = InstallStatus::ALL.iter().map(|s| s.code()).collect();
    for code in 0..=u16::MAX {
        assert_eq!(
            InstallStatus::from_code(code).is_some(),
            defined.contains(&code),
            "{code}"
        );
    }
}

#[test]
fn notify_body_message_is_kept() {
    assert_eq!(
        parse_install_notify(b"905 Attribute mismatch: size 10 != 12\n"),
        Ok((
            InstallStatus::AttributeMismatch,
            "Attribute mismatch: size 10 != 12".into()
        ))
    );
    assert_eq!(
        parse_install_notify(b"  954\tflash write failed  "),
        Ok((InstallStatus::LoaderError, "flash write failed".into()))
    );
    // No message: the status's own.
    assert_eq!(
        parse_install_notify(b"902"),
        Ok((InstallStatus::UserCancelled, "User Cancelled".into()))
    );
    assert_eq!(
        parse_install_notify(b"900 \n"),
        Ok((InstallStatus::Success, "Success".into()))
    );
}

#[test]
fn bad_notify_bodies_are_typed_errors() {
    for (body, found, offset) in [
        (&b"904 Whatever"[..], "904", 0),
        (b"950 Nope", "950", 0),
        (b"999 Nope", "999", 0),
        (b"000", "000", 0),
        (b"Success", "Success", 0),
        (b"  OK 900", "OK", 2),
        (b"900Success", "900Success", 0),
        (b"0900 Success", "0900", 0),
        (b"+900 Success", "+900", 0),
        (b"90 Success", "90", 0),
        (b"-900", "-900", 0),
    ] {
        let e = parse_install_notify(body).unwrap_err();
        assert_eq!(
            e,
            NotifyError::UnknownStatus {
                found: found.into(),
                offset
            },
            "{:?}",
            String::from_utf8_lossy(body)
        );
        let m = e.to_string();
        assert!(
            m.contains(&format!("{found:?}"))
                && m.contains(&format!("byte {offset}"))
                && m.contains("expected"),
            "{m}"
        );
    }
    let long = "x".repeat(100);
    assert_eq!(
        parse_install_notify(long.as_bytes()),
        Err(NotifyError::UnknownStatus {
            found: "x".repeat(32),
            offset: 0
        })
    );
    assert_eq!(parse_install_notify(b""), Err(NotifyError::Empty));
    assert_eq!(parse_install_notify(b" \r\n\t"), Err(NotifyError::Empty));
    assert_eq!(
        parse_install_notify(b"900 \xff\xfe"),
        Err(NotifyError::NotText { offset: 4 })
    );
    let mut big = b"900 Success ".to_vec();
    big.resize(MAX_NOTIFY_LEN + 1, b'x');
    let e = parse_install_notify(&big).unwrap_err();
    assert_eq!(e, NotifyError::TooLong { len: 1025 });
    assert!(
        e.to_string().contains("1025") && e.to_string().contains("1024"),
        "{e}"
    );
    // Exactly the limit is fine.
    big.truncate(MAX_NOTIFY_LEN);
    assert_eq!(
        parse_install_notify(&big).unwrap().0,
        InstallStatus::Success
    );
}

proptest! {
    #[test]
    fn parse_install_notify_never_panics(body in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let _ = parse_install_notify(&body);
    }

    #[test]
    fn any_code_and_message_round_trip(i in 0usize..10, msg in "[ -~]{0,200}") {
        let s = InstallStatus::ALL[i];
        let body = format!("{} {msg}\n", s.code());
        let want = if msg.trim().is_empty() { s.meaning().to_string() } else { msg.trim().to_string() };
        prop_assert_eq!(parse_install_notify(body.as_bytes()), Ok((s, want)));
    }
}
