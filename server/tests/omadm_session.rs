//! DM sessions end to end: the server's state machine against the client's,
//! over XML and WBXML, with MD5 and HMAC authentication; the bookkeeping
//! (MsgID, CmdID, MsgRef, CmdRef); repeated and out-of-order messages;
//! golden messages of a FUMO session, each cross-checked with libwbxml.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use fota_server::omadm::auth::{AuthError, Credentials, Scheme};
use fota_server::omadm::fumo::{AlertType, Operation, Report, ResultCode};
use fota_server::omadm::message::{Command, SyncMl};
use fota_server::omadm::session::*;
use fota_server::omadm::{self, wbxml, xml, Encoding};

const SERVER_URI: &str = "https://fota.example.com/dm";

fn device_creds() -> Credentials {
    Credentials::new("dev-356938035643809", "s3cret")
}

fn server_creds() -> Credentials {
    Credentials::new("fota.example.com", "server-pw")
}

fn client_config(encoding: Encoding, scheme: Scheme) -> ClientConfig {
    ClientConfig {
        dev_id: "IMEI:356938035643809".into(),
        server_uri: SERVER_URI.into(),
        credentials: device_creds(),
        scheme,
        server_credentials: None,
        server_nonce: b"server-nonce-16b".to_vec(),
        encoding,
        man: "Acme".into(),
        model: "Phone 3".into(),
        dm_version: "1.2".into(),
        lang: "en-US".into(),
        fw_version: "1.0.3".into(),
        max_msg_size: Some(16384),
    }
}

fn server_config(scheme: Option<Scheme>) -> ServerConfig {
    let mut c = ServerConfig::new(SERVER_URI);
    c.client_auth = scheme.map(|scheme| ClientAuthPolicy {
        scheme,
        allow_basic: false,
    });
    c
}

fn secrets(nonce: Option<Vec<u8>>) -> DeviceSecrets {
    DeviceSecrets {
        credentials: Some(device_creds()),
        client_nonce: nonce,
        server_nonce: None,
    }
}

fn send(server: &mut ServerSession, req: &Request) -> Result<Step, SessionError> {
    server.receive(&req.body, &req.content_type, req.hmac.as_deref())
}

