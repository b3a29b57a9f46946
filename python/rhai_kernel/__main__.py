"""`python -m rhai_kernel ARGS`: runs `rhai-kernel ARGS` (what the kernelspec starts)."""

from rhai_kernel import main

main()
