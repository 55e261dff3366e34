//! The handset state machine against the TPS, in memory, over real MMC
//! XML both ways: offers, refusals, reports, and the handset's own codes.

use fota_server::iota::handset::{
    parse_trigger, Always, Consent, HandsetConfig, HandsetError, HandsetPurpose, HandsetSession,
    HandsetStep,
};
use fota_server::iota::mmc::{Command, Mmc, MmcResult, ResultCode, ValueRef};
use fota_server::iota::session::{EndReason, Offer, Origin, Outcome, Purpose, TpsSession};

fn cfg() -> HandsetConfig {
    HandsetConfig {
        esn: Some("ABCDEF01".into()),
        meid: None,
        man: "Acme".into(),
        model: "P1".into(),
        fw_version: "1.0".into(),
        trusted_domain: "fota.example.net".into(),
    }
}

fn offer() -> Offer {
    Offer {
        url: "https://dl.fota.example.net/p/1".into(),
        size: 1234,
        sha256_hex: "ab".repeat(32),
        notes: "Fixes".into(),
        mandatory: false,
    }
}

/// Runs a whole session; returns the handset's final step and the TPS's
/// last outcome.
fn run(
    purpose: HandsetPurpose,
    tps_purpose: Purpose,
    give: Option<Offer>,
    consent: Consent,
) -> (HandsetStep, Vec<Outcome>) {
    let mut tps = TpsSession::new("S1", "tok", tps_purpose, Origin::Client, 0);
    let mut hs = HandsetSession::new(cfg(), "S1", purpose);
    let mut user = Always(consent);
    let mut doc = hs.hello();
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let back = MmcResult::parse(doc.to_xml().as_bytes()).unwrap();
        let out = tps.handle(&back, "tok", 1).unwrap();
        outcomes.push(out.clone());
        let server = match out {
            Outcome::Reply(m) | Outcome::Report(_, m) => m,
            Outcome::NeedDecision { .. } => tps.decide(give.clone()).unwrap(),
            Outcome::Closed(_) | Outcome::Busy => unreachable!("closed before the handset's last"),
        };
        match hs.handle(server.to_xml().as_bytes(), &mut user).unwrap() {
            HandsetStep::Send(next) => doc = next,
            done @ HandsetStep::Done { .. } => {
                if let HandsetStep::Done {
                    last: Some(last), ..
                } = &done
                {
                    let back = MmcResult::parse(last.to_xml().as_bytes()).unwrap();
                    outcomes.push(tps.handle(&back, "tok", 2).unwrap());
                }
                return (done, outcomes);
            }
        }
    }
    panic!("no end");
}

#[test]
fn an_accepted_offer_is_committed() {
    let (done, outcomes) = run(
        HandsetPurpose::Check,
        Purpose::Check,
        Some(offer()),
        Consent::Accept,
    );
    let HandsetStep::Done { offer: Some(o), .. } = done else {
        panic!("{done:?}")
    };
    assert_eq!(o.url, offer().url);
    assert_eq!(o.size, 1234);
    assert_eq!(o.sha256_hex, offer().sha256_hex);
    assert!(
        o.notes.contains("Fixes") && o.notes.contains("emergency"),
        "{}",
        o.notes
    );
    assert_eq!(
        outcomes.last(),
        Some(&Outcome::Closed(EndReason::UrlDelivered))
    );
}

#[test]
fn a_refusal_reaches_the_server_and_drops_the_offer() {
    let (done, outcomes) = run(
        HandsetPurpose::Check,
        Purpose::Check,
        Some(offer()),
        Consent::Refuse,
    );
    assert!(
        matches!(done, HandsetStep::Done { offer: None, .. }),
        "{done:?}"
    );
    assert_eq!(
        outcomes.last(),
        Some(&Outcome::Closed(EndReason::UserDenied))
    );
}

#[test]
fn no_package_means_no_offer() {
    let (done, outcomes) = run(HandsetPurpose::Check, Purpose::Check, None, Consent::Accept);
    assert!(matches!(done, HandsetStep::Done { offer: None, .. }));
    assert_eq!(outcomes.last(), Some(&Outcome::Closed(EndReason::NoUpdate)));
}