fn reply(step: Step) -> Reply {
    match step {
        Step::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn client_send(step: ClientStep) -> Request {
    match step {
        ClientStep::Send(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn parse(bytes: &[u8], enc: Encoding) -> SyncMl {
    omadm::decode(bytes, enc.content_type()).unwrap()
}

fn statuses(msg: &SyncMl) -> Vec<(u32, u32, String, u16)> {
    msg.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.msg_ref, s.cmd_ref, s.cmd.clone(), s.code)),
            _ => None,
        })
        .collect()
}

/// The whole FUMO flow with MD5: a stale nonce is challenged (401), the
/// device answers, 212, Get FwV, decision, Pkg2, Pkg3 with Exec 202, end;
/// then the next session reports the result with a Generic Alert.
fn fumo_session(enc: Encoding) {
    let offer = PkgOffer {
        url: "https://fota.example.com/pkg/17?t=a&b".into(),
        correlator: Some("campaign-4/device-9".into()),
    };
    let mut server = ServerSession::new(server_config(Some(Scheme::Md5)), secrets(None)).unwrap();
    let mut client =
        ClientSession::new(client_config(enc, Scheme::Md5), "1A", 1201, b"old".to_vec());

    let pkg1 = client.start(None);
    assert_eq!(pkg1.content_type, enc.content_type());
    let m = parse(&pkg1.body, enc);
    assert_eq!((m.hdr.msg_id, m.hdr.session_id.as_str()), (1, "1A"));
    assert!(m.hdr.cred.is_some());

    // Challenge: 401 with a fresh nonce on the SyncHdr, nothing else.
    let chal = reply(send(&mut server, &pkg1).unwrap());
    let m = parse(&chal.body, enc);
    assert_eq!(m.hdr.msg_id, 1);
    assert_eq!(m.hdr.target.loc_uri, "IMEI:356938035643809");
    assert_eq!(statuses(&m), vec![(1, 0, "SyncHdr".into(), 401)]);
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    assert_eq!(
        s.chal.as_ref().unwrap().meta.type_.as_deref(),
        Some("syncml:auth-md5")
    );
    assert!(m.body.final_);

    // The device sends Pkg1 again (MsgID 2) with the new nonce: 212, Get FwV.
    let pkg1b = client_send(client.receive(&chal.body).unwrap());
    assert_eq!(parse(&pkg1b.body, enc).hdr.msg_id, 2);
    let get = reply(send(&mut server, &pkg1b).unwrap());
    let m = parse(&get.body, enc);
    assert_eq!(m.hdr.msg_id, 2);
    assert_eq!(
        statuses(&m),
        vec![
            (2, 0, "SyncHdr".into(), 212),
            (2, 2, "Alert".into(), 200),
            (2, 3, "Replace".into(), 200)
        ]
    );
    let ids: Vec<u32> = m.body.commands.iter().map(|c| c.cmd_id()).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    let Command::Get(g) = &m.body.commands[3] else {
        panic!()
    };
    assert_eq!(
        g.items[0].target.as_ref().unwrap().loc_uri,
        "./DevDetail/FwV"
    );

    // Results → the decision.
    let results = client_send(client.receive(&get.body).unwrap());
    let step = send(&mut server, &results).unwrap();
    let Step::NeedDecision { device, reports } = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        device,
        DevInfo {
            dev_id: "IMEI:356938035643809".into(),
            man: "Acme".into(),
            model: "Phone 3".into(),
            dm_version: Some("1.2".into()),
            lang: Some("en-US".into()),
            fw_version: Some("1.0.3".into()),
        }
    );
    assert!(reports.is_empty());
    // While deciding, the same message again is refused (no reply yet).
    assert_eq!(
        send(&mut server, &results),
        Err(SessionError::DecisionPending)
    );

    let pkg2 = reply(server.decide(Some(offer.clone())).unwrap());
    assert_eq!(
        server.decide(None),
        Err(SessionError::NotDeciding {
            state: "waiting for Pkg3 (statuses)"
        })
    );
    let m = parse(&pkg2.body, enc);
    assert_eq!(m.hdr.msg_id, 3);
    // Statuses for the client's SyncHdr and its Results (not for its
    // own Statuses).
    assert_eq!(
        statuses(&m),
        vec![(3, 0, "SyncHdr".into(), 200), (3, 3, "Results".into(), 200)]
    );
    let Command::Replace(r) = &m.body.commands[2] else {
        panic!("{:?}", m.body.commands)
    };
    assert_eq!(
        r.items[0].target.as_ref().unwrap().loc_uri,
        "./FUMO/DownloadAndUpdate/PkgURL"
    );
    assert_eq!(r.items[0].data.as_deref(), Some(offer.url.as_str()));
    let Command::Exec(e) = &m.body.commands[3] else {
        panic!()
    };
    assert_eq!(
        e.item.target.as_ref().unwrap().loc_uri,
        "./FUMO/DownloadAndUpdate"
    );
    assert_eq!(e.correlator, offer.correlator);
    assert!(m.body.final_);

    // A retransmitted Results message gets the same Pkg2 again.
    assert_eq!(send(&mut server, &results), Ok(Step::Reply(pkg2.clone())));

    // Pkg3: statuses, Exec 202.
    let pkg3 = client_send(client.receive(&pkg2.body).unwrap());
    let m = parse(&pkg3.body, enc);
    assert_eq!(
        statuses(&m),
        vec![
            (3, 0, "SyncHdr".into(), 200),
            (3, 3, "Replace".into(), 200),
            (3, 4, "Exec".into(), 202)
        ]
    );
    let step = send(&mut server, &pkg3).unwrap();
    let Step::Done {
        reply: last,
        end,
        reports,
    } = step.clone()
    else {
        panic!("{step:?}")
    };
    assert_eq!(
        end,
        End::Accepted {
            status: 202,
            operation: Operation::DownloadAndUpdate,
            correlator: offer.correlator.clone()
        }
    );
    assert!(reports.is_empty());
    assert!(server.is_ended());
    let m = parse(&last.body, enc);
    assert_eq!(statuses(&m), vec![(4, 0, "SyncHdr".into(), 200)]);
    // Repeated: same answer; anything later: ended.
    assert_eq!(send(&mut server, &pkg3), Ok(step));

    let ClientStep::Done { offer: got } = client.receive(&last.body).unwrap() else {
        panic!()
    };
    let got = got.unwrap();
    assert_eq!(got.url.as_deref(), Some(offer.url.as_str()));
    assert_eq!(got.correlator, offer.correlator);
    assert_eq!(
        (got.operation, got.node.as_str()),
        (Operation::DownloadAndUpdate, "./FUMO")
    );

    // The nonce for the next session is the same on both sides.
    let next = server.next_client_nonce().unwrap().to_vec();
    assert!(next.len() >= 16);
    assert_eq!(client.next_nonce(), Some(next.as_slice()));

    // Next session: the device reports the result; authenticated at once.
    let mut server = ServerSession::new(
        server_config(Some(Scheme::Md5)),
        secrets(Some(next.clone())),
    )
    .unwrap();
    let mut client = ClientSession::new(client_config(enc, Scheme::Md5), "1B", 1201, next);
    let report = Report::result(
        0,
        &got.node,
        got.operation,
        got.correlator.as_deref(),
        ResultCode::Successful,
    );
    let pkg1 = client.start(Some(report));
    let get = reply(send(&mut server, &pkg1).unwrap());
    let m = parse(&get.body, enc);
    assert_eq!(
        statuses(&m),
        vec![
            (1, 0, "SyncHdr".into(), 212),
            (1, 1, "Alert".into(), 200),
            (1, 2, "Replace".into(), 200),
            (1, 3, "Alert".into(), 200)
        ]
    );
    let results = client_send(client.receive(&get.body).unwrap());
    let Step::NeedDecision { reports, .. } = send(&mut server, &results).unwrap() else {
        panic!()
    };
    assert_eq!(
        reports,
        vec![Report {
            cmd_id: 3,
            node: "./FUMO".into(),
            alert_type: AlertType::DownloadAndUpdate,
            correlator: offer.correlator,
            result: Some(ResultCode::Successful),
            mark: Some("informational".into()),
        }]
    );
    let Step::Done {
        reply: last, end, ..
    } = server.decide(None).unwrap()
    else {
        panic!()
    };
    assert_eq!(end, End::NoOffer);
    assert_eq!(
        client.receive(&last.body),
        Ok(ClientStep::Done { offer: None })
    );
    assert_eq!(client.receive(&last.body), Err(ClientError::Ended));
}

