;; No memory_limit: memory.grow still fails with -1 (not a trap) past the
;; module's declared maximum (3 pages) and past 4 GiB; growing by 0 returns the
;; current size.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 3)
  ;; 0..8 iovec, 8..12 nwritten, 16..32 digit buffer, texts from 64
  (data (i32.const 64) "grow 0 -> ")       ;; 10
  (data (i32.const 80) "grow 65536 -> ")   ;; 14
  (data (i32.const 96) "grow 2 -> ")       ;; 10
  (data (i32.const 112) "grow 1 -> ")      ;; 10
  (data (i32.const 128) "memory.size ")    ;; 12
  (data (i32.const 144) "-1")              ;; 2
  (data (i32.const 150) "\n")              ;; 1
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; Prints $n in decimal (-1 as "-1"), then a newline.
  (func $println_i32 (param $n i32)
    (local $p i32)
    (if (i32.eq (local.get $n) (i32.const -1))
      (then (call $print (i32.const 144) (i32.const 2)))
      (else
        (local.set $p (i32.const 32))
        (loop $digit
          (local.set $p (i32.sub (local.get $p) (i32.const 1)))
          (i32.store8 (local.get $p)
            (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
          (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
          (br_if $digit (local.get $n)))
        (call $print (local.get $p) (i32.sub (i32.const 32) (local.get $p)))))
    (call $print (i32.const 150) (i32.const 1)))
  (func (export "_start")
    (call $print (i32.const 64) (i32.const 10))
    (call $println_i32 (memory.grow (i32.const 0)))
    (call $print (i32.const 80) (i32.const 14))
    (call $println_i32 (memory.grow (i32.const 65536)))
    (call $print (i32.const 96) (i32.const 10))
    (call $println_i32 (memory.grow (i32.const 2)))
    (call $print (i32.const 112) (i32.const 10))
    (call $println_i32 (memory.grow (i32.const 1)))
    (call $print (i32.const 128) (i32.const 12))
    (call $println_i32 (memory.size))))
