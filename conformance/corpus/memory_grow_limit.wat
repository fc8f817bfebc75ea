;; Run with memory_limit = 1048576 (16 pages) and 1 initial page: memory.grow
;; by one page succeeds 15 times, then returns -1 (no trap). The last byte of
;; the grown memory is usable. At most 64 grows are tried, so that a runtime
;; without the limit does not grow to 4 GiB.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0..8 iovec, 8..12 nwritten, 16..32 digit buffer, texts from 64
  (data (i32.const 64) "grew ")                          ;; 5
  (data (i32.const 80) " pages\n")                       ;; 7
  (data (i32.const 96) "memory.size ")                   ;; 12
  (data (i32.const 128) "last byte readable\n")          ;; 19
  (data (i32.const 160) "last byte NOT readable\n")      ;; 23
  (data (i32.const 192) "grow failed as expected\n")     ;; 24
  (data (i32.const 224) "grow unexpectedly succeeded\n") ;; 28
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; Prints $n in decimal.
  (func $print_u32 (param $n i32)
    (local $p i32)
    (local.set $p (i32.const 32))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $print (local.get $p) (i32.sub (i32.const 32) (local.get $p))))
  (func (export "_start")
    (local $grown i32)
    (local $last i32)
    (block $done
      (loop $grow
        (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $grown (i32.add (local.get $grown) (i32.const 1)))
        (br_if $grow (i32.lt_u (local.get $grown) (i32.const 64)))))
    ;; "grew N pages\n"
    (call $print (i32.const 64) (i32.const 5))
    (call $print_u32 (local.get $grown))
    (call $print (i32.const 80) (i32.const 7))
    ;; "memory.size N pages\n"
    (call $print (i32.const 96) (i32.const 12))
    (call $print_u32 (memory.size))
    (call $print (i32.const 80) (i32.const 7))
    ;; write and read back the last byte of memory
    (local.set $last (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 1)))
    (i32.store8 (local.get $last) (i32.const 90))
    (if (i32.eq (i32.load8_u (local.get $last)) (i32.const 90))
      (then (call $print (i32.const 128) (i32.const 19)))
      (else (call $print (i32.const 160) (i32.const 23))))
    ;; one more grow must fail, again without a trap
    (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1))
      (then (call $print (i32.const 192) (i32.const 24)))
      (else
        (call $print (i32.const 224) (i32.const 28))
        (call $proc_exit (i32.const 1))))))