#[test]
fn fumo_session_xml() {
    fumo_session(Encoding::Xml);
}

#[test]
fn fumo_session_wbxml() {
    fumo_session(Encoding::Wbxml);
}

#[test]
fn hmac_session_with_server_credentials_on_every_reply() {
    let nonce = b"0123456789abcdef".to_vec();
    let mut cfg = server_config(Some(Scheme::Hmac));
    cfg.server_credentials = Some(server_creds());
    cfg.operation = Operation::Download;
    let mut sec = secrets(Some(nonce.clone()));
    sec.server_nonce = Some(b"server-nonce-16b".to_vec());
    let mut server = ServerSession::new(cfg, sec).unwrap();
    let mut client = ClientSession::new(
        client_config(Encoding::Wbxml, Scheme::Hmac),
        "7",
        1201,
        nonce,
    );

    let pkg1 = client.start(None);
    assert!(parse(&pkg1.body, Encoding::Wbxml).hdr.cred.is_none());
    assert!(pkg1
        .hmac
        .as_deref()
        .unwrap()
        .starts_with("algorithm=MD5, username=\"dev-356938035643809\", mac="));
    // A tampered body fails the HMAC: challenged.
    let mut bad = pkg1.clone();
    bad.hmac = Some(fota_server::omadm::auth::hmac_header(
        &device_creds(),
        b"other nonce",
        &pkg1.body,
    ));
    let mut probe = server.clone();
    let chal = reply(send(&mut probe, &bad).unwrap());
    assert_eq!(statuses(&parse(&chal.body, Encoding::Wbxml))[0].3, 401);

    let get = reply(send(&mut server, &pkg1).unwrap());
    // HMAC scheme: the server signs its replies in the header, no Cred.
    let h = get.hmac.as_deref().unwrap();
    assert!(h.contains("username=\"fota.example.com\""));
    fota_server::omadm::auth::verify_hmac(h, &get.body, &server_creds(), b"server-nonce-16b")
        .unwrap();
    assert!(parse(&get.body, Encoding::Wbxml).hdr.cred.is_none());
    assert_eq!(statuses(&parse(&get.body, Encoding::Wbxml))[0].3, 212);

    let results = client_send(client.receive(&get.body).unwrap());
    // Every message carries its HMAC: without it, refused.
    let mut unsigned = results.clone();
    unsigned.hmac = None;
    let mut probe = server.clone();
    let Ok(Step::Done { end, .. }) = send(&mut probe, &unsigned) else {
        panic!()
    };
    assert_eq!(end, End::AuthFailed(AuthError::Missing));

    let Step::NeedDecision { .. } = send(&mut server, &results).unwrap() else {
        panic!()
    };
    let pkg2 = reply(
        server
            .decide(Some(PkgOffer {
                url: "http://u".into(),
                correlator: None,
            }))
            .unwrap(),
    );
    let m = parse(&pkg2.body, Encoding::Wbxml);
    let Command::Replace(r) = &m.body.commands[2] else {
        panic!()
    };
    assert_eq!(
        r.items[0].target.as_ref().unwrap().loc_uri,
        "./FUMO/Download/PkgURL"
    );
    let Command::Exec(e) = &m.body.commands[3] else {
        panic!()
    };
    assert_eq!(e.correlator, None);
    let pkg3 = client_send(client.receive(&pkg2.body).unwrap());
    let Step::Done { end, .. } = send(&mut server, &pkg3).unwrap() else {
        panic!()
    };
    assert_eq!(
        end,
        End::Accepted {
            status: 202,
            operation: Operation::Download,
            correlator: None
        }
    );
}

