;; Two entry points: `_start` (the default) and `hello` (chosen with the
;; case's `entrypoint`, like `module.wasm#hello`). Each prints its own line.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from _start\n")   ;; 18 bytes
  (data (i32.const 48) "hello from hello\n")    ;; 17 bytes
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $print (i32.const 16) (i32.const 18)))
  (func (export "hello")
    (call $print (i32.const 48) (i32.const 17))))
