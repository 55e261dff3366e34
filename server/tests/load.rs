//! A campaign over 1,000 simulated devices on one server on loopback:
//! half OMA-DM, half IOTA; 10 % decline, 5 % fail the install (a flash
//! that cannot be programmed). Every device must end in the right state
//! on both sides, with no status lost. Prints p50/p99 check-in latency
//! and the total time. On SQLite always; on PostgreSQL when
//! `FOTA_TEST_POSTGRES_URL` names a server (CI starts one).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fota_server::device::flash::Faults;
use fota_server::device::{ConsentPolicy, Options};
use fota_server::registry::Capability;
use serde_json::json;

const DEVICES: usize = 1000;
const PARALLEL: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Installed,
    Refused,
    Failed,
}

fn fate(i: usize) -> Fate {
    match (i % 10, i % 20) {
        (3, _) => Fate::Refused,
        (_, 7) => Fate::Failed,
        _ => Fate::Installed,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no check-ins were timed");
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn campaign_of_1000(label: &str, database_url: Option<String>) {
    let mut f = start_with(|c| {
        if let Some(u) = database_url {
            c.database_url = u;
        }
    })
    .await;
    f.image_kb = 16;
    let pkg = f.line_with_package().await;
    let started = Instant::now();
    let mut devices = Vec::with_capacity(DEVICES);
    for i in 0..DEVICES {
        let id = format!("{:08X}", 0x6000_0000 + i);
        let cap = if i % 2 == 0 {
            Capability::OmaDm
        } else {
            Capability::Iota
        };
        let consent = if fate(i) == Fate::Refused {
            ConsentPolicy::Refuse
        } else {
            ConsentPolicy::Accept
        };
        let options = Options {
            drop_after: None,
            faults: Faults {
                cut_after_ops: None,
                broken: fate(i) == Fate::Failed,
            },
            yes: false,
        };
        let (d, _) = f.device(&id, cap, 0, consent, options).await;
        devices.push((i, id, cap, d));
    }
    let registered = started.elapsed();
    let (s, b) = f
        .admin(
            "POST",
            "/campaigns",
            Some(json!({"name": "load", "package_id": pkg})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["campaign"]["notified"], DEVICES, "{b}");
    let cid = b["campaign"]["id"].as_str().unwrap().to_string();
    let (_, out) = f.admin("GET", "/outbox?limit=5000", None).await;
    let mut by_device = std::collections::HashMap::new();
    for it in out["outbox"].as_array().unwrap() {
        by_device.insert(
            it["device_id"].as_str().unwrap().to_string(),
            (
                it["transport"].as_str().unwrap().to_string(),
                it["payload"].as_str().unwrap().to_string(),
            ),
        );
    }
    assert_eq!(by_device.len(), DEVICES);
    let run_started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = Vec::new();
    for (i, id, cap, mut d) in devices {
        let (transport, payload) = by_device.remove(&id).unwrap();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let s = d.on_notification(&transport, &payload).await;
            (
                i,
                id,
                cap,
                s.map_err(|e| e.to_string()),
                d.checkin_latencies.clone(),
            )
        }));
    }
    let mut latencies = Vec::new();
    let mut results = Vec::new();
    for t in tasks {
        let (i, id, cap, s, lat) = t.await.unwrap();
        latencies.extend(lat);
        results.push((i, id, cap, s));
    }
    let run = run_started.elapsed();
    // Every device ends where its fate says, on both sides.
    for (i, id, cap, s) in &results {
        let s = s.as_ref().unwrap_or_else(|e| panic!("device {id}: {e}"));
        let want = match fate(*i) {
            Fate::Installed => "installed",
            Fate::Refused => "refused",
            Fate::Failed => "failed",
        };
        assert_eq!(s.result, want, "device {id}");
        let d = f.device_json(id).await;
        let u = &d["updates"][0];
        assert_eq!(u["state"], want, "device {id}: {d}");
        if fate(*i) == Fate::Failed {
            let code = if *cap == Capability::OmaDm { 410 } else { 17 };
            assert_eq!(u["result_code"], code, "device {id}: {d}");
        }
        let fw = if fate(*i) == Fate::Installed {
            version(1)
        } else {
            version(0)
        };
        assert_eq!(d["device"]["fw_version"], fw, "device {id}: {d}");
    }
    let (_, p) = f.admin("GET", &format!("/campaigns/{cid}"), None).await;
    let by = &p["progress"]["by_state"];
    assert_eq!(by["installed"], 850, "{p}");
    assert_eq!(by["refused"], 100, "{p}");
    assert_eq!(by["failed"], 50, "{p}");
    assert_eq!(p["progress"]["total"], DEVICES, "{p}");
    latencies.sort();
    println!(
        "load [{label}]: {DEVICES} devices ({PARALLEL} at a time): campaign run {:.2} s (registration {:.2} s); \
         check-in latency p50 {:.2} ms, p99 {:.2} ms over {} check-ins; progress {}",
        run.as_secs_f64(),
        registered.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len(),
        p["progress"]["by_state"]
    );
    f.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_of_1000_devices_on_sqlite() {
    campaign_of_1000("sqlite", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_of_1000_devices_on_postgres() {
    let url = match std::env::var("FOTA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run this test: set FOTA_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)"
            );
            eprintln!("skipped: FOTA_TEST_POSTGRES_URL is not set");
            return;
        }
    };
    let db = fresh_postgres(&url).await;
    campaign_of_1000("postgres", Some(db)).await;
}
