"""peercam's tools beside the daemon: the board and cross-build checks, the benchmarks and the
Yocto layer's checks. Each module is run by the shell verb users type (scripts/board-test,
scripts/cross-test, scripts/bench, scripts/yocto-check, scripts/yocto-crates) as
`python3 -m peercam_tools.<module>` with scripts/ on PYTHONPATH:

- board_test, board_bench: the emulated board, checked and measured.
- cross_test: a cross-built binary under qemu-user.
- checks: what board_test and cross_test share (printed checks, a probe call).
- bench: the benchmarks beside Janus and coturn.
- yocto_layer: the Yocto layer's checks; yocto_check runs them; yocto_crates writes the
  recipe's crate list.
"""