#[test]
fn server_cred_in_every_synchdr_and_checked_by_the_client() {
    let mut cfg = server_config(Some(Scheme::Md5));
    cfg.server_credentials = Some(server_creds());
    let mut sec = secrets(Some(b"n".to_vec()));
    sec.server_nonce = Some(b"server-nonce-16b".to_vec());
    let mut server = ServerSession::new(cfg.clone(), sec.clone()).unwrap();
    let mut ccfg = client_config(Encoding::Xml, Scheme::Md5);
    ccfg.server_credentials = Some(server_creds());
    let mut client = ClientSession::new(ccfg.clone(), "2", 1201, b"n".to_vec());
    let get = reply(send(&mut server, &client.start(None)).unwrap());
    let m = parse(&get.body, Encoding::Xml);
    let cred = m.hdr.cred.as_ref().unwrap();
    assert_eq!(cred.meta.type_.as_deref(), Some("syncml:auth-md5"));
    assert_eq!(m.hdr.source.loc_name.as_deref(), Some("fota.example.com"));
    assert!(matches!(client.receive(&get.body), Ok(ClientStep::Send(_))));

    // A server with the wrong password is refused by the device.
    cfg.server_credentials = Some(Credentials::new("fota.example.com", "wrong"));
    let mut server = ServerSession::new(cfg, sec).unwrap();
    let mut client = ClientSession::new(ccfg, "3", 1201, b"n".to_vec());
    let get = reply(send(&mut server, &client.start(None)).unwrap());
    assert_eq!(
        client.receive(&get.body),
        Err(ClientError::ServerAuth(AuthError::Mismatch))
    );
}

