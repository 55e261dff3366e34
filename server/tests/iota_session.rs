//! The TPS session state machine: both flows end to end, every refusal.

use fota_server::iota::mmc::{Command, CommandResult, Mmc, MmcResult, ResultCode, ValueRef};
use fota_server::iota::session::{
    EndReason, Offer, Origin, Outcome, Purpose, SessionError, TpsSession, HANDSET_TIMEOUT_SECS,
    QUEUED_EXPIRY_SECS,
};

const T: &str = "tok";

/// When a test's last document arrives: inside every session's timeout.
const NOW: u64 = 1003;

fn results(seq: u32, rs: &[(u32, ResultCode, Option<&str>)]) -> MmcResult {
    MmcResult {
        sid: "S".into(),
        seq,
        results: rs
            .iter()
            .map(|&(cid, code, v)| CommandResult {
                cid,
                code,
                value: v.map(str::to_string),
            })
            .collect(),
    }
}

/// The handset's answer to `doc`: every command ok, reads from `values`.
fn answer(doc: &Mmc, values: &[(&str, &str)], display: ResultCode) -> MmcResult {
    let rs = doc
        .commands
        .iter()
        .filter_map(|c| {
            let cid = c.cid()?;
            Some(match c {
                Command::Read { valueref, .. } => CommandResult {
                    cid,
                    code: ResultCode::Ok,
                    value: values
                        .iter()
                        .find(|(k, _)| *k == valueref.as_str())
                        .map(|(_, v)| v.to_string()),
                },
                Command::Display { .. } => CommandResult {
                    cid,
                    code: display,
                    value: None,
                },
                _ => CommandResult {
                    cid,
                    code: ResultCode::Ok,
                    value: None,
                },
            })
        })
        .collect();
    MmcResult {
        sid: doc.sid.clone(),
        seq: doc.seq,
        results: rs,
    }
}

fn offer(mandatory: bool) -> Offer {
    Offer {
        url: "http://127.0.0.1:1/packages/p".into(),
        size: 100,
        sha256_hex: "00".repeat(32),
        notes: "Fixes.".into(),
        mandatory,
    }
}

const DEV: [(&str, &str); 3] = [("dev/man", "Acme"), ("dev/mod", "R3"), ("dev/fwv", "1.0")];

