//! DM 1.2 security, FUMO codes and reports, and package #0: known-answer
//! vectors (computed independently with Python's hashlib/base64), the
//! challenge-then-refuse rule, and round trips.

use fota_server::omadm::auth::{
    self, AuthError, Challenger, Credentials, HmacHeader, Scheme, Verdict,
};
use fota_server::omadm::fumo::{self, AlertType, Operation, Report, ReportError, ResultCode};
use fota_server::omadm::message::*;
use fota_server::omadm::notification::{Initiator, Notification, NotificationError, UiMode};
use proptest::prelude::*;

fn nonce() -> Vec<u8> {
    (0u8..16).collect()
}

fn creds() -> Credentials {
    Credentials::new("user", "pwd")
}

#[test]
fn known_answers() {
    assert_eq!(
        auth::md5_digest(&creds(), &nonce()),
        "kOSVjDVMsAtD8frWaT5Q4g=="
    );
    assert_eq!(
        auth::hmac_mac(&creds(), &nonce(), b"<SyncML/>"),
        "awCxUHEwBtesgb4amao8Dg=="
    );
    assert_eq!(auth::basic(&creds()), "dXNlcjpwd2Q=");
    assert_eq!(
        auth::hmac_header(&creds(), &nonce(), b"<SyncML/>"),
        "algorithm=MD5, username=\"user\", mac=awCxUHEwBtesgb4amao8Dg=="
    );
}

#[test]
fn nonces_are_fresh_and_long_enough() {
    let a = auth::new_nonce().unwrap();
    let b = auth::new_nonce().unwrap();
    assert!(a.len() >= 16);
    assert_ne!(a, b);
    let chal = auth::chal(Scheme::Md5, &a);
    assert_eq!(chal.meta.format.as_deref(), Some("b64"));
    assert_eq!(chal.meta.type_.as_deref(), Some("syncml:auth-md5"));
    assert_eq!(
        auth::decode_nonce(chal.meta.next_nonce.as_deref().unwrap()),
        Some(a)
    );
}

#[test]
fn cred_verification() {
    let n = nonce();
    let md5 = auth::cred(Scheme::Md5, &creds(), &n).unwrap();
    assert_eq!(
        auth::verify_cred(&md5, Scheme::Md5, &creds(), &n, false),
        Ok(())
    );
    assert_eq!(
        auth::verify_cred(
            &md5,
            Scheme::Md5,
            &Credentials::new("user", "other"),
            &n,
            false
        ),
        Err(AuthError::Mismatch)
    );
    assert_eq!(
        auth::verify_cred(&md5, Scheme::Md5, &creds(), &[1, 2, 3], false),
        Err(AuthError::Mismatch)
    );
    let basic = auth::cred(Scheme::Basic, &creds(), &n).unwrap();
    assert_eq!(
        auth::verify_cred(&basic, Scheme::Md5, &creds(), &n, false),
        Err(AuthError::BasicRefused)
    );
    assert_eq!(
        auth::verify_cred(&basic, Scheme::Md5, &creds(), &n, true),
        Ok(())
    );
    assert!(auth::cred(Scheme::Hmac, &creds(), &n).is_none());
    let mut odd = md5.clone();
    odd.meta.type_ = Some("syncml:auth-X509".into());
    assert!(matches!(
        auth::verify_cred(&odd, Scheme::Md5, &creds(), &n, false),
        Err(AuthError::WrongScheme { .. })
    ));
    assert_eq!(Scheme::from_type("SYNCML:AUTH-mac"), Some(Scheme::Hmac));
    assert!(auth::constant_time_eq(b"abc", b"abc"));
    assert!(!auth::constant_time_eq(b"abc", b"abd"));
    assert!(!auth::constant_time_eq(b"abc", b"ab"));
}