#[test]
fn wrong_password_is_challenged_once_more_then_refused() {
    let mut server = ServerSession::new(server_config(Some(Scheme::Md5)), secrets(None)).unwrap();
    let mut cfg = client_config(Encoding::Xml, Scheme::Md5);
    cfg.credentials = Credentials::new("dev-356938035643809", "wrong");
    let mut client = ClientSession::new(cfg, "9", 1201, Vec::new());
    let c1 = reply(send(&mut server, &client.start(None)).unwrap());
    let again = client_send(client.receive(&c1.body).unwrap());
    let step = send(&mut server, &again).unwrap();
    let Step::Done {
        reply: refusal,
        end,
        ..
    } = step
    else {
        panic!("{step:?}")
    };
    assert_eq!(end, End::AuthFailed(AuthError::Mismatch));
    let m = parse(&refusal.body, Encoding::Xml);
    assert_eq!(statuses(&m), vec![(2, 0, "SyncHdr".into(), 401)]);
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    assert!(s.chal.is_none());
    assert_eq!(
        client.receive(&refusal.body),
        Err(ClientError::AuthRejected { status: 401 })
    );

    // A device without an account on the server: refused at once.
    let mut server =
        ServerSession::new(server_config(Some(Scheme::Md5)), DeviceSecrets::default()).unwrap();
    let mut client = ClientSession::new(
        client_config(Encoding::Xml, Scheme::Md5),
        "9",
        1201,
        Vec::new(),
    );
    let Step::Done { end, .. } = send(&mut server, &client.start(None)).unwrap() else {
        panic!()
    };
    assert_eq!(end, End::AuthFailed(AuthError::Missing));

    // Basic is refused unless allowed.
    let mut server =
        ServerSession::new(server_config(Some(Scheme::Md5)), secrets(Some(vec![1; 16]))).unwrap();
    let mut client = ClientSession::new(
        client_config(Encoding::Xml, Scheme::Basic),
        "9",
        1201,
        Vec::new(),
    );
    let chal = reply(send(&mut server, &client.start(None)).unwrap());
    assert_eq!(statuses(&parse(&chal.body, Encoding::Xml))[0].3, 401);
    let mut cfg = server_config(Some(Scheme::Md5));
    cfg.client_auth = Some(ClientAuthPolicy {
        scheme: Scheme::Md5,
        allow_basic: true,
    });
    let mut server = ServerSession::new(cfg, secrets(Some(vec![1; 16]))).unwrap();
    let get = reply(send(&mut server, &client.start(None)).unwrap());
    assert_eq!(statuses(&parse(&get.body, Encoding::Xml))[0].3, 212);
}

