//! R13: the checked-in C headers `include/fota_agent.h` and
//! `include/fota_sim.h` are what cbindgen makes of `src/ffi.rs` and
//! `src/ffi/sim.rs` (with `cbindgen.toml` and `cbindgen-sim.toml`), and
//! they compile as C99 with every warning an error. A stale header fails with the command
//! that regenerates it:
//! `FOTA_BLESS=1 cargo test -p fota-agent --features ffi --test ffi_header`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A header as cbindgen generates it now from `src/<source>` with
/// `<config>`.
fn generate(source: &str, config: &str) -> String {
    let dir = agent_dir();
    let config = cbindgen::Config::from_file(dir.join(config)).expect("cbindgen config");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src").join(source))
        .generate()
        .expect("cbindgen parses the source");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

/// The agent's header (from `src/ffi.rs`) and the simulator's (from
/// `src/ffi/sim.rs`): each checked in and current.
#[test]
fn the_checked_in_headers_are_current() {
    for (header, source, config) in [
        ("fota_agent.h", "ffi.rs", "cbindgen.toml"),
        ("fota_sim.h", "ffi/sim.rs", "cbindgen-sim.toml"),
    ] {
        let path = agent_dir().join("include").join(header);
        let fresh = generate(source, config);
        if std::env::var_os("FOTA_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write the header");
            println!("wrote {}", path.display());
            continue;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == fresh,
            "include/{header} is stale (src/{source} or {config} changed); regenerate it with\n  \
             FOTA_BLESS=1 cargo test -p fota-agent --features ffi --test ffi_header"
        );
    }
}

/// `gcc`, or `None` (with a message) when it is missing.
fn gcc() -> Option<&'static str> {
    let found = Command::new("gcc").arg("--version").output().is_ok();
    if !found {
        println!("skipped: gcc is not installed (.ci/run installs it)");
    }
    found.then_some("gcc")
}

/// Runs `gcc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only` on
/// `source`, with `include` as the include directory.
fn compiles(gcc: &str, source: &str, include: &Path) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(gcc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args(["-fsyntax-only", "-x", "c", "-"])
        .arg("-I")
        .arg(include)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gcc");
    child
        .stdin
        .take()
        .expect("gcc's stdin")
        .write_all(source.as_bytes())
        .expect("write to gcc");
    child.wait_with_output().expect("wait for gcc")
}

const PROGRAM: &str = "#include \"fota_agent.h\"\n\
     #include \"fota_agent.h\" /* twice: the guard holds */\n\
     #include \"fota_sim.h\"\n\
     #include \"fota_sim.h\"\n\
     static FotaAgent agent;\n\
     int main(void) { return fota_agent_init(&agent, 0) == FOTA_ERR_ARGUMENT ? 0 : 1; }\n";

#[test]
fn the_header_compiles_as_strict_c99() {
    let Some(gcc) = gcc() else { return };
    let ok = compiles(gcc, PROGRAM, &agent_dir().join("include"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn the_header_refuses_a_size_c_does_not_agree_with() {
    let Some(gcc) = gcc() else { return };
    // A FOTA_AGENT_SIZE the 8-byte alignment cannot give: the header's
    // own C99 check must stop the build.
    let header = std::fs::read_to_string(agent_dir().join("include").join("fota_agent.h"))
        .expect("read the header");
    let size = format!(
        "#define FOTA_AGENT_SIZE {}",
        fota_agent::ffi::FOTA_AGENT_SIZE
    );
    assert!(header.contains(&size), "the header defines {size}");
    let wrong = header.replace(
        &size,
        &format!(
            "#define FOTA_AGENT_SIZE {}",
            fota_agent::ffi::FOTA_AGENT_SIZE - 4
        ),
    );
    let dir = std::env::temp_dir().join(format!("fota-ffi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    std::fs::write(dir.join("fota_agent.h"), wrong).expect("write the header copy");
    let bad = compiles(gcc, PROGRAM, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !bad.status.success(),
        "a size C disagrees with must not compile"
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("fota_agent_size_check"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
