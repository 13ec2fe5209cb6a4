//! Checks the source of the C ABI itself: every export runs inside the panic guard, and
//! every `unsafe` block or impl states its invariant in a `// SAFETY:` comment.

use std::path::{Path, PathBuf};

use syn::visit::Visit;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn crate_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

#[derive(Default)]
struct Exports {
    names: Vec<String>,
    unguarded: Vec<String>,
}

impl Visit<'_> for Exports {
    fn visit_item_fn(&mut self, item: &syn::ItemFn) {
        let no_mangle = item.attrs.iter().any(|attr| {
            let text = quote_attr(attr);
            text.contains("no_mangle") || text.contains("export_name")
        });
        let extern_c = item
            .sig
            .abi
            .as_ref()
            .is_some_and(|abi| abi.name.as_ref().is_none_or(|n| n.value() == "C"));
        if no_mangle || extern_c {
            let name = item.sig.ident.to_string();
            if !(no_mangle && extern_c && matches!(item.vis, syn::Visibility::Public(_))) {
                self.unguarded.push(format!(
                    "{name}: exports must be `#[unsafe(no_mangle)] pub extern \"C\"`"
                ));
            } else if !body_is_one_guard_call(&item.block) {
                self.unguarded
                    .push(format!("{name}: body is not one `guard(|| ...)` call"));
            }
            self.names.push(name);
        }
        syn::visit::visit_item_fn(self, item);
    }
}

fn quote_attr(attr: &syn::Attribute) -> String {
    match &attr.meta {
        syn::Meta::Path(path) => path_text(path),
        syn::Meta::List(list) => format!("{}({})", path_text(&list.path), list.tokens),
        syn::Meta::NameValue(nv) => path_text(&nv.path),
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The whole body must be `guard(|| ...)` (or `guard(move || ...)`), nothing before or after
/// it, so that no statement of an export can run outside `catch_unwind`.
fn body_is_one_guard_call(block: &syn::Block) -> bool {
    let [syn::Stmt::Expr(syn::Expr::Call(call), None)] = block.stmts.as_slice() else {
        return false;
    };
    let syn::Expr::Path(func) = &*call.func else {
        return false;
    };
    path_text(&func.path) == "guard"
        && call.args.len() == 1
        && matches!(call.args.first(), Some(syn::Expr::Closure(_)))
}

#[test]
fn every_export_runs_inside_the_guard() {
    let files = rust_files(&crate_dir("src"));
    assert!(
        !files.is_empty(),
        "no source files found under bindings/src"
    );
    let mut exports = Exports::default();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        exports.visit_file(&parsed);
    }
    assert!(
        exports.unguarded.is_empty(),
        "exports outside the panic guard:\n{}",
        exports.unguarded.join("\n")
    );
    // The ABI has dozens of exports; far fewer means the walk above missed them.
    assert!(
        exports.names.len() >= 50,
        "only {} exports found",
        exports.names.len()
    );
    for name in &exports.names {
        assert!(
            name.starts_with("nanu_"),
            "{name}: exports are named nanu_*"
        );
    }
}

#[test]
fn the_guard_check_rejects_an_unguarded_body() {
    let bad: syn::ItemFn = syn::parse_quote! {
        #[unsafe(no_mangle)]
        pub extern "C" fn nanu_bad() -> u32 {
            let x = 1;
            guard(|| x)
        }
    };
    let good: syn::ItemFn = syn::parse_quote! {
        #[unsafe(no_mangle)]
        pub extern "C" fn nanu_good() -> u32 {
            guard(|| 1)
        }
    };
    assert!(!body_is_one_guard_call(&bad.block));
    assert!(body_is_one_guard_call(&good.block));
}

/// Every line opening an `unsafe` block or `unsafe impl` is preceded (directly, or through
/// other comment lines) by a comment line starting with `// SAFETY:`; a block that starts a
/// continuation line of a statement may have the comment above the statement.
fn unjustified_unsafe(text: &str) -> Vec<usize> {
    let opens = regex::Regex::new(r"\bunsafe\s*(\{|impl\b)").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if !opens.is_match(code) {
            continue;
        }
        // rustfmt may put the block on the line after `let x =` or `assert_eq!(`: the
        // comment then heads the statement.
        let mut start = i;
        while start > 0 {
            let previous = lines[start - 1].trim();
            let open = previous.ends_with('=') || previous.ends_with('(');
            if previous.starts_with("//") || !open {
                break;
            }
            start -= 1;
        }
        let justified = lines[..start]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("//"))
            .any(|l| l.starts_with("// SAFETY:"));
        if !justified {
            bad.push(i + 1);
        }
    }
    bad
}

#[test]
fn every_unsafe_block_states_its_invariant() {
    let mut files = rust_files(&crate_dir("src"));
    files.extend(rust_files(&crate_dir("tests")));
    files.extend(rust_files(&crate_dir("benches")));
    let mut bad = Vec::new();
    let mut blocks = 0;
    let counted = regex::Regex::new(r"\bunsafe \{").unwrap();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        blocks += counted.find_iter(&text).count();
        for line in unjustified_unsafe(&text) {
            bad.push(format!("{}:{line}", file.display()));
        }
    }
    assert!(
        blocks > 50,
        "only {blocks} unsafe blocks found: the scan is broken"
    );
    assert!(
        bad.is_empty(),
        "unsafe without a `// SAFETY:` comment:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_safety_check_rejects_a_bare_unsafe_block() {
    let text = "fn f() {\n    // reads the pointer\n    let x = unsafe { *p };\n}\n";
    assert_eq!(unjustified_unsafe(text), vec![3]);
    let text =
        "fn f() {\n    // SAFETY: p is valid.\n    // more words\n    let x = unsafe { *p };\n}\n";
    assert!(unjustified_unsafe(text).is_empty());
    let text = "    // SAFETY: p is valid.\n    let x =\n        unsafe { *p };\n";
    assert!(unjustified_unsafe(text).is_empty());
    let text = "    // SAFETY: p is valid.\n    let x = 1;\n    let y =\n        unsafe { *p };\n";
    assert_eq!(unjustified_unsafe(text), vec![4]);
}