#[test]
fn hmac_header_forms() {
    let n = nonce();
    let body = b"exact body bytes";
    let h = auth::hmac_header(&creds(), &n, body);
    assert_eq!(auth::verify_hmac(&h, body, &creds(), &n), Ok(()));
    // One byte of the body changed: refused.
    assert_eq!(
        auth::verify_hmac(&h, b"exact body bytez", &creds(), &n),
        Err(AuthError::Mismatch)
    );
    // Algorithm left out, other order, spaces, unquoted user name.
    let mac = auth::hmac_mac(&creds(), &n, body);
    let h2 = format!(" mac={mac} ,username=user");
    assert_eq!(auth::verify_hmac(&h2, body, &creds(), &n), Ok(()));
    assert_eq!(
        HmacHeader::parse("algorithm=SHA1, username=u, mac=x"),
        Err(AuthError::BadHeader {
            reason: "algorithm is not MD5"
        })
    );
    assert!(matches!(
        HmacHeader::parse("username=u"),
        Err(AuthError::BadHeader { .. })
    ));
    assert!(matches!(
        HmacHeader::parse("garbage"),
        Err(AuthError::BadHeader { .. })
    ));
    // Another user name with a valid mac for "user": refused.
    let h3 = format!("username=\"other\", mac={mac}");
    assert_eq!(
        auth::verify_hmac(&h3, body, &creds(), &n),
        Err(AuthError::Mismatch)
    );
}

fn hdr(cred: Option<Cred>) -> SyncHdr {
    SyncHdr {
        ver_dtd: VER_DTD.into(),
        ver_proto: VER_PROTO.into(),
        session_id: "1".into(),
        msg_id: 1,
        target: Location::uri("http://s"),
        source: Location {
            loc_uri: "IMEI:1".into(),
            loc_name: Some("user".into()),
        },
        resp_uri: None,
        no_resp: false,
        cred,
        meta: None,
    }
}

#[test]
fn challenger_challenges_once_more_with_a_fresh_nonce_then_refuses() {
    let mut ch = Challenger::new(Scheme::Md5, false, None).unwrap();
    let first = ch.nonce().to_vec();
    // No credentials: 407 with a fresh nonce.
    let Verdict::Challenge { status, chal, .. } =
        ch.check(&hdr(None), None, b"", &creds()).unwrap()
    else {
        panic!()
    };
    assert_eq!(status, 407);
    let n1 = auth::decode_nonce(chal.meta.next_nonce.as_deref().unwrap()).unwrap();
    assert_ne!(n1, first);
    assert_eq!(n1, ch.nonce());
    // Wrong password: 401 with another fresh nonce.
    let wrong = auth::cred(Scheme::Md5, &Credentials::new("user", "bad"), &n1);
    let Verdict::Challenge {
        status,
        chal,
        reason,
    } = ch.check(&hdr(wrong), None, b"", &creds()).unwrap()
    else {
        panic!()
    };
    assert_eq!((status, reason), (401, AuthError::Mismatch));
    let n2 = auth::decode_nonce(chal.meta.next_nonce.as_deref().unwrap()).unwrap();
    assert_ne!(n2, n1);
    // Wrong again: refused for good.
    let wrong = auth::cred(Scheme::Md5, &Credentials::new("user", "bad"), &n2);
    assert_eq!(
        ch.check(&hdr(wrong), None, b"", &creds()).unwrap(),
        Verdict::Refused {
            reason: AuthError::Mismatch
        }
    );

    // A stored nonce that the client uses: accepted at once.
    let mut ch = Challenger::new(Scheme::Md5, false, Some(nonce())).unwrap();
    let good = auth::cred(Scheme::Md5, &creds(), &nonce());
    assert_eq!(
        ch.check(&hdr(good), None, b"", &creds()).unwrap(),
        Verdict::Accepted
    );

    // A stale nonce, then the right one.
    let mut ch = Challenger::new(Scheme::Md5, false, Some(nonce())).unwrap();
    let stale = auth::cred(Scheme::Md5, &creds(), b"stale");
    let Verdict::Challenge { chal, .. } = ch.check(&hdr(stale), None, b"", &creds()).unwrap()
    else {
        panic!()
    };
    let n = auth::decode_nonce(chal.meta.next_nonce.as_deref().unwrap()).unwrap();
    let good = auth::cred(Scheme::Md5, &creds(), &n);
    assert_eq!(
        ch.check(&hdr(good), None, b"", &creds()).unwrap(),
        Verdict::Accepted
    );

    // HMAC: over the body, in a header.
    let mut ch = Challenger::new(Scheme::Hmac, false, Some(nonce())).unwrap();
    let h = auth::hmac_header(&creds(), &nonce(), b"body");
    assert_eq!(
        ch.check(&hdr(None), Some(&h), b"body", &creds()).unwrap(),
        Verdict::Accepted
    );
    assert!(matches!(
        ch.check(&hdr(None), Some(&h), b"other", &creds()).unwrap(),
        Verdict::Challenge { status: 401, .. }
    ));
}

