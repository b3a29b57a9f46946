//! Rust cells (`%%rust`, evcxr) in the real binary over ZeroMQ: output and values, state
//! across Rust cells, compile errors, Rhai state kept apart, interrupts, completion, and a
//! missing `cargo`. They need a binary built with `--features rust`, named by
//! `RHAI_KERNEL_TEST_BINARY`, so they are ignored unless asked for: `make rust-cells-test`
//! runs them against the build `make` made (`RHAI_KERNEL_TEST_BINARY=target/rust-cells/rhai-kernel
//! cargo test --test rust_cells -- --ignored`), without building the crate and evcxr once
//! more for the tests. Slow: each kernel compiles its Rust cells with cargo.

mod kernel_support;

use kernel_support::{Execution, Kernel, TEST_BINARY_ENV};
use serde_json::json;
use std::time::Duration;

// Every variable a Rust cell keeps has its type written out: evcxr otherwise asks
// rust-analyzer for it, which on a busy machine can fail with "Couldn't automatically
// determine type of variable", failing the cell for a reason that is not the kernel's.

/// Asked for (`--ignored`) without a binary to test: say so, rather than fail every cell.
fn require_rust_build() {
    assert!(
        std::env::var_os(TEST_BINARY_ENV).is_some(),
        "these tests need a build with Rust cells named by {TEST_BINARY_ENV} \
         (`make rust-cells-test` sets it)"
    );
}

/// Compiling a Rust cell takes seconds, more for the first one of a kernel or on a busy
/// machine.
const RUST_TIMEOUT: Duration = Duration::from_secs(300);

/// A kernel whose temporary files (evcxr's cargo project) go to a directory of its own, removed
/// after the kernel (declare the directory first: `let (_tmp, mut k) = start();`).
fn start() -> (tempfile::TempDir, Kernel) {
    require_rust_build();
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().to_str().expect("utf-8 path").to_string();
    let kernel = Kernel::start_with_env(&[("TMPDIR", &path)]);
    (tmp, kernel)
}

fn execute_slow(k: &mut Kernel, code: &str) -> Execution {
    let request = k.send_execute(code);
    let iopub = k.iopub_until(&request, RUST_TIMEOUT, |m| {
        kernel_support::is_status(m, "idle")
    });
    let reply = k
        .try_shell_reply(&request, RUST_TIMEOUT)
        .unwrap_or_else(|| panic!("no reply to {code:?}; stderr:\n{}", k.stderr_text()));
    Execution {
        request,
        reply,
        iopub,
    }
}

/// The cell failed with error `ename` (showing what it printed if not).
fn assert_failed_with(ex: &Execution, ename: &str) {
    assert_eq!(
        ex.status(),
        "error",
        "{:?} stderr={:?} stdout={:?}",
        ex.reply.content,
        ex.stream("stderr"),
        ex.stdout()
    );
    assert_eq!(ex.reply.content["ename"], ename);
}

