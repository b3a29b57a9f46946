//! The Rhai session behind the kernel, through its public trait: persistence across cells,
//! errors and tracebacks, completion, inspection and completeness.

use rhai_kernel::interpreter::{Completeness, Interpreter, RhaiSession};

fn plain(result: Option<serde_json::Map<String, serde_json::Value>>) -> String {
    result
        .and_then(|b| b["text/plain"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn variables_and_functions_persist_across_cells() {
    let mut s = RhaiSession::new();
    assert_eq!(
        plain(s.execute("let x = 20; const K = 2;", "In[1]").unwrap()),
        ""
    );
    s.execute("fn square(v) { v * v }", "In[2]").unwrap();
    assert_eq!(plain(s.execute("square(x) + K", "In[3]").unwrap()), "402");
    // A bare function name from an earlier cell becomes a function pointer.
    assert_eq!(
        plain(s.execute("let f = square; f.call(3)", "In[4]").unwrap()),
        "9"
    );
    // Redefining replaces the function.
    s.execute("fn square(v) { v * v * v }", "In[5]").unwrap();
    assert_eq!(plain(s.execute("square(2)", "In[6]").unwrap()), "8");
    // Closures defined in one cell are callable in another.
    s.execute("let add = |a| a + x;", "In[7]").unwrap();
    assert_eq!(plain(s.execute("add.call(1)", "In[8]").unwrap()), "21");
}

#[test]
fn variables_assigned_before_an_error_are_kept() {
    let mut s = RhaiSession::new();
    let err = s
        .execute(
            "let before = 1; before += 1; throw \"stop\"; let after = 3;",
            "In[1]",
        )
        .unwrap_err();
    assert_eq!(err.kind, "ErrorRuntime");
    assert_eq!(err.message, "stop");
    assert_eq!(plain(s.execute("before", "In[2]").unwrap()), "2");
    assert!(s.execute("after", "In[3]").is_err());
}

#[test]
fn unit_results_show_nothing_and_strings_are_quoted() {
    let mut s = RhaiSession::new();
    assert!(s.execute("let a = 1;", "In[1]").unwrap().is_none());
    assert_eq!(plain(s.execute("\"hi\"", "In[2]").unwrap()), "\"hi\"");
    let bundle = s.execute("#{a: [1, 2]}", "In[3]").unwrap().unwrap();
    assert_eq!(bundle["application/json"], serde_json::json!({"a": [1, 2]}));
    assert!(bundle["text/html"].as_str().unwrap().contains("<table"));
}

#[test]
fn errors_point_at_the_line_in_the_defining_cell() {
    let mut s = RhaiSession::new();
    s.execute("fn inner(v) {\n    v / 0\n}", "In[1]").unwrap();
    let err = s.execute("let y = 5;\ninner(y)", "In[2]").unwrap_err();
    assert_eq!(err.kind, "ErrorArithmetic");
    assert_eq!(err.frames.len(), 2);
    assert_eq!(
        (err.frames[0].source.as_str(), err.frames[0].line),
        ("In[2]", Some(2))
    );
    assert_eq!(err.frames[1].source, "In[1]");
    assert_eq!(err.frames[1].function.as_deref(), Some("inner"));
    assert_eq!(err.frames[1].line, Some(2));
    let traceback = s.traceback(&err, false).join("\n");
    assert!(traceback.contains("----> 2       v / 0"), "{traceback}");
    assert!(
        traceback.contains("In[1], in function inner, line 2"),
        "{traceback}"
    );
    assert!(
        traceback.ends_with("ErrorArithmetic: Division by zero: 5 / 0"),
        "{traceback}"
    );
}

#[test]
fn syntax_errors_are_reported_without_running_anything() {
    let mut s = RhaiSession::new();
    let err = s.execute("let ok = 1;\nlet = 2;", "In[1]").unwrap_err();
    assert_eq!(err.kind, "ErrorParsing");
    assert_eq!(err.frames[0].line, Some(2));
    assert!(
        s.execute("ok", "In[2]").is_err(),
        "a cell that does not parse runs nothing"
    );
}

#[test]
fn deep_recursion_is_an_error() {
    let handle = std::thread::Builder::new()
        .stack_size(rhai_kernel::interpreter::engine::SCRIPT_STACK_SIZE)
        .spawn(|| {
            let mut s = RhaiSession::new();
            let err = s.execute("fn r(n) { r(n + 1) } r(0)", "In[1]").unwrap_err();
            assert_eq!(err.kind, "ErrorStackOverflow");
            // 500 levels are fine.
            let ok = s.execute(
                "fn d(n) { if n == 0 { 0 } else { 1 + d(n - 1) } } d(500)",
                "In[2]",
            );
            assert_eq!(plain(ok.unwrap()), "500");
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn scope_does_not_grow_when_cells_are_rerun() {
    let mut s = RhaiSession::new();
    for i in 0..100 {
        s.execute(&format!("let x = {i}; let y = x * 2;"), &format!("In[{i}]"))
            .unwrap();
    }
    assert_eq!(s.scope().len(), 2);
    assert_eq!(plain(s.execute("y", "In[101]").unwrap()), "198");
}

#[test]
fn completion_offers_names_methods_and_properties() {
    let mut s = RhaiSession::new();
    s.execute(
        "let counter = 1; let text = \"abc\"; let point = #{x_pos: 1}; fn my_helper(a) { a }",
        "In[1]",
    )
    .unwrap();
    let c = s.complete("coun", 4);
    assert_eq!(c.matches, vec!["counter"]);
    assert_eq!((c.cursor_start, c.cursor_end), (0, 4));
    assert!(s.complete("sle", 3).matches.contains(&"sleep".to_string()));
    assert!(s
        .complete("my_h", 4)
        .matches
        .contains(&"my_helper".to_string()));
    assert!(s.complete("whi", 3).matches.contains(&"while".to_string()));
    let c = s.complete("print(text.to_up", 16);
    assert!(c.matches.contains(&"to_upper".to_string()));
    assert_eq!((c.cursor_start, c.cursor_end), (11, 16));
    assert!(s
        .complete("point.x_", 8)
        .matches
        .contains(&"x_pos".to_string()));
    // Cursor positions count characters, not bytes.
    let c = s.complete("\"é\"; coun", 9);
    assert_eq!((c.cursor_start, c.matches.len()), (5, 1));
}

#[test]
fn inspection_shows_docs_and_values() {
    let mut s = RhaiSession::new();
    s.execute(
        "/// Adds one.\nfn inc(x) { x + 1 }\nlet answer = 42;",
        "In[1]",
    )
    .unwrap();
    let doc = s.inspect("inc(", 4, 0).unwrap();
    assert!(
        doc.contains("fn inc(x)") && doc.contains("Adds one."),
        "{doc}"
    );
    let doc = s.inspect("answer", 3, 0).unwrap();
    assert!(doc.starts_with("answer: int = 42"), "{doc}");
    let doc = s.inspect("sleep(0.5)", 2, 0).unwrap();
    assert!(
        doc.contains("sleep(seconds: float)") && doc.contains("interruptible"),
        "{doc}"
    );
    assert!(s.inspect("no_such_name", 3, 0).is_none());
    // A native with any number of arguments shows one signature, not one per arity.
    for (code, signature) in [
        ("spawn_process(", "spawn_process(f: Fn, args…) -> Process"),
        ("spawn_thread(", "spawn_thread(f: Fn, args…) -> Thread"),
        ("timer(", "timer(seconds: float, f: Fn, args…) -> Timer"),
    ] {
        let doc = s.inspect(code, code.len() - 1, 0).unwrap();
        let signatures: Vec<&str> = doc.lines().take_while(|l| !l.is_empty()).collect();
        assert_eq!(signatures, vec![signature], "{doc}");
    }
}

#[test]
fn completeness() {
    let s = RhaiSession::new();
    assert_eq!(s.is_complete("let x = 1;"), Completeness::Complete);
    assert_eq!(
        s.is_complete("fn f() {"),
        Completeness::Incomplete("    ".into())
    );
    assert_eq!(s.is_complete("let = 1;"), Completeness::Invalid);
}

#[test]
fn a_panicking_native_becomes_an_error_and_the_session_survives() {
    let mut s = RhaiSession::new();
    s.engine_mut().register_fn("explode", |n: i64| -> i64 {
        if n > 0 {
            panic!("native failure {n}");
        }
        n
    });
    s.execute("let kept = 7;", "In[1]").unwrap();
    let err = s.execute("explode(3)", "In[2]").unwrap_err();
    assert_eq!(err.kind, "ErrorSystem");
    assert!(err.message.contains("native failure 3"), "{}", err.message);
    assert_eq!(plain(s.execute("kept + explode(0)", "In[3]").unwrap()), "7");
}

/// Every native of the public API, as scripts call it.
const PUBLIC_NATIVES: &[&str] = &[
    "sleep",
    "eprint",
    "input",
    "help",
    "display",
    "update_display",
    "display_html",
    "display_markdown",
    "display_svg",
    "display_json",
    "clear_output",
    "spawn_thread",
    "join",
    "thread_id",
    "thread_name",
    "spawn_process",
    "terminate",
    "kill",
    "process_id",
    "cpu_count",
    "exit_process",
    "lock",
    "rlock",
    "acquire",
    "release",
    "locked",
    "hold",
    "semaphore",
    "event",
    "set",
    "clear",
    "is_set",
    "wait",
    "condition",
    "notify",
    "notify_all",
    "barrier",
    "value",
    "add",
    "get_lock",
    "shared_array",
    "to_array",
    "queue",
    "put",
    "get",
    "try_get",
    "is_empty",
    "close",
    "pipe",
    "send",
    "recv",
    "poll",
    "pool",
    "thread_pool",
    "map",
    "starmap",
    "imap_unordered",
    "reduce",
    "submit",
    "result",
    "cancel",
];

#[test]
fn every_public_native_is_documented() {
    let s = RhaiSession::new();
    let natives = rhai_kernel::runtime::docs::native_functions(s.engine(), None);
    for name in PUBLIC_NATIVES {
        let overloads: Vec<_> = natives.iter().filter(|(n, _)| n == name).collect();
        assert!(!overloads.is_empty(), "{name} is not registered");
        // Rhai's own overloads of common names (e.g. `clear` on arrays) have their own docs;
        // ours must be documented too: at least one overload per name has docs, and
        // inspecting the name shows them.
        assert!(
            overloads.iter().any(|(_, d)| !d.doc.is_empty()),
            "{name} has no documentation"
        );
        let shown = s.inspect(name, 1, 0).unwrap_or_default();
        assert!(shown.contains(name), "inspect({name}) shows: {shown}");
    }
    // Properties are documented too, and found after a dot.
    let shown = s.inspect("t.is_alive", 4, 0).unwrap_or_default();
    assert!(
        shown.contains("is_alive") && shown.contains("has returned"),
        "{shown}"
    );
}

#[test]
fn every_native_of_the_runtime_package_has_docs() {
    use rhai::packages::Package;
    // An engine with nothing but this product's package: every function in it is ours.
    let mut engine = rhai::Engine::new_raw();
    engine.register_global_module(rhai_kernel::runtime::RuntimePackage::new().as_shared_module());
    let natives = rhai_kernel::runtime::docs::native_functions(&engine, None);
    assert!(natives.len() > 80, "only {} natives found", natives.len());
    for (name, doc) in natives {
        assert!(
            !doc.doc.trim().is_empty(),
            "{} ({name}) has no doc comment",
            doc.signature
        );
    }
}

/// Collects what a cell writes.
#[derive(Default)]
struct Capture(std::sync::Mutex<String>);

impl rhai_kernel::runtime::sink::OutputSink for Capture {
    fn write(&self, _stream: rhai_kernel::runtime::sink::Stream, text: &str) {
        self.0.lock().unwrap().push_str(text);
    }
    fn display(&self, _: rhai_kernel::runtime::sink::MimeBundle, _: Option<&str>, _: bool) {}
    fn clear_output(&self, _: bool) {}
    fn read_input(
        &self,
        _: &str,
        _: bool,
    ) -> Result<String, rhai_kernel::runtime::sink::InputError> {
        Err(rhai_kernel::runtime::sink::InputError::NotAllowed)
    }
    fn page(&self, _: &str) {}
}

#[test]
fn time_magic_measures_the_cell() {
    let mut s = RhaiSession::new();
    let capture = std::sync::Arc::new(Capture::default());
    let result = rhai_kernel::runtime::sink::with_sink(capture.clone(), || {
        s.execute("%%time\nprint(\"inside\");\nsleep(0.05);\n6 * 7", "In[1]")
    });
    assert_eq!(plain(result.unwrap()), "42");
    let out = capture.0.lock().unwrap().clone();
    assert!(out.starts_with("inside\nCPU times: user "), "{out}");
    assert!(out.contains("Wall time: "), "{out}");
    // Errors keep the cell's line numbers.
    let err = s
        .execute("%%time\nlet a = 1;\nthrow \"x\"", "In[2]")
        .unwrap_err();
    assert_eq!(err.frames[0].line, Some(3));
    let err = s.execute("%%nope\n1", "In[3]").unwrap_err();
    assert_eq!(err.kind, "UsageError");
    assert!(err.message.contains("%%time"), "{}", err.message);
    assert_eq!(s.complete("%%ti", 4).matches, vec!["%%time", "%%timeline"]);
    assert_eq!(
        s.is_complete("%%time\nfn f() {"),
        Completeness::Incomplete("    ".into())
    );
    assert_eq!(s.is_complete("%%time\n1 + 1"), Completeness::Complete);
    // `%%rust` is known to completion and always complete (Rust is not parsed here).
    assert_eq!(s.complete("%%ru", 4).matches, vec!["%%rust"]);
    assert_eq!(s.is_complete("%%rust\nfn f() {"), Completeness::Complete);
}

#[test]
fn functions_from_earlier_cells_by_bare_name_inside_closures() {
    let mut s = RhaiSession::new();
    s.execute("fn twice(x) { x * 2 }", "In[1]").unwrap();
    let result = s.execute(
        "let f = || { let g = twice; g.call(21) }; f.call()",
        "In[2]",
    );
    assert_eq!(plain(result.unwrap()), "42");
    let result = s.execute(
        "let h = |v| spawn_thread(twice, v).join(); h.call(5)",
        "In[3]",
    );
    assert_eq!(plain(result.unwrap()), "10");
    assert!(s
        .execute("let nope = || no_such_thing; nope.call()", "In[4]")
        .is_err());
}

/// Every native this product adds has documentation (what Shift-Tab shows) and is named in
/// the README or a page of docs/.
#[test]
fn every_native_is_documented_and_named_in_the_docs() {
    use rhai::packages::Package;
    let mut engine = rhai::Engine::new_raw();
    engine.register_global_module(rhai_kernel::runtime::RuntimePackage::new().as_shared_module());
    let metadata: serde_json::Value =
        serde_json::from_str(&engine.gen_fn_metadata_to_json(true).unwrap()).unwrap();
    // The README and the reference pages it links to, read as one text.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    pages.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md")),
    );
    let readme: String = pages
        .iter()
        .map(|page| std::fs::read_to_string(page).unwrap())
        .collect();
    let named = |name: &str| {
        readme.match_indices(name).any(|(at, _)| {
            let before = readme[..at].chars().next_back();
            let after = readme[at + name.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            !word(before) && !word(after)
        })
    };
    let mut undocumented = Vec::new();
    let mut unnamed = Vec::new();
    for f in metadata["functions"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        // Operators, conversions for printing and iterators are how Rhai shows values.
        if !name.chars().next().is_some_and(|c| c.is_alphabetic())
            || ["to_string", "to_debug"].contains(&name)
        {
            continue;
        }
        // `timer_body` is what a timer's thread runs; scripts cannot call it (they have no
        // `TimerCancel` to give it).
        if name.starts_with("index$") || name == "timer_body" {
            continue;
        }
        let name = name.trim_start_matches("get$").trim_start_matches("set$");
        let docs = f["docComments"].as_array().map_or(0, Vec::len);
        if docs == 0 {
            undocumented.push(f["signature"].as_str().unwrap_or(name).to_string());
        }
        if !named(name) {
            unnamed.push(name.to_string());
        }
    }
    undocumented.sort();
    undocumented.dedup();
    unnamed.sort();
    unnamed.dedup();
    assert!(
        undocumented.is_empty(),
        "natives without docs: {undocumented:?}"
    );
    assert!(
        unnamed.is_empty(),
        "natives neither the README nor docs/ names: {unnamed:?}"
    );
}

#[test]
fn a_typed_method_defined_in_a_later_cell_takes_precedence() {
    // Rhai is patched to skip the typed script-method lookup until a script defines one
    // (vendor/README.md). Here the first cells call natives before any typed method exists.
    let mut s = RhaiSession::new();
    s.execute("let l = lock();", "In[1]").unwrap();
    assert_eq!(plain(s.execute("l.locked()", "In[2]").unwrap()), "false");
    s.execute("fn Lock.locked() { \"typed\" }", "In[3]")
        .unwrap();
    assert_eq!(
        plain(s.execute("l.locked()", "In[4]").unwrap()),
        "\"typed\""
    );
    assert_eq!(
        plain(
            s.execute("spawn_thread(|| l.locked()).join()", "In[5]")
                .unwrap()
        ),
        "\"typed\""
    );
}
