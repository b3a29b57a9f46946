//! Shared memory in a long kernel session, over ZeroMQ: objects that cells drop are
//! freed, objects that variables keep stay usable from cell to cell, and what worker
//! processes held is given back when they end, so a small shared memory lasts forever.

mod kernel_support;

use kernel_support::Kernel;

fn objects(kernel: &mut Kernel) -> i64 {
    let text = kernel.eval("shared_memory().objects");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("shared_memory().objects gave {text:?}"))
}

#[test]
fn a_long_session_gives_shared_memory_back() {
    // 16 MiB holds about 60 queues at a time.
    let mut kernel = Kernel::start_with_env(&[("RHAI_KERNEL_SHM_MIB", "16")]);
    let setup = kernel.execute("let q = queue(); let total = value(0); let guard = lock();");
    assert_eq!(setup.status(), "ok", "{:?}", setup.error());
    let kept = objects(&mut kernel);
    assert_eq!(kept, 3, "the three objects the variables hold");
    for round in 0..5 {
        let churn = kernel.execute(
            r#"
            for i in 0..200 { let big = queue(); big.put([lock(), value(i)]); }
            let ps = [];
            for i in 0..20 {
                ps.push(spawn_process(|q, total, guard, i| {
                    guard.hold(|| total.value += 1);
                    q.put([value(i), queue()]);
                    [lock(), semaphore(2)]
                }, q, total, guard, i));
            }
            let back = [];
            for p in ps { back.push(p.join()); }
            for i in 0..20 { back.push(q.get(30.0)); }
            back.len()
            "#,
        );
        assert_eq!(churn.status(), "ok", "round {round}: {:?}", churn.error());
        assert_eq!(churn.result().as_deref(), Some("40"), "round {round}");
        // `back` and `ps` are cell variables: dropping them frees what they hold.
        let drop = kernel.execute("back = (); ps = ();");
        assert_eq!(drop.status(), "ok", "{:?}", drop.error());
        assert_eq!(objects(&mut kernel), kept, "objects after round {round}");
    }
    assert_eq!(kernel.eval("total.value"), "100");
    assert_eq!(kernel.eval("q.len()"), "0");
}
