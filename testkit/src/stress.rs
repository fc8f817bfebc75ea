//! The guest and the round count the lost-exit stress tests of the shim and the runtime share.

/// Polls stdin (at end of file in these tests) and a 20 ms clock, then ends as the `END`
/// placeholder says (nothing: return; or a `proc_exit` call, or `unreachable`). wasmtime-wasi
/// answers a poll on stdin from a thread of its own and through a tokio runtime, so the guest
/// ends while other threads of its process exist.
pub const POLL_STDIN_THEN: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 1))
    (i32.store (i32.const 16) (i32.const 0))
    (i64.store (i32.const 48) (i64.const 2))
    (i32.store8 (i32.const 56) (i32.const 0))
    (i32.store (i32.const 64) (i32.const 1))
    (i64.store (i32.const 72) (i64.const 20000000))
    (drop (call $poll (i32.const 0) (i32.const 128) (i32.const 2) (i32.const 256)))
    END))"#;

/// [`POLL_STDIN_THEN`] ending with `end`.
pub fn poll_stdin_then(end: &str) -> String {
    POLL_STDIN_THEN.replace("END", end)
}

/// How many rounds a stress test makes: 10 in CI, `WASMBAY_STRESS_ROUNDS` for the long runs
/// (docs/reliability/).
pub fn stress_rounds() -> usize {
    std::env::var("WASMBAY_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}
