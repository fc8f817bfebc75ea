;; Integer division by zero (the divisor comes from a mutable global, so it
;; is only known at run time): a trap.
(module
  (memory (export "memory") 1)
  (global $zero (mut i32) (i32.const 0))
  (global $sink (mut i32) (i32.const 0))
  (func (export "_start")
    (global.set $sink (i32.div_s (i32.const 1) (global.get $zero)))))
