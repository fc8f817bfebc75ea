;; An infinite loop that never calls the host: only the case's timeout can
;; stop it (exit code 137).
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever
      (br $forever))))
