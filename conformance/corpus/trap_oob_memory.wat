;; A load just past the end of a one-page memory: out-of-bounds trap.
(module
  (memory (export "memory") 1 1)
  (global $addr (mut i32) (i32.const 65534))
  (global $sink (mut i32) (i32.const 0))
  (func (export "_start")
    ;; bytes 65534..65537: the last two are out of bounds
    (global.set $sink (i32.load (global.get $addr)))))