#[test]
fn out_of_order_and_malformed_messages_are_typed_errors() {
    let enc = Encoding::Xml;
    let mut server = ServerSession::new(server_config(None), secrets(None)).unwrap();
    let mut client = ClientSession::new(client_config(enc, Scheme::Md5), "5", 1201, Vec::new());
    let pkg1 = client.start(None);
    let msg = parse(&pkg1.body, enc);

    let variant = |f: &dyn Fn(&mut SyncMl)| {
        let mut m = msg.clone();
        f(&mut m);
        xml::write(&m).into_bytes()
    };
    let ct = enc.content_type();
    // Not DM 1.2.
    let b = variant(&|m| m.hdr.ver_proto = "DM/1.1".into());
    assert!(matches!(
        server.receive(&b, ct, None),
        Err(SessionError::Version { .. })
    ));
    // No session alert.
    let b = variant(&|m| {
        m.body.commands.remove(0);
    });
    assert!(matches!(
        server.receive(&b, ct, None),
        Err(SessionError::Unexpected { .. })
    ));
    // No DevId.
    let b = variant(&|m| {
        if let Command::Replace(r) = &mut m.body.commands[1] {
            r.items.remove(0);
        }
    });
    assert_eq!(
        server.receive(&b, ct, None),
        Err(SessionError::MissingDevInfo {
            node: "./DevInfo/DevId"
        })
    );
    // Garbage, wrong content type.
    assert!(matches!(
        server.receive(b"<SyncML>", ct, None),
        Err(SessionError::Decode(_))
    ));
    assert!(matches!(
        server.receive(&pkg1.body, "text/plain", None),
        Err(SessionError::Decode(_))
    ));
    // decide() before a decision is asked for.
    assert!(matches!(
        server.decide(None),
        Err(SessionError::NotDeciding { .. })
    ));

    // The errors above left the session untouched: Pkg1 works.
    let get = reply(server.receive(&pkg1.body, ct, None).unwrap());
    // Plain SyncML content type, answered in kind.
    assert_eq!(get.content_type, "application/vnd.syncml.dm+xml");
    let results = client_send(client.receive(&get.body).unwrap());
    let rmsg = parse(&results.body, enc);
    let variant = |f: &dyn Fn(&mut SyncMl)| {
        let mut m = rmsg.clone();
        f(&mut m);
        xml::write(&m).into_bytes()
    };
    // Another session, a skipped MsgID.
    let b = variant(&|m| m.hdr.session_id = "6".into());
    assert_eq!(
        server.receive(&b, ct, None),
        Err(SessionError::WrongSession {
            expected: "5".into(),
            found: "6".into()
        })
    );
    let b = variant(&|m| m.hdr.msg_id = 4);
    assert_eq!(
        server.receive(&b, ct, None),
        Err(SessionError::OutOfOrder {
            expected: 2,
            found: 4
        })
    );
    // No answer to the Get.
    let b = variant(&|m| m.body.commands.retain(|c| matches!(c, Command::Alert(_))));
    assert!(matches!(
        server.receive(&b, ct, None),
        Err(SessionError::Unexpected { .. })
    ));
    // Pkg1 repeated: the same reply (bytes) again.
    assert_eq!(server.receive(&pkg1.body, ct, None), Ok(Step::Reply(get)));

    let Step::NeedDecision { .. } = server.receive(&results.body, ct, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        server.receive(&results.body, ct, None),
        Err(SessionError::DecisionPending)
    );
    let pkg2 = reply(
        server
            .decide(Some(PkgOffer {
                url: "u".into(),
                correlator: None,
            }))
            .unwrap(),
    );
    // Pkg3 with the Exec refused (410): Rejected.
    let pkg3 = client_send(client.receive(&pkg2.body).unwrap());
    let mut m = parse(&pkg3.body, enc);
    for c in &mut m.body.commands {
        if let Command::Status(s) = c {
            if s.cmd == "Exec" {
                s.code = 410;
            }
        }
    }
    let mut probe = server.clone();
    let Step::Done { end, .. } = probe
        .receive(&xml::write(&m).into_bytes(), ct, None)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        end,
        End::Rejected {
            cmd: "Exec".into(),
            status: 410
        }
    );
    // Pkg3 without the Exec's status: refused.
    m.body
        .commands
        .retain(|c| !matches!(c, Command::Status(s) if s.cmd == "Exec"));
    assert!(matches!(
        server.receive(&xml::write(&m).into_bytes(), ct, None),
        Err(SessionError::Unexpected {
            reason: "no Status for the Exec",
            ..
        })
    ));
    let Step::Done { .. } = server.receive(&pkg3.body, ct, None).unwrap() else {
        panic!()
    };
    // After the end, a new MsgID is refused.
    let mut m = parse(&pkg3.body, enc);
    m.hdr.msg_id += 1;
    assert_eq!(
        server.receive(&xml::write(&m).into_bytes(), ct, None),
        Err(SessionError::Ended)
    );
}