fn assert_ok(ex: &Execution) {
    assert_eq!(
        ex.status(),
        "ok",
        "cell failed: {:?}\nIOPub: {:?}",
        ex.reply.content,
        ex.msg_types()
    );
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn rust_cells_print_return_values_keep_state_and_leave_rhai_alone() {
    let (_tmp, mut k) = start();
    assert_eq!(k.execute("let shared_name = 5;").status(), "ok");

    let ex = execute_slow(
        &mut k,
        "%%rust\nprintln!(\"hello from Rust\");\neprintln!(\"to stderr\");\n40 + 2",
    );
    assert_ok(&ex);
    assert_eq!(ex.stdout(), "hello from Rust\n");
    assert_eq!(ex.result().as_deref(), Some("42"));
    assert!(
        ex.msg_types().contains(&"execute_result".to_string()),
        "{:?}",
        ex.msg_types()
    );

    // State persists from Rust cell to Rust cell, and a name shared with Rhai stays apart.
    let ex = execute_slow(
        &mut k,
        "%%rust\nlet shared_name: i32 = 100;\nlet mut words: Vec<String> = vec![\"a\".into()];",
    );
    assert_ok(&ex);
    assert_eq!(ex.result(), None, "a statement has no value");
    let ex = execute_slow(
        &mut k,
        "%%rust\nwords.push(\"b\".into());\nformat!(\"{} {}\", words.join(\",\"), shared_name)",
    );
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("\"a,b 100\""));

    // Rhai's variables are untouched by the Rust cells.
    assert_eq!(k.eval("shared_name"), "5");
    assert_eq!(k.eval("shared_name + 1"), "6");

    // %%time works around a Rust cell too.
    let ex = execute_slow(&mut k, "%%time\n%%rust\nshared_name * 2");
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("200"));
    assert!(ex.stdout().contains("Wall time:"), "{}", ex.stdout());

    // Completion inside a Rust cell comes from evcxr (rust-analyzer).
    let code = "%%rust\nwords.pu";
    let request = k.send_shell(
        "complete_request",
        json!({ "code": code, "cursor_pos": code.chars().count() }),
    );
    let reply = k
        .try_shell_reply(&request, RUST_TIMEOUT)
        .expect("complete_reply");
    let matches: Vec<&str> = reply.content["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(matches.iter().any(|m| m.starts_with("push")), "{matches:?}");
    assert_eq!(reply.content["cursor_end"], code.chars().count());

    // A Rust cell is always complete for a console.
    let request = k.send_shell("is_complete_request", json!({ "code": "%%rust\nfn f() {" }));
    assert_eq!(k.shell_reply(&request).content["status"], "complete");
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn compile_errors_are_reported_with_evcxrs_messages() {
    let (_tmp, mut k) = start();
    assert_eq!(k.execute("let kept = 1;").status(), "ok");
    let ex = execute_slow(&mut k, "%%rust\nlet x: i32 = \"text\";\nx");
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "CompilationError");
    let error = ex.error().expect("error on IOPub");
    let evalue = error["evalue"].as_str().unwrap();
    assert!(evalue.contains("mismatched types"), "{evalue}");
    assert!(evalue.contains("E0308"), "{evalue}");
    // The traceback points at the line of the cell.
    let traceback = error["traceback"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(traceback.contains("line 2"), "{traceback}");
    assert!(traceback.contains("let x: i32 = \"text\";"), "{traceback}");
    // The session goes on: Rhai and Rust both still work.
    assert_eq!(k.eval("kept"), "1");
    let ex = execute_slow(&mut k, "%%rust\n2 * 21");
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("42"));
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn a_panic_fails_the_cell_but_a_panicking_thread_does_not() {
    let (_tmp, mut k) = start();
    assert_ok(&execute_slow(&mut k, "%%rust\nlet kept: i32 = 5;"));
    let ex = execute_slow(&mut k, "%%rust\nlet v: Vec<i32> = Vec::new();\nv[3]");
    assert_failed_with(&ex, "RustPanic");
    let evalue = ex.reply.content["evalue"].as_str().unwrap_or_default();
    assert!(evalue.contains("index out of bounds"), "{evalue}");
    // A thread of the cell that panics only makes its join() fail; the cell is fine.
    let ex = execute_slow(
        &mut k,
        "%%rust\nlet failed: bool = std::thread::spawn(|| -> () { panic!(\"in a thread\") })\n    .join()\n    .is_err();\nfailed",
    );
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("true"));
    let ex = execute_slow(&mut k, "%%rust\nkept");
    assert_eq!(ex.result().as_deref(), Some("5"));
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn interrupt_stops_a_rust_cell_and_says_rust_state_was_lost() {
    let (_tmp, mut k) = start();
    assert_eq!(k.execute("let rhai_kept = 7;").status(), "ok");
    assert_ok(&execute_slow(&mut k, "%%rust\nlet before: i32 = 1;"));

    let request = k.send_execute(
        "%%rust\nprintln!(\"spinning\");\nloop { std::thread::sleep(std::time::Duration::from_millis(5)); }",
    );
    k.iopub_until(&request, RUST_TIMEOUT, |m| {
        m.msg_type() == "stream" && m.content["text"].as_str() == Some("spinning\n")
    });
    let interrupt = k.send_control("interrupt_request", json!({}));
    assert_eq!(k.control_reply(&interrupt).content["status"], "ok");
    let ex = k.finish_execute(request);
    assert_failed_with(&ex, "Interrupted");
    let evalue = ex.reply.content["evalue"].as_str().unwrap();
    assert!(evalue.contains("Rust-cell variables were lost"), "{evalue}");
    assert!(evalue.contains("Rhai state is kept"), "{evalue}");

    assert_eq!(k.eval("rhai_kept"), "7");
    // Rust variables are gone, but Rust cells work again.
    let ex = execute_slow(&mut k, "%%rust\nbefore");
    assert_eq!(ex.status(), "error");
    let ex = execute_slow(&mut k, "%%rust\nlet after: i32 = 3; after + 1");
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("4"));
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn without_cargo_a_rust_cell_is_a_clear_error() {
    require_rust_build();
    let mut k = Kernel::start_with_env(&[("PATH", "/nonexistent")]);
    let ex = k.execute("%%rust\n1 + 1");
    assert_eq!(ex.status(), "error");
    assert_eq!(ex.reply.content["ename"], "RustCellsUnavailable");
    let evalue = ex.reply.content["evalue"].as_str().unwrap();
    assert!(evalue.contains("cargo"), "{evalue}");
    assert_eq!(k.eval("40 + 2"), "42");
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn dep_lines_add_crates_and_parallel_rust_runs() {
    let (_tmp, mut k) = start();
    let started = std::time::Instant::now();
    assert_ok(&execute_slow(&mut k, "%%rust\n1"));
    eprintln!("first Rust cell: {:.1?}", started.elapsed());
    let started = std::time::Instant::now();
    assert_ok(&execute_slow(&mut k, "%%rust\n2"));
    eprintln!("second Rust cell: {:.1?}", started.elapsed());
    let started = std::time::Instant::now();
    let ex = execute_slow(
        &mut k,
        "%%rust\n:dep rayon = \"1\"\nuse rayon::prelude::*;\n\
         (0..1000u64).into_par_iter().map(|x| x * x).sum::<u64>()",
    );
    eprintln!(":dep rayon cell: {:.1?}", started.elapsed());
    assert_ok(&ex);
    assert_eq!(ex.result().as_deref(), Some("332833500"));
}

#[test]
#[ignore = "needs a build with Rust cells (make rust-cells-test)"]
fn shutdown_ends_evcxrs_child_and_removes_its_project() {
    let (tmp, mut k) = start();
    assert_ok(&execute_slow(&mut k, "%%rust\nlet kept: i32 = 1;"));
    // evcxr's cargo project lives in a directory under TMPDIR, its child is a child of the kernel.
    let projects = || {
        std::fs::read_dir(tmp.path())
            .expect("read TMPDIR")
            .flatten()
            .filter(|e| e.path().join("Cargo.toml").exists())
            .count()
    };
    assert_eq!(projects(), 1);
    let children = kernel_support::children_of(k.pid());
    assert!(!children.is_empty(), "evcxr's child process");

    let request = k.send_control("shutdown_request", json!({ "restart": false }));
    k.control_reply(&request);
    assert!(
        k.wait_exit(Duration::from_secs(30)).is_some(),
        "kernel exits"
    );
    assert_eq!(projects(), 0, "evcxr's project is removed");
    for pid in children {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} outlived the kernel"
        );
    }
}