#[test]
fn auth_errors_format() {
    for e in [
        AuthError::Missing,
        AuthError::WrongScheme {
            found: "x".into(),
            expected: "y",
        },
        AuthError::BasicRefused,
        AuthError::Mismatch,
        AuthError::BadHeader { reason: "r" },
        AuthError::Random("r".into()),
    ] {
        assert!(e.to_string().starts_with("DM auth: "));
    }
    assert!(!format!("{:?}", creds()).contains("pwd"));
}

// ---------------------------------------------------------------------------
// FUMO.

#[test]
fn result_codes_round_trip_with_meanings() {
    for code in 0..=1000u16 {
        let r = ResultCode::from_code(code);
        assert_eq!(r.code(), code);
        assert!(!r.meaning().is_empty());
        let listed =
            matches!(code, 200 | 250..=299 | 400..=411 | 450..=499 | 500..=503 | 550..=599);
        assert_eq!(!matches!(r, ResultCode::Unlisted(_)), listed, "{code}");
        assert_eq!(r.is_success(), matches!(code, 200 | 250..=299), "{code}");
    }
    assert_eq!(ResultCode::from_code(402), ResultCode::CorruptedPackage);
    assert_eq!(
        ResultCode::from_code(410).to_string(),
        "410 (firmware update failed)"
    );
    assert_eq!(ResultCode::from_code(412), ResultCode::Unlisted(412));
    assert_eq!(fumo::ALERT_GENERIC, 1226);
    assert_eq!(fumo::ALERT_CLIENT_INITIATED, 1201);
    assert_eq!(fumo::ALERT_SERVER_INITIATED, 1200);
}

#[test]
fn operations_and_types() {
    assert_eq!(Operation::Download.exec_uri("./FUMO/"), "./FUMO/Download");
    assert_eq!(
        Operation::DownloadAndUpdate
            .pkg_url_uri("./FUMO/x")
            .as_deref(),
        Some("./FUMO/x/DownloadAndUpdate/PkgURL")
    );
    assert_eq!(Operation::Update.pkg_url_uri("./FUMO"), None);
    assert_eq!(
        Operation::from_exec_uri("./FUMO/x/Update"),
        Some((Operation::Update, "./FUMO/x".into()))
    );
    assert_eq!(Operation::from_exec_uri("./FUMO/x/Other"), None);
    for t in AlertType::ALL {
        assert_eq!(AlertType::parse(t.as_str()), Some(t));
    }
    assert_eq!(
        AlertType::parse("org.openmobilealliance.dm.firmwareupdate.devicerequest"),
        Some(AlertType::DeviceRequest)
    );
}

#[test]
fn generic_alert_report_round_trip_and_errors() {
    let r = Report::result(
        3,
        "./FUMO",
        Operation::DownloadAndUpdate,
        Some("c-1"),
        ResultCode::UpdateFailed,
    );
    assert_eq!(r.mark.as_deref(), Some("critical"));
    let alert = r.to_alert();
    assert_eq!(alert.code, 1226);
    assert_eq!(Report::from_alert(&alert), Ok(r.clone()));
    let ok = Report::result(
        3,
        "./FUMO",
        Operation::Download,
        None,
        ResultCode::Successful,
    );
    assert_eq!(ok.mark.as_deref(), Some("informational"));
    assert_eq!(Report::from_alert(&ok.to_alert()).unwrap().correlator, None);

    let mut a = alert.clone();
    a.code = 1201;
    assert_eq!(
        Report::from_alert(&a),
        Err(ReportError::NotGeneric { code: 1201 })
    );
    let mut a = alert.clone();
    a.items.clear();
    assert!(matches!(
        Report::from_alert(&a),
        Err(ReportError::Items { items: 0, .. })
    ));
    let mut a = alert.clone();
    a.items[0].meta.as_mut().unwrap().type_ = Some("com.example.other".into());
    assert!(matches!(
        Report::from_alert(&a),
        Err(ReportError::NotFumo { .. })
    ));
    let mut a = alert.clone();
    a.items[0].data = Some("ok".into());
    assert!(matches!(
        Report::from_alert(&a),
        Err(ReportError::BadResult { .. })
    ));
    let mut a = alert.clone();
    a.items[0].data = None;
    assert!(matches!(
        Report::from_alert(&a),
        Err(ReportError::Missing { .. })
    ));
    let mut a = alert;
    a.items[0].source = None;
    assert!(matches!(
        Report::from_alert(&a),
        Err(ReportError::Missing { .. })
    ));
    // A device request has no result code.
    let req = Report {
        cmd_id: 1,
        node: "./FUMO".into(),
        alert_type: AlertType::DeviceRequest,
        correlator: None,
        result: None,
        mark: None,
    };
    assert_eq!(Report::from_alert(&req.to_alert()), Ok(req));
}

