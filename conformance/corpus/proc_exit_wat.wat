;; proc_exit(42) called directly, with no output: the exit code reaches the host.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $proc_exit (i32.const 42))
    ;; proc_exit does not return.
    unreachable))
