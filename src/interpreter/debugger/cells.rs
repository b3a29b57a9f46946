//! Cells as the debugger's frontend names them: a path made of the kernel's temporary-file
//! prefix and the MurmurHash2 of the cell's exact code, and the lines of a cell that hold
//! code (where a breakpoint can stop).

use rhai::{ASTNode, Engine};
use std::collections::BTreeSet;

/// MurmurHash2 (32-bit) of the UTF-8 bytes of `text`, as JupyterLab computes a cell's id
/// (`hashMethod: "Murmur2"`).
pub fn murmur2(text: &str, seed: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let bytes = text.as_bytes();
    // The length is mixed in modulo 2^32, as the reference implementation does.
    let mut h = seed ^ (bytes.len() as u32);
    let mut chunks = bytes.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Where the debugger says a cell's code is: `prefix` + hash + `.rhai`.
pub fn cell_path(prefix: &str, seed: u32, code: &str) -> String {
    format!("{prefix}{}{SUFFIX}", murmur2(code, seed))
}

/// The suffix of every cell path (`tmpFileSuffix`).
pub const SUFFIX: &str = ".rhai";

/// The lines (from 1) of `code` where a statement or expression starts, the places a line
/// breakpoint can stop at. `None` when the code does not compile.
pub fn code_lines(engine: &Engine, code: &str) -> Option<BTreeSet<usize>> {
    let ast = engine.compile(code).ok()?;
    let mut lines = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(line) = path.last().and_then(|node| node.position().line()) {
            lines.insert(line);
        }
        true
    });
    Some(lines)
}

/// Where a breakpoint asked for at `line` stops: that line if it has code, else the next
/// line that has (as debuggers move a breakpoint off a blank line or a comment).
pub fn placed_line(lines: &BTreeSet<usize>, line: usize) -> Option<usize> {
    lines.range(line..).next().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_reference_values() {
        // Values computed by JupyterLab's own implementation (from its `debugger` package).
        assert_eq!(murmur2("", 0), 0);
        assert_eq!(murmur2("", 1), 0x5bd1_5e36);
        assert_eq!(murmur2("a", 0x9747_b28c), 0xa2d0_b27c);
        assert_eq!(murmur2("abcd", 0x9747_b28c), 0xb11a_b5f4);
        assert_eq!(murmur2("Hello, world!", 0x9747_b28c), 0xbeba_9b12);
        let cell = "fn f(a) {\n    a + 1\n}\nf(2)";
        assert_eq!(murmur2(cell, 3_339_675_911), 0x844c_e42f);
        assert_eq!(murmur2("é ü 中", 3_339_675_911), 0x0d89_3b44);
    }

    #[test]
    fn breakpoints_move_to_the_next_line_with_code() {
        let engine = Engine::new();
        let code = "// a comment\n\nlet x = 1;\n\nfn f(a) {\n    a + 1\n}\nf(x)\n";
        let lines = code_lines(&engine, code).unwrap();
        assert_eq!(placed_line(&lines, 1), Some(3));
        assert_eq!(placed_line(&lines, 3), Some(3));
        // A function's header runs nothing (functions are hoisted): its body's first line.
        assert_eq!(placed_line(&lines, 4), Some(6));
        assert_eq!(placed_line(&lines, 5), Some(6));
        assert_eq!(placed_line(&lines, 6), Some(6));
        assert_eq!(placed_line(&lines, 9), None);
        assert!(code_lines(&engine, "let = ;").is_none());
    }
}
