"""jupyter_kernel_test's IOPub welcome check (protocol 5.5): a client that starts its channels
on a running "rhai" kernel receives iopub_welcome as its first IOPub message."""

import unittest

import jupyter_kernel_test


class RhaiIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "rhai"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