#[test]
fn device_request_names_the_fumo_node_and_fwv_in_pkg1_skips_the_get() {
    let enc = Encoding::Xml;
    let mut server = ServerSession::new(server_config(None), secrets(None)).unwrap();
    let mut client = ClientSession::new(client_config(enc, Scheme::Md5), "A", 1201, Vec::new());
    let request = Report {
        cmd_id: 0,
        node: "./FUMO/fw0".into(),
        alert_type: AlertType::DeviceRequest,
        correlator: None,
        result: None,
        mark: None,
    };
    let pkg1 = client.start(Some(request));
    // Add ./DevDetail/FwV to the Replace, as some clients do.
    let mut m = parse(&pkg1.body, enc);
    if let Command::Replace(r) = &mut m.body.commands[1] {
        r.items.push(fota_server::omadm::message::Item::source_data(
            "./DevDetail/FwV",
            "9.9",
        ));
    }
    let body = xml::write(&m).into_bytes();
    let Step::NeedDecision { device, reports } = server
        .receive(&body, "application/vnd.syncml+xml; charset=utf-8", None)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(device.fw_version.as_deref(), Some("9.9"));
    assert_eq!(reports[0].alert_type, AlertType::DeviceRequest);
    let pkg2 = reply(
        server
            .decide(Some(PkgOffer {
                url: "u".into(),
                correlator: Some("c".into()),
            }))
            .unwrap(),
    );
    assert_eq!(pkg2.content_type, "application/vnd.syncml+xml");
    let m = parse(&pkg2.body, enc);
    assert_eq!(
        statuses(&m),
        vec![
            (1, 0, "SyncHdr".into(), 200),
            (1, 1, "Alert".into(), 200),
            (1, 2, "Replace".into(), 200),
            (1, 3, "Alert".into(), 200)
        ]
    );
    let Command::Exec(e) = &m.body.commands[5] else {
        panic!()
    };
    assert_eq!(
        e.item.target.as_ref().unwrap().loc_uri,
        "./FUMO/fw0/DownloadAndUpdate"
    );
}

#[test]
fn session_errors_format() {
    let errors = [
        SessionError::Version {
            ver_dtd: "1.1".into(),
            ver_proto: "DM/1.1".into(),
        },
        SessionError::WrongSession {
            expected: "a".into(),
            found: "b".into(),
        },
        SessionError::OutOfOrder {
            expected: 2,
            found: 4,
        },
        SessionError::Unexpected {
            state: "s",
            reason: "r",
        },
        SessionError::MissingDevInfo {
            node: "./DevInfo/Man",
        },
        SessionError::DecisionPending,
        SessionError::NotDeciding { state: "s" },
        SessionError::Ended,
    ];
    for e in errors {
        assert!(e.to_string().starts_with("DM session: "), "{e}");
    }
    for e in [
        ClientError::AuthRejected { status: 401 },
        ClientError::ServerAuth(AuthError::Missing),
        ClientError::Unexpected { reason: "r" },
        ClientError::Ended,
    ] {
        assert!(e.to_string().starts_with("DM client: "), "{e}");
    }
}

// ---------------------------------------------------------------------------
// Golden messages of a FUMO session (no authentication, so the bytes are
// fixed), each also cross-checked with libwbxml both ways.

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/omadm_golden")
}

/// The messages of a client-initiated FUMO session and of the report
/// session after it, in order, with names.
fn golden_session() -> Vec<(&'static str, Vec<u8>)> {
    let enc = Encoding::Xml;
    let mut out = Vec::new();
    let mut cfg = server_config(None);
    cfg.max_msg_size = Some(65536);
    let mut server = ServerSession::new(cfg.clone(), secrets(None)).unwrap();
    let mut client = ClientSession::new(
        client_config(enc, Scheme::Md5),
        "1",
        1201,
        b"0123456789abcdef".to_vec(),
    );
    let pkg1 = client.start(None);
    out.push(("01-client-pkg1", pkg1.body.clone()));
    let get = reply(send(&mut server, &pkg1).unwrap());
    out.push(("02-server-get-fwv", get.body.clone()));
    let results = client_send(client.receive(&get.body).unwrap());
    out.push(("03-client-results", results.body.clone()));
    let Step::NeedDecision { .. } = send(&mut server, &results).unwrap() else {
        panic!()
    };
    let pkg2 = reply(
        server
            .decide(Some(PkgOffer {
                url: "https://fota.example.com/pkg/17".into(),
                correlator: Some("c-17".into()),
            }))
            .unwrap(),
    );
    out.push(("04-server-pkg2", pkg2.body.clone()));
    let pkg3 = client_send(client.receive(&pkg2.body).unwrap());
    out.push(("05-client-pkg3", pkg3.body.clone()));
    let Step::Done { reply: end, .. } = send(&mut server, &pkg3).unwrap() else {
        panic!()
    };
    out.push(("06-server-end", end.body.clone()));

    let mut server = ServerSession::new(cfg, secrets(None)).unwrap();
    let mut client = ClientSession::new(
        client_config(enc, Scheme::Md5),
        "2",
        1201,
        b"0123456789abcdef".to_vec(),
    );
    let report = Report::result(
        0,
        "./FUMO",
        Operation::DownloadAndUpdate,
        Some("c-17"),
        ResultCode::CorruptedPackage,
    );
    let pkg1 = client.start(Some(report));
    out.push(("07-client-pkg1-generic-alert", pkg1.body.clone()));
    let get = reply(send(&mut server, &pkg1).unwrap());
    let results = client_send(client.receive(&get.body).unwrap());
    let Step::NeedDecision { reports, .. } = send(&mut server, &results).unwrap() else {
        panic!()
    };
    assert_eq!(reports[0].result, Some(ResultCode::CorruptedPackage));
    let Step::Done { reply: end, .. } = server.decide(None).unwrap() else {
        panic!()
    };
    out.push(("08-server-end-no-offer", end.body.clone()));
    out
}