// ---------------------------------------------------------------------------
// Package #0.

#[test]
fn notification_known_answer() {
    let server = Credentials::new("srv", "secret");
    let n = Notification::new(0x1234, "srv", UiMode::Informative);
    assert_eq!(n.trigger().unwrap(), hex("0328000000123403737276"));
    let bytes = n.encode(&server, &nonce()).unwrap();
    assert_eq!(
        &bytes[..16],
        hex("4e7bba94f7365ea8195630468cb39491").as_slice()
    );
    assert_eq!(&bytes[16..], hex("0328000000123403737276").as_slice());
    let back = Notification::verify(&bytes, &server, &nonce()).unwrap();
    assert_eq!(back, n);
    assert_eq!(back.initiator, Initiator::Server);
    assert_eq!(back.session_id_text(), "1234");
    assert!(back.is_session("1234") && back.is_session("4660"));
    assert!(!back.is_session("1235"));
    // Wrong password, wrong nonce, a flipped trigger bit.
    assert_eq!(
        Notification::verify(&bytes, &Credentials::new("srv", "other"), &nonce()),
        Err(NotificationError::BadDigest)
    );
    assert_eq!(
        Notification::verify(&bytes, &server, b"n"),
        Err(NotificationError::BadDigest)
    );
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert_eq!(
        Notification::verify(&flipped, &server, &nonce()),
        Err(NotificationError::BadDigest)
    );
    // Truncations.
    for len in 0..bytes.len() {
        assert!(matches!(
            Notification::parse(&bytes[..len]),
            Err(NotificationError::Truncated { .. })
        ));
    }
    // Limits.
    let long = Notification::new(1, &"x".repeat(256), UiMode::Background);
    assert_eq!(
        long.trigger(),
        Err(NotificationError::ServerIdTooLong { len: 256 })
    );
    let mut v = Notification::new(1, "s", UiMode::Background);
    v.version = 1024;
    assert!(matches!(
        v.trigger(),
        Err(NotificationError::VersionTooLarge { .. })
    ));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

proptest! {
    #[test]
    fn notification_round_trip(
        version in 0u16..1024,
        ui in 0u8..4,
        server_initiated in any::<bool>(),
        session_id in any::<u16>(),
        server_id in "[ -~]{0,64}",
        body in proptest::collection::vec(any::<u8>(), 0..32),
        password in "[ -~]{0,16}",
        nonce in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let n = Notification {
            version,
            ui_mode: [UiMode::NotSpecified, UiMode::Background, UiMode::Informative, UiMode::UserInteraction][usize::from(ui)],
            initiator: if server_initiated { Initiator::Server } else { Initiator::User },
            session_id,
            server_id: server_id.clone(),
            body,
        };
        let server = Credentials::new(&server_id, &password);
        let bytes = n.encode(&server, &nonce).unwrap();
        prop_assert_eq!(Notification::verify(&bytes, &server, &nonce), Ok(n));
    }

    #[test]
    fn notification_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Notification::parse(&bytes);
    }

    #[test]
    fn hmac_header_parse_never_panics(s in "\\PC{0,64}") {
        let _ = HmacHeader::parse(&s);
    }
}

#[test]
fn fumo_and_notification_errors_format() {
    for e in [
        ReportError::NotGeneric { code: 1201 },
        ReportError::Items {
            cmd_id: 1,
            items: 0,
        },
        ReportError::Missing {
            cmd_id: 1,
            missing: "Meta/Type",
        },
        ReportError::NotFumo {
            cmd_id: 1,
            found: "x".into(),
        },
        ReportError::BadResult {
            cmd_id: 1,
            found: "x".into(),
        },
    ] {
        assert!(e.to_string().starts_with("FUMO: "), "{e}");
    }
    for e in [
        NotificationError::Truncated { len: 1, needed: 24 },
        NotificationError::ServerIdNotUtf8,
        NotificationError::ServerIdTooLong { len: 256 },
        NotificationError::VersionTooLarge { version: 1024 },
        NotificationError::BadDigest,
    ] {
        assert!(e.to_string().starts_with("package #0: "), "{e}");
    }
}