fn reply(o: Outcome) -> Mmc {
    match o {
        Outcome::Reply(m) => m,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Runs a check session up to the offer's results; returns the session
/// and the outcome of the handset's answer to the offer.
fn check_until_offer(display: ResultCode, mandatory: bool) -> (TpsSession, Mmc) {
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Client, 1000);
    let reads = reply(s.handle(&results(0, &[]), T, 1000).unwrap());
    assert_eq!(reads.seq, 1);
    assert_eq!(
        reads.commands,
        vec![
            Command::Read {
                cid: 1,
                valueref: ValueRef::DevMan
            },
            Command::Read {
                cid: 2,
                valueref: ValueRef::DevMod
            },
            Command::Read {
                cid: 3,
                valueref: ValueRef::DevFwv
            },
        ]
    );
    let need = s
        .handle(&answer(&reads, &DEV, ResultCode::Ok), T, 1001)
        .unwrap();
    assert_eq!(
        need,
        Outcome::NeedDecision {
            man: "Acme".into(),
            model: "R3".into(),
            fw_version: "1.0".into()
        }
    );
    let doc = s.decide(Some(offer(mandatory))).unwrap();
    assert_eq!(doc.seq, 2);
    assert!(matches!(
        &doc.commands[0],
        Command::Write {
            valueref: ValueRef::FotaPkgUrl,
            ..
        }
    ));
    assert!(
        matches!(&doc.commands[3], Command::Display { text, .. } if text.contains("emergency calls"))
    );
    assert!(matches!(doc.commands[4], Command::Commit { .. }));
    let bye = reply(s.handle(&answer(&doc, &[], display), T, 1002).unwrap());
    assert_eq!(bye.commands, vec![Command::Disconnect]);
    (s, bye)
}

fn finish(mut s: TpsSession, bye: &Mmc, now: u64) -> EndReason {
    match s.handle(&results(bye.seq, &[]), T, now).unwrap() {
        Outcome::Closed(r) => {
            assert_eq!(s.end(), Some(&r));
            r
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_initiated_check_delivers_the_url() {
    let (s, bye) = check_until_offer(ResultCode::Ok, false);
    assert_eq!(finish(s, &bye, NOW), EndReason::UrlDelivered);
}

#[test]
fn consent_refused_ends_the_session_and_counts_as_postponement_when_mandatory() {
    let (s, bye) = check_until_offer(ResultCode::UserDenied, false);
    assert_eq!(finish(s, &bye, NOW), EndReason::UserDenied);
    let (s, bye) = check_until_offer(ResultCode::UserDenied, true);
    assert_eq!(finish(s, &bye, NOW), EndReason::Postponed);
    let (s, bye) = check_until_offer(ResultCode::FileLocked, false);
    assert_eq!(finish(s, &bye, NOW), EndReason::Mmc(ResultCode::FileLocked));
}

#[test]
fn no_package_says_goodbye() {
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Client, 1000);
    let reads = reply(s.handle(&results(0, &[]), T, 1000).unwrap());
    s.handle(&answer(&reads, &DEV, ResultCode::Ok), T, 1000)
        .unwrap();
    let bye = s.decide(None).unwrap();
    assert_eq!(bye.commands, vec![Command::Disconnect]);
    assert_eq!(finish(s, &bye, NOW), EndReason::NoUpdate);
}

#[test]
fn report_after_install() {
    for (fwv, result, installed) in [("2.0", "0", true), ("1.0", "20", false)] {
        let purpose = Purpose::Report {
            target_version: "2.0".into(),
        };
        let mut s = TpsSession::new("S", T, purpose, Origin::Client, 1000);
        let reads = reply(s.handle(&results(0, &[]), T, 1000).unwrap());
        assert_eq!(
            reads.commands,
            vec![
                Command::Read {
                    cid: 1,
                    valueref: ValueRef::DevFwv
                },
                Command::Read {
                    cid: 2,
                    valueref: ValueRef::FotaState
                },
                Command::Read {
                    cid: 3,
                    valueref: ValueRef::FotaResult
                },
            ]
        );
        let values = [
            ("dev/fwv", fwv),
            ("fota/state", "idle"),
            ("fota/result", result),
        ];
        match s
            .handle(&answer(&reads, &values, ResultCode::Ok), T, 1001)
            .unwrap()
        {
            Outcome::Report(r, bye) => {
                assert_eq!(r.installed, installed);
                assert_eq!(r.result, result);
                assert_eq!(finish(s, &bye, NOW), EndReason::Reported);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn repeated_documents_get_the_same_reply() {
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Client, 0);
    let first = s.handle(&results(0, &[]), T, 0).unwrap();
    assert_eq!(s.handle(&results(0, &[]), T, 1).unwrap(), first);
    let reads = reply(first);
    s.handle(&answer(&reads, &DEV, ResultCode::Ok), T, 2)
        .unwrap();
    let offer_doc = s.decide(Some(offer(false))).unwrap();
    // The values document again: the offer again.
    assert_eq!(
        s.handle(&answer(&reads, &DEV, ResultCode::Ok), T, 3)
            .unwrap(),
        Outcome::Reply(offer_doc)
    );
}

#[test]
fn busy_handsets_keep_the_session() {
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Network, 0);
    assert_eq!(
        s.handle(&results(0, &[(0, ResultCode::DeviceBusy, None)]), T, 10)
            .unwrap(),
        Outcome::Busy
    );
    // Pushed again later: the hello now goes through.
    assert!(matches!(
        s.handle(&results(0, &[]), T, 20).unwrap(),
        Outcome::Reply(_)
    ));
}

#[test]
fn refusals() {
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Client, 0);
    let mut other = results(0, &[]);
    other.sid = "X".into();
    assert!(matches!(
        s.handle(&other, T, 0),
        Err(SessionError::WrongSession { .. })
    ));
    assert!(matches!(
        s.handle(&results(0, &[]), "bad", 0),
        Err(SessionError::BadToken { .. })
    ));
    assert!(matches!(
        s.handle(&results(5, &[]), T, 0),
        Err(SessionError::OutOfOrder {
            expected: 0,
            found: 5,
            ..
        })
    ));
    assert!(matches!(
        s.decide(None),
        Err(SessionError::NoDecisionPending { .. })
    ));
    // Idle past the handset timeout.
    s.handle(&results(0, &[]), T, 0).unwrap();
    let e = s
        .handle(&results(1, &[]), T, HANDSET_TIMEOUT_SECS + 1)
        .unwrap_err();
    assert!(matches!(e, SessionError::Expired { .. }), "{e}");
    assert!(matches!(
        s.handle(&results(1, &[]), T, 0),
        Err(SessionError::Closed {
            reason: EndReason::SessionTimeout,
            ..
        })
    ));
    // A queued network-initiated session lives 72 h, then expires.
    let q = TpsSession::new("S", T, Purpose::Check, Origin::Network, 0);
    assert!(!q.expired(QUEUED_EXPIRY_SECS));
    assert!(q.expired(QUEUED_EXPIRY_SECS + 1));
    // A values document without the values.
    let mut s = TpsSession::new("S", T, Purpose::Check, Origin::Client, 1000);
    let reads = reply(s.handle(&results(0, &[]), T, 1000).unwrap());
    let bye = reply(
        s.handle(&answer(&reads, &[], ResultCode::Ok), T, 1000)
            .unwrap(),
    );
    assert_eq!(finish(s, &bye, NOW), EndReason::Mmc(ResultCode::CidMissing));
}