#[test]
fn golden_fumo_session() {
    let dir = golden_dir();
    let bless = std::env::var("OMADM_BLESS").is_ok();
    for (name, bytes) in golden_session() {
        let path = dir.join(format!("{name}.xml"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let want = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (OMADM_BLESS=1 writes it)", path.display()));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&want),
            "{name} differs from its golden file"
        );
        // The golden file parses, and WBXML carries the same message.
        let msg = xml::parse(&want).unwrap();
        assert_eq!(wbxml::parse(&wbxml::write(&msg)), Ok(msg));
    }
}

/// Whether libwbxml's tools are installed; with CI=true they must be.
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

#[test]
fn libwbxml_cross_check_of_every_session_message() {
    if !libwbxml_tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut messages: Vec<(String, SyncMl)> = golden_session()
        .into_iter()
        .map(|(n, b)| (n.to_string(), xml::parse(&b).unwrap()))
        .collect();
    // Hand-written client messages in the forms of the DM specification's
    // examples (prefixes, whitespace, CDATA).
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("client-") {
            messages.push((name, xml::parse(&std::fs::read(&path).unwrap()).unwrap()));
        }
    }
    // And the authenticated, WBXML session's messages.
    let mut server = ServerSession::new(server_config(Some(Scheme::Md5)), secrets(None)).unwrap();
    let mut client = ClientSession::new(
        client_config(Encoding::Wbxml, Scheme::Md5),
        "C",
        1201,
        Vec::new(),
    );
    let mut req = client.start(None);
    for i in 0..3 {
        messages.push((format!("auth-c{i}"), wbxml::parse(&req.body).unwrap()));
        let step = send(&mut server, &req).unwrap();
        let rep = match step {
            Step::Reply(r) => r,
            Step::NeedDecision { .. } => reply(
                server
                    .decide(Some(PkgOffer {
                        url: "http://x/p".into(),
                        correlator: Some("k".into()),
                    }))
                    .unwrap(),
            ),
            Step::Done { reply, .. } => reply,
        };
        messages.push((format!("auth-s{i}"), wbxml::parse(&rep.body).unwrap()));
        req = client_send(client.receive(&rep.body).unwrap());
    }
    assert!(messages.len() >= 14);
    for (name, msg) in &messages {
        let ours_wb = tmp.path().join(format!("{name}.wbxml"));
        let theirs_xml = tmp.path().join(format!("{name}.from-wbxml.xml"));
        std::fs::write(&ours_wb, wbxml::write(msg)).unwrap();
        run("wbxml2xml", &ours_wb, &theirs_xml);
        assert_eq!(
            xml::parse(&std::fs::read(&theirs_xml).unwrap()).as_ref(),
            Ok(msg),
            "{name}: wbxml2xml"
        );
        let ours_xml = tmp.path().join(format!("{name}.xml"));
        let theirs_wb = tmp.path().join(format!("{name}.from-xml.wbxml"));
        std::fs::write(&ours_xml, xml::write(msg)).unwrap();
        run("xml2wbxml", &ours_xml, &theirs_wb);
        assert_eq!(
            wbxml::parse(&std::fs::read(&theirs_wb).unwrap()).as_ref(),
            Ok(msg),
            "{name}: xml2wbxml"
        );
    }
}
