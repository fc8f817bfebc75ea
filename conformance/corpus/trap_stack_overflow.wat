;; Unbounded recursion (not a tail call: the result is used after the call)
;; exhausts the wasm stack: a trap, not a crash of the host.
(module
  (memory (export "memory") 1)
  (global $sink (mut i32) (i32.const 0))
  (func $recurse (param $n i32) (result i32)
    (i32.add
      (call $recurse (i32.add (local.get $n) (i32.const 1)))
      (local.get $n)))
  (func (export "_start")
    (global.set $sink (call $recurse (i32.const 0)))))
