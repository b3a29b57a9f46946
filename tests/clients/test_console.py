"""`jupyter console --kernel rhai` in a pseudo-terminal (pexpect), with its real prompt_toolkit
prompt: a multi-line function typed line by line, a result, Tab completion, and Ctrl-D to quit."""

import re
import sys
import termios
import time

import pexpect
from client_support import kill_kernels_in

# Escape sequences of the terminal: CSI (colours, cursor moves), OSC (titles) and two-byte ones.
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_=>])")


class Console:
    """A terminal session whose screen output is read as plain text (escape sequences removed)."""

    def __init__(self, env):
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "jupyter_console", "--kernel", "rhai"],
            env=env,
            dimensions=(50, 200),
            encoding="utf-8",
            codec_errors="replace",
        )
        self.raw = ""  # everything the console wrote
        self.text = ""  # the same without escape sequences
        self.seen = 0  # how far in `text` expect() has matched

    def expect(self, pattern, timeout=60):
        """Waits until `pattern` shows after the previous match; returns the match."""
        regex, deadline = re.compile(pattern), time.monotonic() + timeout
        while not (match := regex.search(self.text, self.seen)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} did not show; the screen said:\n{self.text[self.seen:]}")
            try:
                self.raw += self.child.read_nonblocking(4096, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                raise AssertionError(f"the console exited before {pattern!r}:\n{self.text[self.seen:]}")
            self.text = ANSI.sub("", self.raw)
        self.seen = match.end()
        return match

    def type(self, keys, at_prompt=True):
        """Sends keys; at a prompt, first waits for prompt_toolkit to put the terminal in raw
        mode (keys sent before would be handled by the terminal driver: Ctrl-D lost, echo)."""
        deadline = time.monotonic() + 30
        while at_prompt and termios.tcgetattr(self.child.child_fd)[3] & termios.ICANON:
            assert time.monotonic() < deadline, "the console never switched the terminal to raw mode"
            time.sleep(0.05)
        self.child.send(keys)


def test_console_session(jupyter_env):
    env = dict(jupyter_env, TERM="xterm-256color", COLUMNS="200", LINES="50")
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"  # pexpect does not answer cursor position requests
    console = Console(env)
    try:
        console.expect(r"rhai-kernel .* Rhai")  # the kernel's banner
        console.expect(r"In \[1\]: ")

        # A function typed line by line: is_complete says "incomplete" until the closing brace,
        # so the console shows continuation prompts, then runs the cell at once.
        console.type("fn add(a, b) {\r")
        console.expect(r"\.\.\.: ")
        console.type("a + b\r")
        console.expect(r"\.\.\.: ")
        console.type("}\r")
        console.expect(r"In \[2\]: ")

        console.type("add(2, 3)\r")
        console.expect(r"Out\[2\]: 5\s")
        console.expect(r"In \[3\]: ")

        # Tab completes `sle` to `sleep`, and the completed call runs.
        console.type("sle\t")
        console.expect(r"sleep")
        console.type("(0.01); add(40, 2)\r")
        console.expect(r"In \[3\]: sleep\(0\.01\); add\(40, 2\)")
        console.expect(r"Out\[3\]: 42\s")
        console.expect(r"In \[4\]: ")

        console.type("\x04")  # Ctrl-D
        console.expect(r"Do you really want to exit \(\[y\]/n\)\?")
        console.type("y\r", at_prompt=False)
        console.child.expect(pexpect.EOF, timeout=30)
        console.child.close()
        assert console.child.exitstatus == 0, console.text[-2000:]
    finally:
        if console.child.isalive():
            console.child.close(force=True)
            kill_kernels_in(env["JUPYTER_RUNTIME_DIR"])