#[test]
fn the_report_after_an_install() {
    let target = Purpose::Report {
        target_version: "1.0".into(),
    };
    let (_, outcomes) = run(
        HandsetPurpose::Report {
            state: "installed".into(),
            result: 0,
        },
        target.clone(),
        None,
        Consent::Accept,
    );
    let r = outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Report(r, _) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(r.installed, "{r:?}");
    let (_, outcomes) = run(
        HandsetPurpose::Report {
            state: "failed".into(),
            result: 20,
        },
        target,
        None,
        Consent::Accept,
    );
    let r = outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Report(r, _) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!r.installed);
    assert_eq!(r.result, "20");
}

fn doc(seq: u32, commands: Vec<Command>) -> Vec<u8> {
    Mmc {
        sid: "S1".into(),
        seq,
        commands,
    }
    .to_xml()
    .into_bytes()
}

#[test]
fn the_handset_answers_with_the_documented_codes() {
    let mut hs = HandsetSession::new(cfg(), "S1", HandsetPurpose::Check);
    let _ = hs.hello();
    let mut user = Always(Consent::Accept);
    let w = |cid, r: ValueRef, v: &str| Command::Write {
        cid,
        valueref: r,
        value: v.into(),
    };
    let body = doc(
        1,
        vec![
            Command::Read {
                cid: 1,
                valueref: ValueRef::Other("x/y".into()),
            },
            Command::Read {
                cid: 2,
                valueref: ValueRef::FotaPkgUrl,
            },
            w(3, ValueRef::FotaPkgSize, "ten"),
            w(4, ValueRef::FotaPkgHash, "zz"),
            w(5, ValueRef::FotaPkgUrl, "https://evil.example/p"),
            w(6, ValueRef::DevFwv, "9.9"),
            Command::Delete {
                cid: 7,
                valueref: ValueRef::DevMan,
            },
            Command::Read {
                cid: 8,
                valueref: ValueRef::DevEsn,
            },
            Command::Read {
                cid: 9,
                valueref: ValueRef::DevMeid,
            },
        ],
    );
    let HandsetStep::Send(r) = hs.handle(&body, &mut user).unwrap() else {
        panic!()
    };
    let codes: Vec<ResultCode> = r.results.iter().map(|x| x.code).collect();
    use ResultCode::*;
    assert_eq!(
        codes,
        [
            InvalidValueRef,
            WriteOnly,
            BadValue,
            BadValue,
            BadValue,
            BadObject,
            DeleteFailed,
            Ok,
            InvalidValueRef
        ]
    );
    assert_eq!(r.results[7].value.as_deref(), Some("ABCDEF01"));
    // A repeat gets the same answer; a skipped seq and another sid are errors.
    assert_eq!(hs.handle(&body, &mut user).unwrap(), HandsetStep::Send(r));
    assert!(matches!(
        hs.handle(&doc(5, vec![]), &mut user),
        Err(HandsetError::OutOfOrder {
            expected: 2,
            found: 5
        })
    ));
    let other = Mmc {
        sid: "S2".into(),
        seq: 2,
        commands: vec![],
    }
    .to_xml();
    assert!(matches!(
        hs.handle(other.as_bytes(), &mut user),
        Err(HandsetError::WrongSession { .. })
    ));
    assert!(matches!(
        hs.handle(b"<junk", &mut user),
        Err(HandsetError::Mmc(_))
    ));
}

#[test]
fn triggers_outside_the_trusted_domain_are_dropped() {
    let t = parse_trigger("https://tps.fota.example.net/iota?sid=S&t=T", &cfg()).unwrap();
    assert_eq!((t.sid.as_str(), t.token.as_str()), ("S", "T"));
    for bad in [
        "https://fota.example.net.evil.example/iota?sid=S&t=T",
        "https://evilfota.example.net/iota?sid=S&t=T",
        "ftp://fota.example.net/iota?sid=S&t=T",
    ] {
        assert!(parse_trigger(bad, &cfg()).is_err(), "{bad}");
    }
    assert!(matches!(
        parse_trigger("https://fota.example.net/iota?sid=S", &cfg()),
        Err(HandsetError::BadTrigger { .. })
    ));
    let long = format!("https://fota.example.net/iota?sid=S&t={}", "x".repeat(120));
    assert!(matches!(
        parse_trigger(&long, &cfg()),
        Err(HandsetError::BadTrigger { .. })
    ));
}
