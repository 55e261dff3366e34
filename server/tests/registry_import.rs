//! CSV device import, id lists and the purge archive: every error names
//! its line and column; archives round-trip and refuse damage.

use fota_server::registry::archive::{self, ArchiveError};
use fota_server::registry::csv_import::{parse_devices, parse_id_list, CsvError};
use fota_server::registry::{Capability, DeviceId, DeviceRecord};
use proptest::prelude::*;

#[test]
fn a_good_file_in_any_column_order() {
    let csv = "capability, model ,IMEI,make,version,active,subscriber\n\
               oma-dm,P1,356938035643809,Acme,1.0,no,\"Smith, J\"\n\
               \n\
               iota,P1,A1000012345678,Acme,1.1,,\n";
    let d = parse_devices(csv.as_bytes()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].id.as_str(), "356938035643809");
    assert_eq!(d[0].capability, Capability::OmaDm);
    assert!(!d[0].active);
    assert_eq!(d[0].subscriber, "Smith, J");
    assert_eq!(d[1].id.as_str(), "A1000012345678");
    assert!(d[1].active);
}

#[test]
fn every_error_names_its_line_and_column() {
    let cases: [(&str, &str); 8] = [
        ("id,make,model,fw_version\n", "no \"capability\" column"),
        (
            "id,make,model,fw_version,capability,colour\n",
            "unknown column \"colour\"",
        ),
        (
            "id,make,model,fw_version,capability\n12345678,,P,1,iota\n",
            "line 2, column \"make\": empty",
        ),
        (
            "id,make,model,fw_version,capability\nxyz,A,P,1,iota\n",
            "line 2, column \"id\"",
        ),
        (
            "id,make,model,fw_version,capability\n12345678,A,P,1,gsm\n",
            "line 2, column \"capability\": \"gsm\"",
        ),
        (
            "id,make,model,fw_version,capability,active\n12345678,A,P,1,iota,maybe\n",
            "line 2, column \"active\": \"maybe\"",
        ),
        (
            "id,make,model,fw_version,capability\n12345678,A,P,1,iota\n\n12345678,A,P,1,iota\n",
            "line 4: device 12345678 is on line 2 already",
        ),
        (
            "id,make,model,fw_version,capability\n12345678,A,P,1\n",
            "line 2",
        ),
    ];
    for (csv, want) in cases {
        let e = parse_devices(csv.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(want), "{csv:?}: {e:?} lacks {want:?}");
    }
    assert!(matches!(
        parse_devices(b"id,make,model,fw_version,capability\n1234567\xff,A,P,1,iota\n"),
        Err(CsvError::Malformed { .. } | CsvError::BadId { .. })
    ));
    // An IMEI with a wrong check digit.
    let e = parse_devices(b"id,make,model,fw_version,capability\n356938035643808,A,P,1,iota\n")
        .unwrap_err();
    assert!(matches!(e, CsvError::BadId { line: 2, .. }), "{e}");
}

#[test]
fn id_lists_one_per_line_or_csv() {
    let ids = parse_id_list(b"# targets\n12345678\n\nABCDEF01\n12345678\n").unwrap();
    let s: Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
    assert_eq!(s, ["12345678", "ABCDEF01"]);
    let ids = parse_id_list(b"make,id\nAcme,12345678\nAcme,abcdef01\n").unwrap();
    assert_eq!(ids[1].as_str(), "ABCDEF01");
    let e = parse_id_list(b"12345678\nnope\n").unwrap_err();
    assert!(matches!(e, CsvError::BadId { line: 2, .. }), "{e}");
    assert!(parse_id_list(b"").unwrap().is_empty());
}

fn record(i: u32, deactivated: Option<i64>) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::parse(&format!("{:08X}", i)).unwrap(),
        make: "Acme".into(),
        model: "P \"1\"\n".into(),
        fw_version: "1.0".into(),
        capability: if i % 2 == 0 {
            Capability::Iota
        } else {
            Capability::OmaDm
        },
        subscriber: format!("sub {i}"),
        active: deactivated.is_none(),
        deactivated_at: deactivated,
        created_at: 1_700_000_000,
        previous_ids: vec![(
            DeviceId::parse(&format!("{:08X}", i + 1)).unwrap(),
            1_700_000_100,
        )],
    }
}

#[test]
fn archives_round_trip_and_refuse_damage() {
    let recs: Vec<_> = (0..20).map(|i| record(i, Some(5))).collect();
    let mut buf = Vec::new();
    archive::write(&mut buf, 42, &recs).unwrap();
    let a = archive::read(&buf[..]).unwrap();
    assert_eq!(a.created_at, 42);
    assert_eq!(a.devices, recs);
    assert!(matches!(
        archive::read(&buf[..buf.len() - 8]),
        Err(ArchiveError::NotGzip(_))
    ));
    assert!(matches!(
        archive::read(&b"plain text"[..]),
        Err(ArchiveError::NotGzip(_))
    ));
    let gz = |text: &str| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    assert!(matches!(
        archive::read(
            &gz("{\"format\":\"other\",\"version\":1,\"created_at\":0,\"count\":0}\n")[..]
        ),
        Err(ArchiveError::BadHeader { .. })
    ));
    assert!(matches!(archive::read(&gz("{\"format\":\"fota-registry-archive\",\"version\":9,\"created_at\":0,\"count\":0}\n")[..]), Err(ArchiveError::UnsupportedVersion { found: 9 })));
    assert!(matches!(archive::read(&gz("{\"format\":\"fota-registry-archive\",\"version\":1,\"created_at\":0,\"count\":2}\n")[..]), Err(ArchiveError::CountMismatch { header: 2, found: 0 })));
    let e = archive::read(&gz("{\"format\":\"fota-registry-archive\",\"version\":1,\"created_at\":0,\"count\":1}\n{\"id\":\"nope\"}\n")[..]).unwrap_err();
    assert!(matches!(e, ArchiveError::BadLine { line: 2, .. }), "{e}");
}

#[test]
fn archive_files_are_written_whole_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl.gz");
    archive::write_file(&p, 1, &[record(1, Some(2))]).unwrap();
    assert!(!dir.path().join("a.jsonl.gz.tmp").exists());
    let e = archive::write_file(&p, 1, &[]).unwrap_err();
    assert!(matches!(e, ArchiveError::Exists(_)), "{e}");
    assert_eq!(
        archive::read(std::fs::File::open(&p).unwrap())
            .unwrap()
            .devices
            .len(),
        1
    );
}

proptest! {
    #[test]
    fn archive_round_trip(ids in proptest::collection::btree_set(0u32..0x7fff_ffff, 0..20), t in any::<i64>()) {
        let recs: Vec<_> = ids.iter().map(|&i| record(i, if i % 3 == 0 { None } else { Some(i64::from(i)) })).collect();
        let mut buf = Vec::new();
        archive::write(&mut buf, t, &recs).unwrap();
        let a = archive::read(&buf[..]).unwrap();
        prop_assert_eq!(a.devices, recs);
        prop_assert_eq!(a.created_at, t);
    }

    #[test]
    fn archive_read_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = archive::read(&bytes[..]);
    }

    #[test]
    fn csv_never_panics(text in ".{0,400}") {
        let _ = parse_devices(text.as_bytes());
        let _ = parse_id_list(text.as_bytes());
    }
}
