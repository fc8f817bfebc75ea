;; The bundled example: prints a greeting through WASI preview 1 `fd_write`, then exits 0.
;; Run it with `wasmbay run examples/hello.wat`.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Hello from WebAssembly, run by wasmbay!\n")
  (func (export "_start")
    ;; One iovec at address 0: {ptr = 16, len = 40}.
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 40))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
